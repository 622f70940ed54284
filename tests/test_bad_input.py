"""Bad input, table-driven: one-line `error:` message, exit code 2, no traceback, no compute."""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

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
  configs = {"raises": "  raise RuntimeError('no GPU here')", "name_error": "  return undefined",
             "key_error": "  return {}['missing']"}
  for name, body in configs.items():
    (tmp / f"{name}.py").write_text(f"def get_config():\n{body}\n")
  (tmp / "no_get_config.py").write_text("SIZE = 3\n")
  (tmp / "tfds" / "cifar10" / "3.0.2").mkdir(parents=True)  # a version folder, not prepared
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
      "config raises": ([f"--config={tmp / 'raises.py'}"],
                        "raises.py failed at line 2: RuntimeError: no GPU here", {}),
      "config NameError": ([f"--config={tmp / 'name_error.py'}"], "NameError", {}),
      "config KeyError": ([f"--config={tmp / 'key_error.py'}"],
                          "key_error.py failed at line 2: KeyError", {}),
      "config without get_config": ([f"--config={tmp / 'no_get_config.py'}"],
                                    "no_get_config.py has no get_config()", {}),
      "workdir without config": ([], "--config is required", {}),
      "typo'd field": ([DEMO, "--config.quantiser=vq"],
                       "unknown config field 'quantiser'; did you mean 'quantizer'?", {}),
      "typo'd nested field": ([DEMO, "--config.model.hiden_channels=8"],
                              "did you mean 'model.hidden_channels'?", {}),
      "npz smaller than a batch": (
          [DEMO, _npz(tmp, "tiny", train=images, test=images), "--config.batch_size=8"],
          "exceeds the 4 training images", {}),
      "TFDS not prepared": (
          [DEMO, "--config.dataset=cifar10", f"--config.data_dir={tmp / 'tfds'}"],
          "is not prepared", {}),
  }


# Cases whose whole stderr must be the one error line (nothing logged before it).
ONLY_THE_ERROR = ("TFDS not prepared", "config raises", "workdir without config",
                  "npz smaller than a batch")


@pytest.mark.slow  # 31 processes, each importing JAX: ~1 min of CPU
def test_bad_input_table(tmp_path):
  cases = _cases(tmp_path)
  assert len(cases) >= 15
  procs = {}
  for name, (argv, _, env) in cases.items():
    workdir = tmp_path / "runs" / name.replace(" ", "_").replace("*", "x").replace("'", "")
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
        or fragment not in errors[0] or (workdir / "checkpoints").exists()
        or (name in ONLY_THE_ERROR and err.strip() != errors[0])):
      failures.append(f"{name}: rc={proc.returncode} stderr tail={err[-600:]!r}")
  assert not failures, "\n".join(failures)
