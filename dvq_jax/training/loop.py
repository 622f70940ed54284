r"""The one training loop every model of the project runs (the VQ-VAE, the code prior, ...).

A model supplies four pure parts and the loop does the rest:

  init_state(key) -> state
      The whole train state as a pytree: a dict with an int32 scalar `"step"` (the number of
      steps taken) and whatever else the model needs (`"params"`, `"opt_state"`, ...). It must
      be jittable: the loop builds the state with `initial_state` (a `jax.jit` with
      `out_shardings`), replicated over the mesh, unless a checkpoint restores it. Shapes come from
      `jax.eval_shape(init_state, key)`; `key = jax.random.key(config.seed)`.
  train_step(state, batch) -> (state, metrics)
      One step; `metrics` is a dict of float32 arrays (scalars, or small per-codebook vectors).
      The loop jits it with the batch sharded on the `'data'` mesh axis (the leading axis of
      every leaf; a pytree of arrays is fine), the state replicated and donated.
      `training.optim.gradient_step(loss_fn, tx)` builds one from a `loss_fn(params, batch)`.
  batches(start_step) -> iterator
      Process-local numpy batches for steps start_step + 1, start_step + 2, ... (each process
      passes its `global_batch // process_count` rows). For an exact resume the batch of a step
      must depend only on (seed, step), never on how many steps this process has run.
  evaluate(state, step) -> metrics
      Scalars or small arrays over the test data; every process calls it (it may run sharded
      computations), the loop writes what process 0 gets.
  init_from_data(state) -> state   (optional)
      Called once on a freshly initialised state, never on a restored one (e.g. k-means
      codebooks from the first batches); its result is checkpointed as step 0, so a resumed
      run never redoes it.

A caller, in outline (tests/test_loop.py runs a complete one on a linear regression)::

      from dvq_jax.training import loop, optim
      tx = optim.make_optimizer(config)
      loop.run(config, workdir, init_state=init, train_step=optim.gradient_step(loss_fn, tx),
               batches=batches, evaluate=evaluate, description="prior on cifar10")

What the loop guarantees (see docs/reliability.md):
  * checkpoints every `config.checkpoint_every_steps` steps and at the end (orbax, the newest
    `config.keep_checkpoints` kept, each with per-process SHA-256 digests of its shards); on
    start it restores the newest checkpoint whose bytes match their digest, retrying transient
    storage errors and quarantining damaged checkpoints (`checkpointing`; `CheckpointError`
    if one cannot be read without evidence of damage);
  * exact resume: with deterministic `batches`, a run stopped (kill -9, SIGTERM) and rerun
    ends bit-identical to an uninterrupted one;
  * SIGTERM / SIGINT stop at the next step boundary with a checkpoint, then `Stopped` is raised
    (in a multi-process run all processes stop at the same step through JAX's preemption sync
    point; `stopping.py`); the handlers stay until the last checkpoint is written, so a signal
    after the last step changes nothing;
  * a NaN or inf metric stops training with `NumericalError` naming the metric and the step,
    keeping only checkpoints written before it (metrics are checked every
    `config.log_every_steps` steps and before each checkpoint);
  * process 0 writes `config.json`, `metrics.jsonl` (`train/*` window means plus
    `train/steps_per_sec` every `log_every_steps`, `eval/*` every `eval_every_steps`),
    TensorBoard events and `eval.json` (the latest evaluation), and draws a progress line.

Config fields read: num_train_steps, seed, log_every_steps, eval_every_steps,
checkpoint_every_steps, keep_checkpoints (checked by `training.validation.check_training`).
"""

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping

import jax
import ml_collections
import numpy as np
from etils import epath

from dvq_jax.errors import NumericalError
from dvq_jax.errors import Stopped
from dvq_jax.training import checkpointing
from dvq_jax.training import sharding
from dvq_jax.training import stopping
from dvq_jax.training import validation
from dvq_jax.training.progress import Progress
from dvq_jax.training.writers import MetricWriter


# The state is built once per run and never timed, so on CPU it is compiled for compile speed:
# LLVM -O1 instead of XLA's default -O3 compiles a VQ-VAE's init 1.3-1.5x faster (1.5-2.1 s
# instead of 2.3-2.8 s on 2 Zen 3 cores; 3-5x before `flat_random` made the draws cheap), with
# bit-identical params on every config (tests/test_loop.py, benchmarks/RESULTS.md "Test-suite
# time"). Other backends keep their defaults.
_CPU_INIT_COMPILER_OPTIONS = {"xla_backend_optimization_level": 1}


def initial_state(init_state: Callable[[jax.Array], dict], key: jax.Array, out_shardings):
  """`jax.jit(init_state, out_shardings=out_shardings)(key)`, compiled fast on CPU."""
  options = _CPU_INIT_COMPILER_OPTIONS if jax.default_backend() == "cpu" else None
  return jax.jit(init_state, out_shardings=out_shardings, compiler_options=options)(key)


def abstract_state(init_state: Callable[[jax.Array], dict], key: jax.Array, mesh):
  """The state's shapes and dtypes (nothing computed) and its sharding: replicated over `mesh`.

  Returns:
    `(abstract, state_sharding)`: a pytree of `jax.ShapeDtypeStruct` leaves that carry their
    sharding, and the matching pytree of `NamedSharding` leaves.
  """
  abstract = jax.eval_shape(init_state, key)
  state_sharding = jax.tree.map(lambda _: sharding.replicated(mesh), abstract)
  abstract = jax.tree.map(
      lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, state_sharding)
  return abstract, state_sharding


def jit_train_step(train_step: Callable[[dict, object], tuple[dict, dict]], mesh, state_sharding):
  """The step as the loop runs it: batch sharded on `data`, state replicated and donated."""
  return jax.jit(
      train_step,
      in_shardings=(state_sharding, sharding.batch_sharding(mesh)),
      out_shardings=(state_sharding, sharding.replicated(mesh)),
      donate_argnums=0,
  )


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


def run(
    config: ml_collections.ConfigDict,
    workdir: str,
    *,
    init_state: Callable[[jax.Array], dict],
    train_step: Callable[[dict, object], tuple[dict, dict]],
    batches: Callable[[int], Iterator],
    evaluate: Callable[[dict, int], Mapping[str, object]],
    description: str,
    init_from_data: Callable[[dict], dict] | None = None,
) -> dict:
  """Trains to `config.num_train_steps`, resuming from `workdir`; returns the final evaluation.

  Args:
    config: the run's config (the fields listed in the module docstring are read here).
    workdir: where checkpoints and metrics go (local or gs://); created if missing. Nothing is
      written into it until its checkpoints (if any) are known to fit `config`.
    init_state: `key -> state`, see the module docstring.
    train_step: `(state, batch) -> (state, metrics)`, pure; jitted and donated here.
    batches: `start_step -> iterator` of process-local batches for the following steps.
    evaluate: `(state, step) -> metrics`, called every `eval_every_steps` and at the end.
    description: what is trained on what, for the first log line (e.g. "dvq on cifar10").
    init_from_data: optional `state -> state` for a fresh state, checkpointed as step 0.

  Returns:
    The last evaluation (a run resumed after its last step evaluates its final state once).

  Raises:
    Stopped: SIGTERM or SIGINT stopped the run; its checkpoint at the stop step is saved.
    NumericalError: a train metric became NaN or inf.
    ConfigError: a checkpoint in `workdir` does not fit the state `init_state` makes.
    CheckpointError: a checkpoint could not be read, without evidence of damage.
  """
  progress = None

  def log(message: str) -> None:
    if jax.process_index():
      logging.info(message)
    elif progress is not None:
      progress.write(message)  # ends the progress line first
    else:
      print(message, flush=True)

  validation.check_workdir(workdir, config)
  validation.create_workdir(workdir)

  # ---------------------------------------------------------------- state: restore or init
  mesh = sharding.make_mesh()
  key = jax.random.key(config.seed)
  abstract, state_sharding = abstract_state(init_state, key, mesh)
  checkpointer = checkpointing.Checkpointer(workdir, config.keep_checkpoints, log)
  state = checkpointer.restore_latest(abstract)
  if state is None:
    state = initial_state(init_state, key, state_sharding)
    if init_from_data is not None:
      state = jax.device_put(init_from_data(state), state_sharding)
      checkpointer.save(0, state)
  start_step = int(state["step"])
  if jax.process_index() == 0:  # only now: the workdir's checkpoints are known to fit the config
    (epath.Path(workdir) / "config.json").write_text(config.to_json_best_effort(indent=2))
  log(f"{description}: {jax.device_count()} devices, {jax.process_count()} processes,"
      f" starting at step {start_step}")

  # ---------------------------------------------------------------- compiled step
  step_fn = jit_train_step(train_step, mesh, state_sharding)
  writer = MetricWriter(workdir)
  writer.drop_after(start_step)  # steps logged after the checkpoint by a killed run come again

  def evaluate_and_write(step: int, *, record: bool = True) -> dict:
    start = time.monotonic()
    result = dict(evaluate(state, step))
    if record:
      writer.write(step, {f"eval/{k}": v for k, v in result.items()})
    writer.write_json("eval.json", {"step": step, **result})
    # The seconds say what the pause in the progress line at this step was.
    log(f"step {step}: evaluated in {time.monotonic() - start:.1f} s " + json.dumps(
        {k: round(float(v), 4) for k, v in result.items() if np.ndim(v) == 0}))
    return result

  # ---------------------------------------------------------------- loop
  iterator = batches(start_step)
  progress = Progress(config.num_train_steps, "train", unit="step", start=start_step,
                      enabled=jax.process_index() == 0)
  window, last_time, last_step = [], time.monotonic(), start_step
  result, stopped = None, None
  stop = stopping.StopSignal()
  stop.install()
  try:
    for step in range(start_step + 1, config.num_train_steps + 1):
      batch = jax.tree.map(lambda x: sharding.global_batch(mesh, x), next(iterator))
      state, metrics = step_fn(state, batch)
      window.append((step, metrics))
      if len(window) > 1:  # JAX dispatches asynchronously: count a step once it has finished,
        jax.block_until_ready(window[-2][1])  # keeping one in flight while the next batch loads
        progress.update(step - 1 - progress.done)
      stop_now = stop.should_stop(step)
      is_last = step == config.num_train_steps
      save = is_last or stop_now or step % config.checkpoint_every_steps == 0
      if save or step % config.log_every_steps == 0:
        window = [(s, jax.device_get(m)) for s, m in window]
        _check_finite(window)
        now = time.monotonic()
        summary = _window_mean(window)
        summary["steps_per_sec"] = (step - last_step) / max(now - last_time, 1e-9)
        writer.write(step, {f"train/{k}": v for k, v in summary.items()})
        window, last_time, last_step = [], now, step
      if step > progress.done and not window:  # every step so far has finished
        progress.update(step - progress.done)
      if save:
        checkpointer.save(step, state)
      if is_last or step % config.eval_every_steps == 0:
        result = evaluate_and_write(step)
      if stop_now and not is_last:
        stopped = step
        log(f"stopped by signal at step {step}; checkpoint saved, rerun the same command to"
            " continue")
        break
    if result is None and stopped is None:  # resumed a finished run: its eval is in metrics.jsonl
      result = evaluate_and_write(start_step, record=False)
  finally:
    try:
      progress.close()  # ends the line before any error message
      if hasattr(iterator, "close"):
        iterator.close()
      checkpointer.close()  # waits for the last save: a SIGTERM here must not cut it
      writer.close()
    finally:
      stop.uninstall()
  if stopped is not None:
    raise Stopped(f"stopped by signal at step {stopped}; checkpoint saved in {workdir}, run"
                  " again to continue")
  return result
