"""Bad input, table-driven: one-line `error:` message, exit code 2, no traceback, no compute."""

import os
import pathlib
import subprocess
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEMO = "--config=configs/demo.py:small"


def _npz(tmp: pathlib.Path, name: str, **arrays) -> str:
  path = tmp / f"{name}.npz"
  np.savez(path, **arrays)
  return f"--config.dataset=npz:{path}"


def _cases(tmp: pathlib.Path):
  images = np.zeros((4, 32, 32, 3), np.uint8)
  (tmp / "empty" / "train").mkdir(parents=True)
  (tmp / "empty" / "test").mkdir(parents=True)
  (tmp / "a_file").write_text("not a directory")
  return {
      # name: (argv after the module, expected fragment of the message, extra env)
      "unknown dataset": ([DEMO, "--config.dataset=mnist_typo"], "mnist_typo", {}),
      "image size vs downsampling": (
          [DEMO, "--config.model.num_downsamples=6"], "num_downsamples", {}),
      "latent channels not L*D": ([DEMO, "--config.model.latent_channels=7"], "latent_channels",
                                  {}),
      "K < 1": ([DEMO, "--config.codebook_size=0"], "codebook_size", {}),
      "L < 1": ([DEMO, "--config.num_codebooks=0"], "num_codebooks", {}),
      "batch vs devices": ([DEMO, "--config.batch_size=12"], "divisible by the 8 devices",
                           {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}),
      "zero learning rate": ([DEMO, "--config.learning_rate=0"], "learning_rate", {}),
      "negative learning rate": ([DEMO, "--config.learning_rate=-1e-3"], "learning_rate", {}),
      "unwritable workdir": ([DEMO, f"--workdir={tmp / 'a_file' / 'run'}"], "not writable", {}),
      "npz without test": ([DEMO, _npz(tmp, "no_test", train=images)], "test", {}),
      "npz wrong dtype": ([DEMO, _npz(tmp, "float", train=images.astype(np.float32),
                                      test=images.astype(np.float32))], "uint8", {}),
      "npz wrong rank": ([DEMO, _npz(tmp, "rank3", train=images[..., 0], test=images[..., 0])],
                         "rank", {}),
      "empty image folder": ([DEMO, f"--config.dataset=folder:{tmp / 'empty'}"], "empty", {}),
      "unknown quantizer": ([DEMO, "--config.quantizer=pq"], "quantizer", {}),
      "unknown likelihood": ([DEMO, "--config.likelihood=gauss"], "likelihood", {}),
      "unknown field override": ([DEMO, "--config.num_codebook=3"], "num_codebook", {}),
      "missing config file": (["--config=configs/nope.py"], "nope.py", {}),
      "svq groups vs positions": ([DEMO, "--config.quantizer=svq", "--config.num_codebooks=3"],
                                  "num_codebooks", {}),
      "unknown upsampling": ([DEMO, "--config.model.upsample=nearest"], "upsample", {}),
      "negative beta": ([DEMO, "--config.beta=-1.0"], "beta", {}),
      "unknown experiment": ([DEMO, "--config.experiment=gan"], "experiment", {}),
      "missing workdir flag": ([DEMO, "--workdir="], "workdir", {}),
  }


def test_bad_input_table(tmp_path):
  cases = _cases(tmp_path)
  assert len(cases) >= 15
  procs = {}
  for name, (argv, _, env) in cases.items():
    workdir = tmp_path / "runs" / name.replace(" ", "_").replace("*", "x")
    if not any(a.startswith("--workdir") for a in argv):
      argv = [*argv, f"--workdir={workdir}"]
    procs[name] = (workdir, subprocess.Popen(
        [sys.executable, "-m", "dvq_jax.main", *argv], cwd=ROOT, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **env}))
  failures = []
  for name, (workdir, proc) in procs.items():
    out, err = proc.communicate(timeout=300)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    fragment = cases[name][1]
    if (proc.returncode != 2 or "Traceback" in out + err or len(errors) != 1
        or fragment not in errors[0] or (workdir / "checkpoints").exists()):
      failures.append(f"{name}: rc={proc.returncode} stderr tail={err[-600:]!r}")
  assert not failures, "\n".join(failures)
