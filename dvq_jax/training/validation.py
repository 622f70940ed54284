"""Early checks of the fields every trained model shares, before any compute.

Each check raises `ConfigError` with one line naming the field and what to change; a model's
own checks (e.g. `vqvae.validation`) call these and add theirs.
"""

import os
import uuid

import jax
import ml_collections
from etils import epath

from dvq_jax.errors import ConfigError

LR_SCHEDULES = ("constant", "cosine")


def _get(config, field: str):
  value = config
  for part in field.split("."):
    value = value[part]
  return value


def require_choice(config, field: str, choices: tuple[str, ...]) -> None:
  """`config.<field>` (dotted for nested fields) must be one of `choices`."""
  value = _get(config, field)
  if value not in choices:
    raise ConfigError(f"config.{field} = {value!r} is unknown; use one of {', '.join(choices)}")


def require_int(config, field: str, minimum: int) -> None:
  """`config.<field>` must be an integer >= `minimum`."""
  value = _get(config, field)
  if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
    raise ConfigError(f"config.{field} = {value!r} must be an integer >= {minimum}")


def check_training(config: ml_collections.ConfigDict) -> None:
  """The fields `training.loop` and `training.optim` read (no IO, no devices)."""
  require_choice(config, "lr_schedule", LR_SCHEDULES)
  for field in ("batch_size", "num_train_steps", "log_every_steps", "eval_every_steps",
                "checkpoint_every_steps", "keep_checkpoints"):
    require_int(config, field, 1)
  require_int(config, "warmup_steps", 0)
  if not config.learning_rate > 0:
    raise ConfigError(f"config.learning_rate = {config.learning_rate!r} must be > 0, e.g. 2e-4")


def check_devices(config: ml_collections.ConfigDict, devices: int | None = None) -> None:
  """The global batch (and `eval_batch_size`, if the config has one) must split over `devices`
  (default: `jax.device_count()`)."""
  devices = jax.device_count() if devices is None else devices
  for field in ("batch_size", "eval_batch_size"):
    value = config.get(field)
    if value and value % devices:
      raise ConfigError(
          f"config.{field} = {value} is not divisible by the {devices} devices; use a multiple"
          f" of {devices}"
      )


def check_workdir(workdir: str) -> None:
  """Creates the workdir and proves it is writable (local paths; gs:// is left to the store)."""
  if not workdir:
    raise ConfigError("--workdir is empty; give a directory, e.g. --workdir=/tmp/dvq_run")
  path = epath.Path(workdir)
  try:
    path.mkdir(parents=True, exist_ok=True)
    if not str(workdir).startswith("gs://"):
      probe = path / f".write_test_{os.getpid()}_{uuid.uuid4().hex}"
      probe.write_text("ok")
      probe.unlink()
  except OSError as e:
    raise ConfigError(
        f"--workdir {workdir} is not writable ({e.strerror or type(e).__name__}); choose a"
        " directory you can write to"
    ) from None
