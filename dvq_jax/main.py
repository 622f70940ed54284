r"""Command-line entry point: `python -m dvq_jax.main --config=configs/X.py --workdir=W`.

The config's `experiment` field picks what runs:
  static_prior   -- codebooks trained alone on Gaussian blobs (paper Fig. 3/4),
  learned_prior  -- the DVQ-VAE trained and evaluated on images (paper Table 1),
  code_prior     -- an autoregressive prior over a trained VQ-VAE's codes (its true bits/dim).
Override any field from the command line: `--config.quantizer=vq --config.batch_size=64`.
User mistakes end with a one-line `error:` message and exit code 2, before any compute.
"""

import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from dvq_jax.errors import ConfigError
from dvq_jax.errors import NumericalError

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
  if experiment == "code_prior":
    from dvq_jax.prior import train as prior_train
    return prior_train.train_and_evaluate(config, workdir)
  raise ConfigError(
      f"config.experiment = {experiment!r} is unknown; use 'static_prior', 'learned_prior' or"
      " 'code_prior'"
  )


def _fail(message: str, code: int = 2) -> None:
  print(f"error: {message}", file=sys.stderr)
  sys.exit(code)


def main(argv):
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # orbax logs every save at INFO; --verbosity=0 shows it
  if len(argv) > 1:
    _fail(f"unexpected arguments {argv[1:]}; use --config=... --workdir=...")
  if not _WORKDIR.value:
    _fail("--workdir is required, e.g. --workdir=/tmp/dvq_run")
  try:
    config = _CONFIG.value
    config.get("experiment")  # a config file that failed to load raises on first access
  except Exception as e:  # pylint: disable=broad-except  (any failure inside the config file)
    reason = str(e).strip().splitlines()[-1].strip() if str(e).strip() else type(e).__name__
    _fail(f"cannot load --config: {reason}")
  try:
    run(config, _WORKDIR.value)
  except ConfigError as e:
    _fail(str(e))
  except NumericalError as e:
    _fail(str(e), code=1)


def _parse_flags(argv):
  """absl flag parsing with one-line errors (bad --config path, unknown --config.field)."""
  try:
    return flags.FLAGS(argv)
  except (flags.Error, AttributeError, KeyError, ValueError, TypeError, OSError,
          SyntaxError, ImportError) as e:
    if isinstance(e, (KeyError, AttributeError)):
      name = str(e.args[0] if e.args else e).strip("'\"")
      _fail(f"unknown config field {name!r} in a --config.<field> override; fix its spelling"
            " (fields are listed in the config file and dvq_jax/vqvae/defaults.py)")
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    if len(lines) > 1:  # a traceback from inside the config file: its first and last lines
      lines = [lines[0].split(": Error whilst")[0], lines[-1]]
    _fail(f"{': '.join(lines)} (check --config and --config.<field> overrides)")


if __name__ == "__main__":
  app.run(main, flags_parser=_parse_flags)
