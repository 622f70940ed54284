"""Early checks of the fields every trained model shares, before any compute.

Each check raises `ConfigError` with one line naming the field and what to change; a model's
own checks (e.g. `vqvae.validation`) call these and add theirs.
"""

import json
import os

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


# Fields a resumed run may change: how long it trains, how often it logs, evaluates and saves,
# and how it reads its data. Any other change would mix two runs in one workdir.
RESUMABLE_FIELDS = ("num_train_steps", "log_every_steps", "eval_every_steps",
                    "checkpoint_every_steps", "keep_checkpoints", "grain_workers",
                    "eval_batch_size", "max_eval_examples", "num_recon_images",
                    "tokenizer_batch_size", "data_dir", "distributed", "coordinator_address",
                    "num_processes", "process_id")


def _flat(tree: dict, prefix: str = "") -> dict:
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat.update(_flat(value, f"{prefix}{key}."))
    else:
      flat[f"{prefix}{key}"] = value
  return flat


def _stored_config(path: epath.Path) -> dict | None:
  try:
    return json.loads(path.read_text())
  except (OSError, ValueError):
    return None


def _has_checkpoints(workdir: epath.Path) -> bool:
  checkpoints = workdir / "checkpoints"
  return checkpoints.is_dir() and any(p.name.isdigit() for p in checkpoints.iterdir())


def check_workdir(workdir: str, config: ml_collections.ConfigDict | None = None) -> None:
  """`workdir` can hold this run; writes nothing (the run creates it when it starts).

  A new workdir's nearest existing parent must be a writable folder. An existing one that holds
  a run (its config.json) must hold a run of the same experiment, and once it has checkpoints,
  of the same config up to `RESUMABLE_FIELDS`: its files are never overwritten by another run.

  Raises:
    ConfigError: one line naming the workdir, the field and how to start a new run instead.
  """
  if not workdir:
    raise ConfigError("--workdir is empty; give a directory, e.g. --workdir=/tmp/dvq_run")
  path = epath.Path(workdir)
  if str(workdir).startswith("gs://"):
    pass  # the object store checks its own permissions when the run writes
  else:
    existing = os.path.abspath(workdir)
    while not os.path.exists(existing):
      existing = os.path.dirname(existing)
    if not os.path.isdir(existing) or not os.access(existing, os.W_OK | os.X_OK):
      reason = "is a file" if not os.path.isdir(existing) else "is not writable"
      raise ConfigError(f"--workdir {workdir} is not writable ({existing} {reason}); choose a"
                        " directory you can write to")
  stored = _stored_config(path / "config.json") if config is not None else None
  if stored is None:
    return
  new_run = "use a new --workdir to start a new run"
  if stored.get("experiment") != config.get("experiment"):
    raise ConfigError(f"--workdir {workdir} holds a {stored.get('experiment')!r} run, not"
                      f" {config.get('experiment')!r}; {new_run}")
  if not _has_checkpoints(path):
    return
  given = _flat(json.loads(config.to_json_best_effort()))
  stored = _flat(stored)
  for field in sorted(set(given) | set(stored)):
    if field not in RESUMABLE_FIELDS and given.get(field) != stored.get(field):
      raise ConfigError(
          f"--workdir {workdir} holds checkpoints of a run with config.{field} ="
          f" {stored.get(field)!r}, not {given.get(field)!r}; pass"
          f" --config.{field}={stored.get(field)} to continue it, or {new_run}")


def create_workdir(workdir: str) -> None:
  """Creates the workdir (after `check_workdir`, when the run starts).

  Raises:
    ConfigError: it cannot be created.
  """
  try:
    epath.Path(workdir).mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise ConfigError(
        f"--workdir {workdir} cannot be created ({e.strerror or type(e).__name__}); choose a"
        " directory you can write to"
    ) from None
