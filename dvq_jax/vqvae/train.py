r"""Learned-prior study: trains and evaluates the DVQ-VAE with one sharded, donated jit step.

  python -m dvq_jax.main --config=configs/cifar10.py --workdir=W

The train state is a plain pytree `{"step", "params", "opt_state"}` replicated over a 1-D mesh
of all devices; each batch is sharded on the `data` axis, so codebook statistics are computed
over the global batch. The batch at step s is a pure function of (seed, s), and nothing else is
random after initialisation, so a resumed run is bit-identical to an uninterrupted one.
"""

import dataclasses
import functools
import json
import logging
import signal
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from etils import epath

from dvq_jax.training import checkpointing
from dvq_jax import data as data_lib
from dvq_jax.vqvae import evaluate
from dvq_jax import vqvae
from dvq_jax.vqvae import objective
from dvq_jax.training import sharding
from dvq_jax.vqvae import validation
from dvq_jax.errors import NumericalError
from dvq_jax.training.progress import Progress
from dvq_jax.training.writers import MetricWriter


def make_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """Adam with a constant or cosine learning rate, after an optional linear warmup."""
  if config.lr_schedule == "cosine":
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, config.learning_rate, config.warmup_steps, config.num_train_steps)
  elif config.warmup_steps:
    schedule = optax.linear_schedule(0.0, config.learning_rate, config.warmup_steps)
  else:
    schedule = config.learning_rate
  return optax.adam(schedule)


def train_step(state, images, *, model, tx):
  """One Adam step on a batch of uint8 images: (state, images) -> (state, metrics)."""
  (loss, aux), grads = jax.value_and_grad(objective.loss_fn, has_aux=True)(
      state["params"], model, images)
  updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
  new_state = {
      "step": state["step"] + 1,
      "params": optax.apply_updates(state["params"], updates),
      "opt_state": opt_state,
  }
  return new_state, {"loss": loss, "grad_norm": optax.tree.norm(grads), **aux}


@dataclasses.dataclass
class _StopSignal:
  """Set by SIGTERM/SIGINT; the loop checkpoints at the next step boundary and exits cleanly."""
  received: bool = False

  def install(self) -> None:
    def handler(signum, frame):  # pylint: disable=unused-argument
      self.received = True
    for sig in (signal.SIGTERM, signal.SIGINT):
      signal.signal(sig, handler)

  def should_stop(self, step: int) -> bool:
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
      return multihost_utils.reached_preemption_sync_point(step)
    return self.received


def _check_finite(window: list[tuple[int, dict]]) -> None:
  for step, metrics in window:
    for name, value in metrics.items():
      if not np.all(np.isfinite(value)):
        raise NumericalError(
            f"{name} = {np.asarray(value).tolist()} is not finite at step {step}; training"
            " stopped, the last good checkpoint is kept (lower config.learning_rate or check the"
            " data)"
        )


def _window_mean(window: list[tuple[int, dict]]) -> dict:
  return {k: np.mean([m[k] for _, m in window], axis=0) for k in window[-1][1]}


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains for `config.num_train_steps` (resuming from `workdir`), returns the final eval."""
  # ---------------------------------------------------------------- checks, before compute
  validation.check_config(config)
  sharding.maybe_initialize_distributed(config)
  validation.check_devices(config)
  validation.check_workdir(workdir)
  data = data_lib.load(config)
  model = vqvae.build_model(config, data.image_shape)  # also checks the image size fits
  log = logging.info if jax.process_index() else print
  workdir_path = epath.Path(workdir)
  if jax.process_index() == 0:
    (workdir_path / "config.json").write_text(config.to_json_best_effort(indent=2))

  # ---------------------------------------------------------------- state: restore or init
  mesh = sharding.make_mesh()
  tx = make_optimizer(config)

  def init(key):
    params = model.init(key, jnp.zeros((1, *data.image_shape), jnp.uint8))["params"]
    return {"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": tx.init(params)}

  key = jax.random.key(config.seed)
  abstract = jax.eval_shape(init, key)
  state_sharding = jax.tree.map(lambda _: sharding.replicated(mesh), abstract)
  abstract = jax.tree.map(
      lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, state_sharding)
  checkpointer = checkpointing.Checkpointer(workdir, config.keep_checkpoints, log)
  state = checkpointer.restore_latest(abstract)
  if state is None:
    state = jax.jit(init, out_shardings=state_sharding)(key)
  start_step = int(state["step"])
  log(f"{config.quantizer} on {data.name} {data.image_shape}: {jax.device_count()} devices,"
      f" {jax.process_count()} processes, starting at step {start_step}")

  # ---------------------------------------------------------------- compiled steps
  step_fn = jax.jit(
      functools.partial(train_step, model=model, tx=tx),
      in_shardings=(state_sharding, sharding.batch_sharding(mesh)),
      out_shardings=(state_sharding, sharding.replicated(mesh)),
      donate_argnums=0,
  )
  evaluator = evaluate.Evaluator(config, model, data, mesh, workdir)
  writer = MetricWriter(workdir)
  stop = _StopSignal()
  stop.install()

  # ---------------------------------------------------------------- loop
  batches = data_lib.train_batches(
      data, start_step=start_step, global_batch_size=config.batch_size, seed=config.seed,
      process_index=jax.process_index(), process_count=jax.process_count(),
      worker_count=config.grain_workers)
  progress = Progress(config.num_train_steps, "train", unit="step", start=start_step,
                      enabled=jax.process_index() == 0)
  window, last_time, last_step = [], time.monotonic(), start_step
  result, stopped = None, False
  try:
    for step in range(start_step + 1, config.num_train_steps + 1):
      images = sharding.global_batch(mesh, next(batches))
      state, metrics = step_fn(state, images)
      window.append((step, metrics))
      progress.update(1)
      stopping = stop.should_stop(step)
      is_last = step == config.num_train_steps
      save = is_last or stopping or step % config.checkpoint_every_steps == 0
      if save or step % config.log_every_steps == 0:
        window = [(s, jax.device_get(m)) for s, m in window]
        _check_finite(window)
        now = time.monotonic()
        summary = _window_mean(window)
        summary["steps_per_sec"] = (step - last_step) / max(now - last_time, 1e-9)
        writer.write(step, {f"train/{k}": v for k, v in summary.items()})
        window, last_time, last_step = [], now, step
      if save:
        checkpointer.save(step, state)
      if is_last or step % config.eval_every_steps == 0:
        result = evaluator.run(state["params"], step)
        writer.write(step, {f"eval/{k}": v for k, v in result.items()})
        writer.write_json("eval.json", {"step": step, **result})
        log(f"step {step}: " + json.dumps(
            {k: round(float(v), 4) for k, v in result.items() if np.ndim(v) == 0}))
      if stopping and not is_last:
        stopped = True
        log(f"stopped by signal at step {step}; checkpoint saved, rerun the same command to"
            " continue")
        break
    if result is None and not stopped:  # resumed an already finished run: evaluate the final params once
      result = evaluator.run(state["params"], start_step)
      writer.write_json("eval.json", {"step": start_step, **result})
  finally:
    checkpointer.close()
    writer.close()
  return result
