"""Orbax checkpoints of the train state, with integrity digests and a fallback to older ones.

Layout: `workdir/checkpoints/<step>/{state,digest}`. Each save stores a SHA-256 of every state
array next to the state; a restore that cannot read a checkpoint, or reads bytes that do not
match their digest, moves it to `workdir/corrupt_checkpoints/` (never deletes it) and tries the
next older one.
"""

import hashlib
import logging
from collections.abc import Callable

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

from dvq_jax.errors import ConfigError

# Parameter-path fragments -> the config fields that set their shapes (for mismatch errors).
_FIELDS_BY_PARAM = (
    ("codebook", "num_codebooks / codebook_size / codebook_dim / quantizer"),
    ("", "model.* widths, quantizer, num_codebooks, codebook_dim or likelihood"),
)


def state_digest(state) -> str:
  """SHA-256 over the bytes, shapes and dtypes of every array of the state, in tree order."""
  digest = hashlib.sha256()
  for leaf in jax.tree.leaves(jax.device_get(state)):
    array = np.asarray(leaf)
    digest.update(f"{array.shape}{array.dtype}".encode())
    digest.update(np.ascontiguousarray(array).tobytes())
  return digest.hexdigest()


def _shapes_by_path(tree) -> dict[str, tuple]:
  flat, _ = jax.tree_util.tree_flatten_with_path(tree)
  return {jax.tree_util.keystr(path): tuple(leaf.shape) for path, leaf in flat}


def _check_shapes(saved_params, expected_params, step: int, directory) -> None:
  saved, expected = _shapes_by_path(saved_params), _shapes_by_path(expected_params)
  for path in sorted(set(saved) | set(expected)):
    if saved.get(path) != expected.get(path):
      fields = next(f for fragment, f in _FIELDS_BY_PARAM if fragment in path.lower())
      raise ConfigError(
          f"checkpoint {step} in {directory} has params{path} of shape {saved.get(path)} but the"
          f" config gives {expected.get(path)}; use the config of that run (check {fields})"
          " or a new --workdir"
      )


class Checkpointer:
  """Saves every N steps and keeps the last k; restores the newest good checkpoint."""

  def __init__(self, workdir: str, keep: int, log: Callable[[str], None] = logging.info):
    self._workdir = epath.Path(workdir)
    self._dir = self._workdir / "checkpoints"
    self._keep = keep
    self._log = log
    self._manager = self._new_manager()

  def _new_manager(self) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(max_to_keep=self._keep, create=True)
    handlers = {"state": ocp.StandardCheckpointHandler(), "digest": ocp.JsonCheckpointHandler()}
    return ocp.CheckpointManager(self._dir, options=options, item_handlers=handlers)

  def steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def save(self, step: int, state) -> None:
    """Writes checkpoint `step` (asynchronously; `wait` blocks until it is on disk)."""
    if step in self._manager.all_steps():
      return
    args = ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        digest=ocp.args.JsonSave({"sha256": state_digest(state)}),
    )
    self._manager.save(step, args=args)

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def _quarantine(self, step: int, reason: str) -> None:
    self._log(f"checkpoint {step} is damaged ({reason}); moved aside, trying an older one")
    if jax.process_index() == 0:
      target = self._workdir / "corrupt_checkpoints"
      target.mkdir(parents=True, exist_ok=True)
      (self._dir / str(step)).rename(target / f"step_{step}")
    self._manager = self._new_manager()

  def restore_latest(self, abstract_state):
    """Returns the newest readable state matching `abstract_state`'s shapes, or None if none.

    Raises:
      ConfigError: a checkpoint's parameter shapes differ from the config's.
    """
    for step in sorted(self._manager.all_steps(), reverse=True):
      try:
        saved = self._manager.item_metadata(step)["state"]
        saved = saved.tree if hasattr(saved, "tree") else saved
        saved_params = saved["params"] if "params" in abstract_state else saved
      except Exception as e:  # pylint: disable=broad-except
        self._quarantine(step, f"metadata unreadable: {type(e).__name__}")
        continue
      _check_shapes(saved_params, abstract_state.get("params", abstract_state), step, self._dir)
      try:
        restored = self._manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract_state), digest=ocp.args.JsonRestore()))
      except Exception as e:  # pylint: disable=broad-except
        self._quarantine(step, f"unreadable: {type(e).__name__}: {str(e)[:200]}")
        continue
      if state_digest(restored["state"]) != restored["digest"]["sha256"]:
        self._quarantine(step, "contents do not match the digest written with it")
        continue
      self._log(f"restored checkpoint {step} from {self._dir}")
      return restored["state"]
    return None

  def restore_arrays(self, step: int | None = None):
    """The saved state of `step` (default: the newest) as saved, without a target structure.

    For inspection and for the models built on a trained run (the tokenizer, the code prior, the
    codec), on this process's first device whatever topology wrote it (a TPU pod's checkpoint
    opens on a laptop); optimizer states come back as plain dicts.

    Raises:
      ConfigError: there is no checkpoint, it cannot be read, or its bytes do not match the
        digest written with it (a damaged or altered checkpoint is never handed out).
    """
    step = self._manager.latest_step() if step is None else step
    if step is None:
      raise ConfigError(f"no checkpoint in {self._dir}; train first or check the workdir")
    try:
      saved = self._manager.item_metadata(step)["state"]
      device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
      target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
                            saved.tree if hasattr(saved, "tree") else saved)
      restored = self._manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(target), digest=ocp.args.JsonRestore()))
    except Exception as e:  # pylint: disable=broad-except  (orbax raises many kinds)
      raise ConfigError(
          f"checkpoint {step} in {self._dir} cannot be read ({type(e).__name__}: damaged or"
          " incomplete); use another step or retrain") from None
    if state_digest(restored["state"]) != restored["digest"]["sha256"]:
      raise ConfigError(
          f"checkpoint {step} in {self._dir} does not match the digest written with it (damaged"
          " or altered); use another step or retrain")
    return restored["state"]

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()
