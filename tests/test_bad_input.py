"""Bad input, table-driven: one-line `error:` message, exit code 2, no traceback, no compute.

Config values are checked in this process through `main.run` (what the CLI calls after parsing
its flags); what only the command line sees runs as `python -m dvq_jax.main` subprocesses."""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from dvq_jax import main
from dvq_jax.errors import ConfigError
from dvq_jax.vqvae import validation
from tests.vqvae_fixtures import small

ROOT = pathlib.Path(__file__).resolve().parents[1]
DEMO = "--config=configs/demo.py:small"


def _npz(tmp: pathlib.Path, name: str, **arrays) -> str:
  path = tmp / f"{name}.npz"
  np.savez(path, **arrays)
  return f"npz:{path}"


def _workdir(tmp: pathlib.Path, name: str) -> pathlib.Path:
  return tmp / "runs" / name.replace(" ", "_").replace("*", "x").replace("'", "")


def _value_cases(tmp: pathlib.Path):
  """Mistakes in config values, fed to `main.run` in this process (the call the CLI makes)."""
  images = np.zeros((4, 32, 32, 3), np.uint8)
  (tmp / "empty" / "train").mkdir(parents=True)
  (tmp / "empty" / "test").mkdir(parents=True)
  (tmp / "a_file").write_text("not a directory")
  return {
      # name: (config overrides, expected fragment of the message, workdir if not the default)
      "unknown dataset": ({"dataset": "mnist_typo"}, "mnist_typo", None),
      "image size vs downsampling": ({"model.num_downsamples": 6}, "num_downsamples", None),
      "latent channels not L*D": ({"model.latent_channels": 7}, "latent_channels", None),
      "K < 1": ({"codebook_size": 0}, "codebook_size", None),
      "L < 1": ({"num_codebooks": 0}, "num_codebooks", None),
      "zero learning rate": ({"learning_rate": 0.0}, "learning_rate", None),
      "negative learning rate": ({"learning_rate": -1e-3}, "learning_rate", None),
      "unwritable workdir": ({}, "not writable", tmp / "a_file" / "run"),
      "npz without test": ({"dataset": _npz(tmp, "no_test", train=images)}, "test", None),
      "npz wrong dtype": ({"dataset": _npz(tmp, "float", train=images.astype(np.float32),
                                           test=images.astype(np.float32))}, "uint8", None),
      "npz wrong rank": ({"dataset": _npz(tmp, "rank3", train=images[..., 0],
                                          test=images[..., 0])}, "rank", None),
      "empty image folder": ({"dataset": f"folder:{tmp / 'empty'}"}, "empty", None),
      "unknown quantizer": ({"quantizer": "pq"}, "quantizer", None),
      "unknown likelihood": ({"likelihood": "gauss"}, "likelihood", None),
      "svq groups vs positions": ({"quantizer": "svq", "num_codebooks": 3}, "num_codebooks",
                                  None),
      "unknown upsampling": ({"model.upsample": "nearest"}, "upsample", None),
      "negative beta": ({"beta": -1.0}, "beta", None),
      "unknown experiment": ({"experiment": "gan"}, "experiment", None),
  }


def _cli_cases(tmp: pathlib.Path):
  """Mistakes only the command line sees (flags, config files, devices, logging), plus two value
  mistakes that show a ConfigError from inside a run becomes the one `error:` line."""
  images = np.zeros((4, 32, 32, 3), np.uint8)
  configs = {"raises": "  raise RuntimeError('no GPU here')", "name_error": "  return undefined",
             "key_error": "  return {}['missing']"}
  for name, body in configs.items():
    (tmp / f"{name}.py").write_text(f"def get_config():\n{body}\n")
  (tmp / "no_get_config.py").write_text("SIZE = 3\n")
  (tmp / "tfds" / "cifar10" / "3.0.2").mkdir(parents=True)  # a version folder, not prepared
  return {
      # name: (argv after the module, expected fragment of the message, extra env)
      "batch vs devices": ([DEMO, "--config.batch_size=12"], "divisible by the 8 devices",
                           {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}),
      "unknown field override": ([DEMO, "--config.num_codebook=3"], "num_codebook", {}),
      "missing config file": (["--config=configs/nope.py"], "nope.py", {}),
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
      "K < 1": ([DEMO, "--config.codebook_size=0"], "codebook_size", {}),
      "K given to fsq": ([DEMO, "--config.quantizer=fsq", "--config.codebook_size=1000"],
                         "config.codebook_size = 1000 is not used by quantizer 'fsq'", {}),
      "npz smaller than a batch": (
          [DEMO, f"--config.dataset={_npz(tmp, 'tiny', train=images, test=images)}",
           "--config.batch_size=8"],
          "exceeds the 4 training images", {}),
      "TFDS not prepared": (
          [DEMO, "--config.dataset=cifar10", f"--config.data_dir={tmp / 'tfds'}"],
          "is not prepared", {}),
  }


@pytest.mark.parametrize("quantizer,field", [
    ("vq", "num_codebooks"), ("fsq", "codebook_size"), ("fsq", "codebook_dim"),
    ("lfq", "codebook_size")])
def test_a_field_the_quantizer_ignores_cannot_be_set_on_the_command_line(quantizer, field):
  config = small("demo", quantizer=quantizer)
  with pytest.raises(ConfigError, match=(
      f"^config.{field} = {config[field]} is not used by quantizer '{quantizer}'; drop"
      f" --config.{field} [^\n]*$")):
    validation.check_overrides(config, {"quantizer", field})
  validation.check_overrides(config, {"quantizer", "batch_size", "model.hidden_channels"})
  # Config files may hold any value there: one file serves every quantizer.
  validation.check_config(config)


@pytest.mark.parametrize("quantizer,overrides", [
    ("vq", {"equal_width": True}),  # L*D-wide vq vectors: num_codebooks counts
    ("lfq", {}), ("dvq", {}), ("svq", {})])
def test_fields_the_quantizer_reads_can_be_set(quantizer, overrides):
  config = small("demo", quantizer=quantizer, **overrides)
  validation.check_overrides(config, {"num_codebooks", "codebook_dim", "quantizer"})


# Cases whose whole stderr must be the one error line (nothing logged before it).
ONLY_THE_ERROR = ("TFDS not prepared", "config raises", "workdir without config",
                  "npz smaller than a batch")


def test_bad_config_values_raise_one_line_before_compute(tmp_path):
  failures = []
  for name, (overrides, fragment, workdir) in _value_cases(tmp_path).items():
    config = small("demo", **overrides)
    workdir = workdir or _workdir(tmp_path, name)
    try:
      main.run(config, str(workdir))
      failures.append(f"{name}: no error")
    except ConfigError as e:
      message = str(e)
      if "\n" in message or fragment not in message or (workdir / "checkpoints").exists():
        failures.append(f"{name}: {message!r}")
  assert not failures, "\n".join(failures)


@pytest.mark.slow  # 14 processes, each importing JAX: ~50 s of CPU
def test_bad_command_lines_exit_2_with_one_error_line(tmp_path):
  cases = _cli_cases(tmp_path)
  procs = {}
  for name, (argv, _, env) in cases.items():
    workdir = _workdir(tmp_path, name)
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
