r"""Command-line entry point: `python -m dvq_jax.main --config=configs/X.py --workdir=W`.

The config's `experiment` field picks what runs::

  static_prior   -- codebooks trained alone on Gaussian blobs (paper Fig. 3/4),
  learned_prior  -- the DVQ-VAE trained and evaluated on images (paper Table 1),
  rate_distortion -- a grid of DVQ-VAEs over quantizer, L and K (configs/rate_distortion.py),
  code_prior     -- an autoregressive prior over a trained VQ-VAE's codes (its true bits/dim).

Override any field from the command line: `--config.quantizer=vq --config.batch_size=64`.
User mistakes end with a one-line `error:` message and exit code 2, before any compute; nothing
is written into --workdir until the run is known to fit it (`training.validation.check_workdir`).
SIGINT/SIGTERM before training starts end the command with one line (exit 130 / 143); from then
on they stop training at the next step boundary with a checkpoint and exit code 0
(`dvq_jax/training/stopping.py`). On CPU, `DVQ_JAX_HUGE_PAGES=1` makes the command re-execute
itself under glibc's huge-page tunable first (`dvq_jax/huge_pages.py`).
"""

import os
import re
import sys
import traceback

from absl import flags
from ml_collections import config_flags

from dvq_jax import cli
from dvq_jax import huge_pages
from dvq_jax.errors import ConfigError
from dvq_jax.errors import NumericalError
from dvq_jax.errors import Stopped


def _define_flags() -> flags.FlagValues:
  # New for every call: config_flags defines a flag per --config.<field> override as it parses,
  # and cannot parse into the same FlagValues twice.
  flag_values = cli.new_flags()
  config_flags.DEFINE_config_file(
      "config", None, "Path to a config file, optionally followed by :arg.", lock_config=True,
      flag_values=flag_values)
  flags.DEFINE_string("workdir", None, "Where outputs and checkpoints go (local or gs://).",
                      flag_values=flag_values)
  return flag_values


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


_fail = cli.fail


def _body(flag_values: flags.FlagValues, argv) -> None:
  if len(argv) > 1:
    _fail(f"unexpected arguments {argv[1:]}; use --config=... --workdir=...")
  if flag_values.config is None:
    _fail("--config is required, e.g. --config=configs/demo.py")
  if not flag_values.workdir:
    _fail("--workdir is required, e.g. --workdir=/tmp/dvq_run")
  try:
    config = flag_values.config
    config.get("experiment")  # a config file that failed to load raises on first access
  except Exception as e:  # pylint: disable=broad-except  (any failure inside the config file)
    reason = str(e).strip().splitlines()[-1].strip() if str(e).strip() else type(e).__name__
    _fail(f"cannot load --config: {reason}")
  try:
    if config.get("experiment") == "learned_prior":
      from dvq_jax.vqvae import validation  # pylint: disable=import-outside-toplevel
      validation.check_overrides(config, config_flags.get_override_values(flag_values["config"]))
    run(config, flag_values.workdir)
  except NumericalError as e:
    _fail(str(e), code=1)
  except Stopped:
    pass  # the loop said where it stopped; a preempted job that saved its work exits 0


def main(argv: list[str] | None = None) -> None:
  """The command line; `argv` (program name first) defaults to `sys.argv`."""
  flag_values = _define_flags()
  cli.run(lambda rest: _body(flag_values, rest), flag_values, argv, doc=__doc__,
          parse=lambda argv: _parse_flags(flag_values, argv))


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


def _parse_flags(flag_values: flags.FlagValues, argv):
  """absl flag parsing with one-line errors: bad --config file or path, unknown field."""
  saved_argv, sys.argv = sys.argv, list(argv)  # config_flags finds --config.* in sys.argv
  try:
    return flag_values(argv)
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
  finally:
    sys.argv = saved_argv


if __name__ == "__main__":
  huge_pages.reexec_with_huge_pages()  # opt-in; glibc reads its tunables only at start-up
  cli.program(main)
