"""Early checks of a learned-prior config: every user mistake fails here, before any compute.

Each check raises `ConfigError` with one line naming the field and what to change.
"""

import os
import uuid

import jax
import ml_collections
from etils import epath

from dvq_jax.errors import ConfigError

LR_SCHEDULES = ("constant", "cosine")


def _choice(config, field: str, choices: tuple[str, ...]) -> None:
  value = config
  for part in field.split("."):
    value = value[part]
  if value not in choices:
    raise ConfigError(f"config.{field} = {value!r} is unknown; use one of {', '.join(choices)}")


def _at_least(config, field: str, minimum: int) -> None:
  value = config
  for part in field.split("."):
    value = value[part]
  if not isinstance(value, int) or value < minimum:
    raise ConfigError(f"config.{field} = {value!r} must be an integer >= {minimum}")


def check_config(config: ml_collections.ConfigDict) -> None:
  """Checks the fields of a learned-prior config on their own (no IO, no devices).

  The model's fields (quantizer, likelihood, L, K, D, widths, beta, latent_channels) are
  checked by `vqvae.build_model`, the data set's name by `data.check_dataset_name`; the
  training fields here.
  """
  from dvq_jax import data  # pylint: disable=g-import-not-at-top
  from dvq_jax import vqvae  # pylint: disable=g-import-not-at-top

  data.check_dataset_name(config.dataset)
  vqvae.build_model(config)
  _choice(config, "lr_schedule", LR_SCHEDULES)
  for field in ("batch_size", "num_train_steps", "log_every_steps", "eval_every_steps",
                "checkpoint_every_steps", "keep_checkpoints"):
    _at_least(config, field, 1)
  for field in ("eval_batch_size", "max_eval_examples", "warmup_steps", "num_recon_images",
                "grain_workers"):
    _at_least(config, field, 0)
  if not config.learning_rate > 0:
    raise ConfigError(f"config.learning_rate = {config.learning_rate!r} must be > 0, e.g. 2e-4")


def check_devices(config: ml_collections.ConfigDict) -> None:
  """The global batch must split evenly over devices (and so over processes)."""
  devices = jax.device_count()
  for field in ("batch_size", "eval_batch_size"):
    value = config[field]
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

