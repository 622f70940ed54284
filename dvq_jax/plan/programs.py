"""The programs a run compiles, built abstractly from the trainer's own parts.

`programs(config, mesh)` returns the train step and the evaluation step exactly as
`vqvae.train` / `prior.train` jit them (`training.loop.jit_train_step`, the same shardings and
donation), with the state's and batch's shapes from `jax.eval_shape`: no parameter is
materialized, no data is read (TFDS image shapes come from the builders' metadata).
"""

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections

from dvq_jax import data as data_lib
from dvq_jax import tokenizer as tokenizer_lib
from dvq_jax.errors import ConfigError
from dvq_jax.prior import train as prior_train
from dvq_jax.prior.model import build_prior
from dvq_jax.prior.ordering import Ordering
from dvq_jax.training import loop
from dvq_jax.training import sharding
from dvq_jax.training import validation as training_validation
from dvq_jax.vqvae import evaluate
from dvq_jax.vqvae import train as vqvae_train
from dvq_jax.vqvae import validation as vqvae_validation


@dataclasses.dataclass(frozen=True)
class Program:
  """One jitted function and abstract arguments to lower it with.

  Attributes:
    name: "train_step" or "eval_step".
    jitted: the `jax.jit` the trainer runs.
    args: abstract arguments (`jax.ShapeDtypeStruct`, each with its sharding).
    examples: images (code grids for a prior) per call, over all devices.
  """
  name: str
  jitted: Callable
  args: tuple
  examples: int


def _batch(shape, dtype, mesh) -> jax.ShapeDtypeStruct:
  return jax.ShapeDtypeStruct(shape, dtype, sharding=sharding.batch_sharding(mesh))


def programs(config: ml_collections.ConfigDict, mesh,
             vqvae_config: ml_collections.ConfigDict | None = None) -> list[Program]:
  """The train step and the evaluation step of the run `config` describes, on `mesh`.

  Args:
    config: a VQ-VAE (`learned_prior`) or code-prior (`code_prior`) config.
    mesh: the 1-D `data` mesh to compile for (`sharding.make_mesh(devices)`).
    vqvae_config: for a prior, the VQ-VAE whose codes it models when `config.vqvae_workdir`
      is empty (with a workdir, its config.json is read).

  Raises:
    ConfigError: a config the trainer would refuse, a batch that does not split over the
      mesh, or a prior without its VQ-VAE.
  """
  experiment = config.get("experiment")
  if experiment == "learned_prior":
    return _vqvae_programs(config, mesh)
  if experiment == "code_prior":
    return _prior_programs(config, mesh, vqvae_config)
  raise ConfigError(f"config.experiment = {experiment!r} has no train step to plan; plan a"
                    " 'learned_prior' (VQ-VAE) or 'code_prior' config")


def _vqvae_programs(config, mesh) -> list[Program]:
  vqvae_validation.check_config(config)
  training_validation.check_devices(config, mesh.size)
  vqvae_validation.check_microbatches(config, mesh.size)
  image_shape = data_lib.image_shape(config)
  model, init_state, step = vqvae_train.training_parts(config, image_shape)
  state, state_sharding = loop.abstract_state(init_state, jax.random.key(config.seed), mesh)
  eval_batch = config.eval_batch_size or config.batch_size
  return [
      Program("train_step", loop.jit_train_step(step, mesh, state_sharding),
              (state, _batch((config.batch_size, *image_shape), jnp.uint8, mesh)),
              config.batch_size),
      Program("eval_step", evaluate.jit_eval_stats(model, mesh),
              (state["params"], _batch((eval_batch, *image_shape), jnp.uint8, mesh),
               _batch((eval_batch,), jnp.bool_, mesh)), eval_batch),
  ]


def _prior_programs(config, mesh, vqvae_config) -> list[Program]:
  prior_train.check_model_config(config)
  training_validation.check_devices(config, mesh.size)
  if config.vqvae_workdir:
    vqvae_config = tokenizer_lib.load_run_config(config.vqvae_workdir)
  if vqvae_config is None:
    raise ConfigError("planning a prior needs its VQ-VAE: pass --config.vqvae_workdir=W (a"
                      " trained run) or --vqvae_config=configs/X.py")
  vqvae_validation.check_config(vqvae_config)
  layout = tokenizer_lib.CodeLayout.of(vqvae_config, data_lib.image_shape(vqvae_config))
  model = build_prior(config, layout)
  ordering = Ordering(config.order, layout.grid, layout.num_codebooks)
  init_state, step = prior_train.training_parts(config, model, ordering.num_tokens)
  state, state_sharding = loop.abstract_state(init_state, jax.random.key(config.seed), mesh)
  eval_batch = config.eval_batch_size or config.batch_size
  tokens = lambda batch: _batch((batch, ordering.num_tokens), jnp.int32, mesh)
  return [
      Program("train_step", loop.jit_train_step(step, mesh, state_sharding),
              (state, tokens(config.batch_size)), config.batch_size),
      Program("eval_step", prior_train.jit_eval_sums(model, ordering, mesh),
              (state["params"], tokens(eval_batch), _batch((eval_batch,), jnp.bool_, mesh)),
              eval_batch),
  ]
