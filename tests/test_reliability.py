"""Reliability: kill -9 and SIGTERM mid-run, damaged checkpoints, shape mismatches, NaN losses."""

import json
import pathlib
import random
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from dvq_jax.errors import ConfigError
from dvq_jax.errors import NumericalError
from dvq_jax.training import checkpointing
from dvq_jax.vqvae import train
from tests import config_files

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(name="data")
def _data(tmp_path) -> pathlib.Path:
  rng = np.random.default_rng(0)
  path = tmp_path / "data.npz"
  np.savez(path, train=rng.integers(0, 256, (64, 16, 16, 3), dtype=np.uint8),
           test=rng.integers(0, 256, (8, 16, 16, 3), dtype=np.uint8))
  return path


def _config(data, **overrides):
  config = config_files.load("configs/demo.py:small")
  config.dataset = f"npz:{data}"
  config.eval_every_steps = 1000
  config.num_recon_images = 0
  for key, value in overrides.items():
    config[key] = value
  return config


def _argv(data, workdir, steps):
  return [sys.executable, "-m", "dvq_jax.main", "--config=configs/demo.py:small",
          f"--config.dataset=npz:{data}", f"--config.num_train_steps={steps}",
          "--config.checkpoint_every_steps=2", "--config.eval_every_steps=1000",
          "--config.log_every_steps=1", "--config.num_recon_images=0", f"--workdir={workdir}"]


def _params(workdir):
  checkpointer = checkpointing.Checkpointer(str(workdir), 3)
  try:
    return [np.asarray(x) for x in jax.tree.leaves(checkpointer.restore_arrays()["params"])]
  finally:
    checkpointer.close()


def _assert_identical(one, other):
  for a, b in zip(_params(one), _params(other), strict=True):
    np.testing.assert_array_equal(a, b)


def _wait_for_checkpoint(workdir: pathlib.Path, proc, timeout=900):
  start = time.monotonic()
  while not list((workdir / "checkpoints").glob("[0-9]*")):
    assert proc.poll() is None, proc.communicate()[1][-2000:]
    assert time.monotonic() - start < timeout
    time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["kill -9", "SIGTERM"])
def test_interrupted_run_resumes_bit_identically(tmp_path, data, how):
  # 16 steps with a checkpoint every 2: the signal, sent within 1 s of the first checkpoint,
  # lands with many steps to go (a run that finished first fails the test below).
  steps = 16
  straight = subprocess.Popen(_argv(data, tmp_path / "straight", steps), cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  interrupted = tmp_path / "interrupted"
  proc = subprocess.Popen(_argv(data, interrupted, steps), cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  _wait_for_checkpoint(interrupted, proc)
  time.sleep(random.uniform(0.0, 1.0))  # somewhere after the first checkpoint
  proc.send_signal(signal.SIGKILL if how == "kill -9" else signal.SIGTERM)
  out, err = proc.communicate(timeout=300)
  if how == "SIGTERM":
    # Stopped mid-run, at a step boundary, with a checkpoint of that step.
    assert proc.returncode == 0 and "stopped by signal at step " in out, (out[-2000:], err[-2000:])
    stopped_at = int(out.split("stopped by signal at step ")[1].split(";")[0])
    assert 2 <= stopped_at < steps
    assert (interrupted / "checkpoints" / str(stopped_at)).is_dir()
  else:
    assert proc.returncode == -signal.SIGKILL
  rerun = subprocess.run(_argv(data, interrupted, steps), cwd=ROOT, capture_output=True,
                         text=True, timeout=600)
  assert rerun.returncode == 0, rerun.stderr[-2000:]
  assert straight.wait(timeout=600) == 0
  _assert_identical(tmp_path / "straight", interrupted)
  # Steps the killed run logged after its last checkpoint were dropped on resume: each once.
  records = [json.loads(line) for line in (interrupted / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in records if "train/loss" in r] == list(range(1, steps + 1))


def test_sigterm_before_any_training_ends_the_command_at_once():
  # The CLI's policy: with no training loop started there is nothing to save, so SIGTERM ends
  # the process with one line and 128 + 15.
  code = ("import signal; from dvq_jax.training import stopping;"
          " stopping.handle_signals_for_process(); signal.raise_signal(signal.SIGTERM);"
          " print('still running')")
  result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
  assert result.returncode == 128 + signal.SIGTERM and "still running" not in result.stdout
  assert result.stderr.startswith("error: interrupted by SIGTERM") and result.stderr.count("\n") == 1


def test_sigterm_after_the_last_step_exits_cleanly_with_the_last_checkpoint(tmp_path, data):
  # A scheduler may stop a job while it writes its last checkpoint or exits: SIGTERM every
  # 10 ms from the final evaluation's log line on, until the process ends, must change nothing.
  steps, workdir = 4, tmp_path / "run"
  with open(tmp_path / "stderr", "w") as stderr:
    proc = subprocess.Popen(_argv(data, workdir, steps), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=stderr, text=True)
    for line in proc.stdout:
      if line.startswith(f"step {steps}:"):
        break
    signals = 0
    while proc.poll() is None:
      proc.send_signal(signal.SIGTERM)
      signals += 1
      time.sleep(0.01)
    proc.stdout.read()
  assert proc.returncode == 0, ((tmp_path / "stderr").read_text()[-2000:], signals)
  assert signals > 0
  checkpointer = checkpointing.Checkpointer(str(workdir), 3)
  try:
    assert int(checkpointer.restore_arrays()["step"]) == steps  # complete, digest checked
  finally:
    checkpointer.close()


@pytest.mark.slow  # three training runs
def test_damaged_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, data, capsys):
  train.train_and_evaluate(_config(data, num_train_steps=6), str(tmp_path / "straight"))
  damaged = tmp_path / "damaged"
  train.train_and_evaluate(_config(data, num_train_steps=4), str(damaged))
  for blob in (damaged / "checkpoints" / "4" / "state").rglob("d/*"):
    blob.write_bytes(blob.read_bytes()[: len(blob.read_bytes()) // 2])  # truncate
  capsys.readouterr()
  train.train_and_evaluate(_config(data, num_train_steps=6), str(damaged))
  out = capsys.readouterr().out
  assert "checkpoint 4 is damaged" in out and "restored checkpoint 2" in out
  assert (damaged / "corrupt_checkpoints" / "step_4").is_dir()  # kept, not deleted
  _assert_identical(tmp_path / "straight", damaged)


def test_silently_changed_checkpoint_bytes_are_caught_by_the_digest(tmp_path, data, capsys):
  workdir = tmp_path / "run"
  train.train_and_evaluate(_config(data, num_train_steps=4), str(workdir))
  checkpointer = checkpointing.Checkpointer(str(workdir), 3)
  state = checkpointer.restore_arrays(4)
  checkpointer.close()
  # Re-save step 4 with one changed weight but the old digest, as a bit flip on disk would.
  digest = (workdir / "checkpoints" / "4" / "digest" / "process_0.json").read_text()
  leaves, treedef = jax.tree.flatten(state)
  leaves[-1] = np.asarray(leaves[-1]) + 1.0
  tampered = jax.tree.unflatten(treedef, leaves)
  import shutil  # pylint: disable=g-import-not-at-top
  shutil.rmtree(workdir / "checkpoints" / "4")
  checkpointer = checkpointing.Checkpointer(str(workdir), 3)
  checkpointer.save(4, tampered)
  checkpointer.close()
  (workdir / "checkpoints" / "4" / "digest" / "process_0.json").write_text(digest)
  checkpointer = checkpointing.Checkpointer(str(workdir), 3)
  with pytest.raises(ConfigError, match="checkpoint 4 .* do not match the digest"):
    checkpointer.restore_arrays(4)  # what the tokenizer, the prior and the codec load through
  checkpointer.close()
  capsys.readouterr()
  train.train_and_evaluate(_config(data, num_train_steps=4), str(workdir))
  out = capsys.readouterr().out
  assert "checkpoint 4 is damaged (contents do not match the digest" in out
  assert "restored checkpoint 2" in out


def test_checkpoint_of_another_shape_names_the_field(tmp_path, data):
  train.train_and_evaluate(_config(data, num_train_steps=2), str(tmp_path))
  with pytest.raises(ConfigError, match="codebook_size"):
    train.train_and_evaluate(_config(data, num_train_steps=4, codebook_size=32), str(tmp_path))


def test_nan_loss_stops_with_step_and_metric_and_keeps_checkpoints(tmp_path, data):
  written = tmp_path / "keep.txt"
  written.write_text("user file")
  config = _config(data, num_train_steps=6, learning_rate=1e38, checkpoint_every_steps=1,
                   log_every_steps=1)
  with pytest.raises(NumericalError, match=r"is not finite at step \d") as error:
    train.train_and_evaluate(config, str(tmp_path))
  bad_step = int(str(error.value).split("at step ")[1].split(";")[0])
  assert bad_step >= 2
  steps = sorted(int(p.name) for p in (tmp_path / "checkpoints").glob("[0-9]*"))
  assert steps and max(steps) < bad_step  # only good checkpoints, none deleted
  for value in jax.tree.leaves(_params(tmp_path)):
    assert np.all(np.isfinite(value))
  assert written.read_text() == "user file"
