"""The shared training loop on a model that is not the VQ-VAE, its metric files and progress line."""

import io
import json
import re
import signal
import time

import jax
import jax.experimental
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator

from dvq_jax.errors import NumericalError
from dvq_jax.errors import Stopped
from dvq_jax.training import loop
from dvq_jax.training import optim
from dvq_jax.training import sharding
from dvq_jax.training.progress import Progress
from dvq_jax.training.writers import MetricWriter
from dvq_jax.vqvae.model import build_model
from tests import config_files


def _config(**overrides) -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict(dict(
      num_train_steps=6, seed=0, log_every_steps=1, eval_every_steps=3, checkpoint_every_steps=2,
      keep_checkpoints=5, learning_rate=0.1, lr_schedule="constant", warmup_steps=0))
  config.update(overrides)
  return config


def _linear_regression(config, true_w=(2.0, -1.0)):
  """A least-squares model: the batch of step s is a pure function of s (exact resume)."""
  def loss_fn(params, batch):
    error = batch["x"] @ params["w"] - batch["y"]
    return jnp.mean(error ** 2), {"abs_error": jnp.mean(jnp.abs(error))}

  def init_state(key):
    params = {"w": jax.random.normal(key, (2,))}
    return {"step": jnp.zeros((), jnp.int32), "params": params,
            "opt_state": tx.init(params)}

  def batches(start_step):
    step = start_step
    while True:
      step += 1
      x = np.random.default_rng(step).normal(size=(8, 2)).astype(np.float32)
      yield {"x": x, "y": (x @ np.asarray(true_w, np.float32))}

  def evaluate(state, step):  # pylint: disable=unused-argument
    return {"w_error": jnp.sum(jnp.abs(state["params"]["w"] - jnp.asarray(true_w)))}

  tx = optim.make_optimizer(config)
  return dict(init_state=init_state, train_step=optim.gradient_step(loss_fn, tx),
              batches=batches, evaluate=evaluate, description="linear regression")


def _records(workdir, prefix="train/loss"):
  lines = (workdir / "metrics.jsonl").read_text().splitlines()
  return [r for r in map(json.loads, lines) if prefix in r]


def test_any_model_trains_and_resumes_exactly(tmp_path):
  result = loop.run(_config(num_train_steps=60, eval_every_steps=60), str(tmp_path / "learn"),
                    **_linear_regression(_config()))
  assert result["w_error"] < 0.1  # it learned
  straight = loop.run(_config(), str(tmp_path / "straight"), **_linear_regression(_config()))
  loop.run(_config(num_train_steps=4), str(tmp_path / "resumed"), **_linear_regression(_config()))
  resumed = loop.run(_config(), str(tmp_path / "resumed"), **_linear_regression(_config()))
  assert straight == resumed
  for one, other in zip(_records(tmp_path / "straight"), _records(tmp_path / "resumed"),
                        strict=True):
    assert one["step"] == other["step"] and one["train/loss"] == other["train/loss"]
  assert json.loads((tmp_path / "resumed" / "eval.json").read_text())["step"] == 6
  assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the loop's handler is gone


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_at_the_step_boundary_with_a_checkpoint_and_raises_stopped(tmp_path, sig):
  config = _config(num_train_steps=8, eval_every_steps=2)
  parts = _linear_regression(config)
  make_batches = parts.pop("batches")

  def batches(start_step):  # the signal comes while step 3's batch is made
    for step, batch in enumerate(make_batches(start_step), start_step + 1):
      if step == 3 and start_step == 0:
        signal.raise_signal(sig)
      yield batch

  workdir = tmp_path / "stopped"
  before = signal.getsignal(sig)  # SIG_IGN for SIGINT where pytest runs as a background job
  with pytest.raises(Stopped, match=r"stopped by signal at step 3; checkpoint saved in .*"
                                    r"stopped, run again"):
    loop.run(config, str(workdir), batches=batches, **parts)
  assert (workdir / "checkpoints" / "3").is_dir()
  assert signal.getsignal(sig) is before
  resumed = loop.run(config, str(workdir), batches=batches, **parts)  # no stale stop request
  straight = loop.run(config, str(tmp_path / "straight"), **_linear_regression(config))
  assert resumed == straight
  assert [r["step"] for r in _records(workdir)] == list(range(1, 9))


def test_initial_state_compiled_for_speed_equals_the_default_compile_bit_for_bit():
  # The loop compiles init at LLVM -O1 on CPU; its params must be the ones -O3 gives.
  model = build_model(config_files.load("configs/demo.py:small"))
  images = jnp.zeros((1, 32, 32, 3), jnp.uint8)
  init = lambda key: model.init(key, images)["params"]
  key = jax.random.key(3)
  replicated = sharding.replicated(sharding.make_mesh())
  fast = loop.initial_state(init, key, replicated)
  default = jax.jit(init, out_shardings=replicated)(key)
  assert jax.tree.structure(fast) == jax.tree.structure(default)
  for a, b in zip(jax.tree.leaves(fast), jax.tree.leaves(default)):
    np.testing.assert_array_equal(a, b)
  assert sum(np.count_nonzero(leaf) for leaf in jax.tree.leaves(fast)) > 10_000  # random kernels


def test_nan_stops_with_the_metric_and_the_step(tmp_path):
  config = _config(learning_rate=1e30)
  with pytest.raises(NumericalError, match=r"(loss|grad_norm|abs_error) = .* at step \d"):
    loop.run(config, str(tmp_path), **_linear_regression(config, true_w=(1e30, 1e30)))


def test_records_past_the_restored_step_are_dropped_once(tmp_path):
  writer = MetricWriter(str(tmp_path))
  for step in range(1, 7):
    writer.write(step, {"train/loss": float(step)})
  writer.close()
  with (tmp_path / "metrics.jsonl").open("a") as f:
    f.write('{"step": 7, "train/lo')  # torn by kill -9
  # The resumed run (restored at step 4) is a later process: its event file's name starts with a
  # later second. (Within one second TensorBoard orders files by an unpadded counter: 10 < 9.)
  time.sleep(1.01 - time.time() % 1)
  writer = MetricWriter(str(tmp_path))
  writer.drop_after(4)
  for step in (5, 6):
    writer.write(step, {"train/loss": 10.0 * step})
  writer.close()
  assert [(r["step"], r["train/loss"]) for r in _records(tmp_path)] == [
      (1, 1.0), (2, 2.0), (3, 3.0), (4, 4.0), (5, 50.0), (6, 60.0)]
  events = event_accumulator.EventAccumulator(str(tmp_path / "tensorboard"))
  events.Reload()
  assert [(e.step, e.value) for e in events.Scalars("train/loss")] == [
      (1, 1.0), (2, 2.0), (3, 3.0), (4, 4.0), (5, 50.0), (6, 60.0)]


class _Terminal(io.StringIO):
  def isatty(self):
    return True


def test_progress_line_ends_before_other_output_and_rates_skip_the_first_step(capsys):
  stream = _Terminal()
  bar = Progress(4, "train", unit="step", stream=stream)
  bar.update(1)  # the compiling step: no rate yet
  bar.write("checkpoint saved", file=stream)
  bar.update(3)
  text = stream.getvalue()
  assert "?step/s" in text.split("checkpoint saved")[0]
  before = text.split("checkpoint saved")[0].rsplit("\r", 1)[-1]
  assert before.strip() == ""  # the bar was cleared before the message
  assert text.endswith("\n")  # finished: the line is ended
  plain = io.StringIO()
  bar = Progress(100, "train", unit="step", stream=plain, interval=3600)
  for _ in range(10):
    bar.update(1)
  bar.close()  # stopped early
  assert "\r" not in plain.getvalue()
  assert [line.split()[1] for line in plain.getvalue().splitlines()] == ["1/100", "10/100"]
  capsys.readouterr()


def test_progress_counts_finished_steps_and_evaluations_say_their_time(tmp_path, monkeypatch,
                                                                        capsys):
  finished, seen = [], []
  parts = _linear_regression(_config())
  step_fn = parts["train_step"]

  def train_step(state, batch):
    state, metrics = step_fn(state, batch)
    jax.experimental.io_callback(lambda step: finished.append(int(step)), None, state["step"])
    return state, metrics

  class Recording(Progress):
    def update(self, n=1, **postfix):
      super().update(n, **postfix)
      seen.append((self.done, len(finished)))

  monkeypatch.setattr(loop, "Progress", Recording)
  loop.run(_config(num_train_steps=7, log_every_steps=3, eval_every_steps=7),
           str(tmp_path / "run"), **{**parts, "train_step": train_step})
  assert seen[-1][0] == 7
  assert all(done <= count for done, count in seen), seen  # never a step still running
  assert re.search(r"step 7: evaluated in \d+\.\d s \{", capsys.readouterr().out)
