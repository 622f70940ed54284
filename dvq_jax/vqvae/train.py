r"""Learned-prior study: trains and evaluates the DVQ-VAE through the shared `training.loop`.

  python -m dvq_jax.main --config=configs/cifar10.py --workdir=W

The train state is a plain pytree `{"step", "params", "opt_state"}` (plus `"codebook_state"` for
EMA codebooks or dead-code restart, `vqvae.codebook_learning`) replicated over a 1-D mesh
of all devices; each batch of uint8 images is sharded on the `data` axis, so codebook
statistics are computed over the global batch. The batch at step s is a pure function of
(seed, s), and nothing else is random after initialisation, so a resumed run is bit-identical
to an uninterrupted one. This module only supplies the VQ-VAE's parts (state, step, batches,
evaluation); checkpoints, signals, NaN checks and metric files are the loop's.
"""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from dvq_jax import data as data_lib
from dvq_jax import vqvae
from dvq_jax.training import loop
from dvq_jax.training import optim
from dvq_jax.training import sharding
from dvq_jax.training import validation as training_validation
from dvq_jax.vqvae import codebook_learning
from dvq_jax.vqvae import evaluate
from dvq_jax.vqvae import objective
from dvq_jax.vqvae import validation


def train_step(state, images, *, model, tx, microbatches=1):
  """One optimizer step on a batch of uint8 images: (state, images) -> (state, metrics).

  The gradient is `objective.loss_and_gradient`'s, in `microbatches` passes
  (`config.microbatches`); metrics are `{"loss", "grad_norm", **aux}` as in
  `training.optim.gradient_step`.
  """
  (loss, aux), grads, _ = objective.loss_and_gradient(state["params"], model, images,
                                                      microbatches=microbatches)
  metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads), **aux}
  return optim.apply_gradients(state, grads, tx), metrics


def training_parts(config: ml_collections.ConfigDict, image_shape: tuple[int, int, int]):
  """The model and the loop's `init_state` and `train_step` for a checked config.

  `train_and_evaluate` trains with them and `dvq_jax.plan` compiles them ahead of time, so the
  planned program is the trained one.

  Args:
    config: a learned-prior config (`validation.check_config` passed).
    image_shape: `(H, W, C)` of the data set's images.

  Returns:
    `(model, init_state, train_step)`: `init_state(key) -> state` and
    `train_step(state, images) -> (state, metrics)` on uint8 images `(batch, H, W, C)`.
  """
  model = vqvae.build_model(config, image_shape)  # also checks the image size fits
  tx = optim.make_optimizer(config)
  stateful = codebook_learning.is_stateful(config)

  def init_state(key):
    params = model.init(key, jnp.zeros((1, *image_shape), jnp.uint8))["params"]
    state = {"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": tx.init(params)}
    if stateful:
      state["codebook_state"] = codebook_learning.init_codebook_state(
          config, params["quantize"]["codebooks"])
    return state

  if stateful:
    step = functools.partial(codebook_learning.train_step, model=model, tx=tx, config=config)
  else:
    step = functools.partial(train_step, model=model, tx=tx, microbatches=config.microbatches)
  return model, init_state, step


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains for `config.num_train_steps` (resuming from `workdir`), returns the final eval."""
  # Every check before any compute: config, devices, workdir, data, model vs. image size.
  validation.check_config(config)
  sharding.maybe_initialize_distributed(config)
  training_validation.check_devices(config)
  validation.check_microbatches(config, jax.device_count())
  training_validation.check_workdir(workdir, config)
  data = data_lib.load(config)
  data_lib.check_batch_size(data, config.batch_size, jax.process_count())
  model, init_state, step = training_parts(config, data.image_shape)
  validation.check_kmeans_vectors(config, data.image_shape)

  def batches(start_step):
    return data_lib.train_batches(
        data, start_step=start_step, global_batch_size=config.batch_size, seed=config.seed,
        process_index=jax.process_index(), process_count=jax.process_count(),
        worker_count=config.grain_workers)

  mesh = sharding.make_mesh()

  def kmeans_codebooks(state):
    # The first kmeans_batches batches of training (process-local rows, then the global array).
    iterator = batches(0)
    try:
      local = np.concatenate([next(iterator) for _ in range(config.kmeans_batches)])
    finally:
      if hasattr(iterator, "close"):
        iterator.close()
    kmeans = functools.partial(codebook_learning.kmeans_state, model=model, config=config)
    return jax.jit(kmeans)(state, sharding.global_batch(mesh, local))

  evaluator = evaluate.Evaluator(config, model, data, mesh, workdir)
  return loop.run(
      config, workdir,
      init_state=init_state,
      train_step=step,
      batches=batches,
      evaluate=lambda state, step: evaluator.run(state["params"], step),
      description=f"{config.quantizer} on {data.name} {data.image_shape}",
      init_from_data=kmeans_codebooks if config.kmeans_init else None,
  )
