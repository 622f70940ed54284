r"""Command-line entry point: `python -m dvq_jax.main --config=configs/X.py --workdir=W`.

The config's `experiment` field picks what runs::

  static_prior   -- codebooks trained alone on Gaussian blobs (paper Fig. 3/4),
  learned_prior  -- the DVQ-VAE trained and evaluated on images (paper Table 1),
  rate_distortion -- a grid of DVQ-VAEs over quantizer, L and K (configs/rate_distortion.py),
  code_prior     -- an autoregressive prior over a trained VQ-VAE's codes (its true bits/dim).

Override any field from the command line: `--config.quantizer=vq --config.batch_size=64`.
User mistakes end with a one-line `error:` message and exit code 2, before any compute.
SIGTERM before training starts ends the process at once; from then on it stops training at the
next step boundary with a checkpoint and exit code 0 (`dvq_jax/training/stopping.py`).
On Linux the command first re-executes itself with `GLIBC_TUNABLES=glibc.malloc.hugetlb=1`
(`dvq_jax/huge_pages.py`: 12-16% faster CPU train steps; `glibc.malloc.hugetlb=0` opts out).
"""

import os
import re
import sys
import traceback

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from dvq_jax import huge_pages
from dvq_jax.errors import CheckpointError
from dvq_jax.errors import ConfigError
from dvq_jax.errors import NumericalError
from dvq_jax.errors import Stopped

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Path to a config file, optionally followed by :arg.", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Where outputs and checkpoints go (local or gs://).")


def run(config, workdir: str):
  """Runs the experiment the config names; the same call tests and notebooks make."""
  experiment = config.get("experiment")
  if experiment == "static_prior":
    from dvq_jax.static_prior import run as static_prior_run
    return static_prior_run.run(config, workdir)
  if experiment == "learned_prior":
    from dvq_jax.vqvae import train
    return train.train_and_evaluate(config, workdir)
  if experiment == "rate_distortion":
    from dvq_jax import rate_distortion
    return rate_distortion.run(config, workdir)
  if experiment == "code_prior":
    from dvq_jax.prior import train as prior_train
    return prior_train.train_and_evaluate(config, workdir)
  raise ConfigError(
      f"config.experiment = {experiment!r} is unknown; use 'static_prior', 'learned_prior',"
      " 'rate_distortion' or 'code_prior'"
  )


def _fail(message: str, code: int = 2) -> None:
  print(f"error: {message}", file=sys.stderr)
  sys.exit(code)


def main(argv):
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO; --verbosity=0 shows it
  if len(argv) > 1:
    _fail(f"unexpected arguments {argv[1:]}; use --config=... --workdir=...")
  if _CONFIG.value is None:
    _fail("--config is required, e.g. --config=configs/demo.py")
  if not _WORKDIR.value:
    _fail("--workdir is required, e.g. --workdir=/tmp/dvq_run")
  try:
    config = _CONFIG.value
    config.get("experiment")  # a config file that failed to load raises on first access
  except Exception as e:  # pylint: disable=broad-except  (any failure inside the config file)
    reason = str(e).strip().splitlines()[-1].strip() if str(e).strip() else type(e).__name__
    _fail(f"cannot load --config: {reason}")
  # Imported here, not at the top: it imports JAX, which must not load before the re-exec.
  from dvq_jax.training import stopping  # pylint: disable=g-import-not-at-top
  stopping.handle_sigterm_for_process()
  try:
    run(config, _WORKDIR.value)
  except ConfigError as e:
    _fail(str(e))
  except (NumericalError, CheckpointError) as e:
    _fail(str(e), code=1)
  except Stopped:
    pass  # the loop said where it stopped; a preempted job that saved its work exits 0
  stopping.ignore_sigterm_while_exiting()


def _config_path(argv) -> str | None:
  """The file of `--config=path[:arg]` (or `--config path`) in argv, without its `:arg`."""
  for i, item in enumerate(argv):
    if item.startswith("--config="):
      return item[len("--config="):].split(":")[0]
    if item == "--config" and i + 1 < len(argv):
      return argv[i + 1].split(":")[0]
  return None


def _raised_in_config_file(error: BaseException, path: str | None):
  """(error, line) of the error raised by the config file's own code, or (None, None).

  absl wraps some errors in its own flag errors; the chain of causes is searched too.
  """
  target = os.path.realpath(path) if path else None
  while target and error is not None:
    lines = [frame.lineno for frame in traceback.extract_tb(error.__traceback__)
             if os.path.realpath(frame.filename) == target]
    if lines:
      return error, lines[-1]
    error = error.__cause__ or error.__context__
  return None, None


def _unknown_field(error: BaseException, argv) -> str:
  """`unknown config field 'model.hiden'; did you mean 'model.hidden'?` from ml_collections'
  KeyError/AttributeError, with the dotted name of the override that caused it."""
  text = str(error.args[0] if error.args else error)
  suggestion = re.search(r'Did you mean "([^"]+)" instead of "([^"]+)"', text)
  name = suggestion.group(2) if suggestion else re.findall(r"[A-Za-z_][\w]*", text)[0]
  overrides = [item[len("--config."):].split("=")[0] for item in argv
               if item.startswith("--config.")]
  dotted = next((o for o in overrides if name in o.split(".")), name)
  message = f"unknown config field {dotted!r}"
  if suggestion:
    parts = dotted.split(".")
    fixed = ".".join(suggestion.group(1) if part == name else part for part in parts)
    return f"{message}; did you mean {fixed!r}?"
  return f"{message}; fields are listed in the config file and dvq_jax/vqvae/defaults.py"


def _parse_flags(argv):
  """absl flag parsing with one-line errors: bad --config file or path, unknown field."""
  try:
    return flags.FLAGS(argv)
  except Exception as e:  # pylint: disable=broad-except  (anything a config file can raise)
    path = _config_path(argv)
    cause, line = _raised_in_config_file(e, path)
    if cause is not None:  # raised by the config file's own code (get_config or an import)
      reason = str(cause).strip().splitlines()[-1].strip() if str(cause).strip() else ""
      _fail(f"--config {path} failed at line {line}: {type(cause).__name__}"
            f"{': ' + reason if reason else ''}")
    if isinstance(e, AttributeError) and "get_config" in str(e):
      _fail(f"--config {path} has no get_config(); define get_config() returning a"
            " ml_collections.ConfigDict")
    if isinstance(e, (KeyError, AttributeError)):
      _fail(_unknown_field(e, argv))
    lines = [line.strip() for line in str(e).splitlines() if line.strip()] or [type(e).__name__]
    if len(lines) > 1:  # a traceback from inside the config file: its first and last lines
      lines = [lines[0].split(": Error whilst")[0], lines[-1]]
    _fail(f"{': '.join(lines)} (check --config and --config.<field> overrides)")


if __name__ == "__main__":
  huge_pages.reexec_with_huge_pages()  # glibc reads its tunables only at start-up
  app.run(main, flags_parser=_parse_flags)
