"""Orbax checkpoints of the train state, with integrity digests and a fallback to older ones.

Layout: `workdir/checkpoints/<step>/{state,digest}`; `digest` holds each process's SHA-256 of
the state shards it wrote (`training.digests`). Reading a checkpoint can fail three ways:

  * transiently (`OSError`, a storage timeout, throttling or unavailability, tensorstore's
    UNAVAILABLE / DEADLINE_EXCEEDED / RESOURCE_EXHAUSTED / ABORTED): retried with backoff; if
    the error persists, `CheckpointError` names the checkpoint and nothing is moved;
  * with evidence of damage (bytes that do not match the digest; missing or truncated files,
    which orbax and tensorstore report as NOT_FOUND, OUT_OF_RANGE, DATA_LOSS or unparsable
    metadata): the checkpoint is quarantined and the next older one tried. Where a move is a
    rename (a local or mounted file system) it moves to `workdir/corrupt_checkpoints/step_<N>`;
    on an object store (`gs://`), where a move copies every byte, it stays in place and
    `corrupt_checkpoints/step_<N>.txt` marks it bad (it is overwritten when training saves step
    N again). Nothing is ever deleted unread;
  * any other error: `CheckpointError`, nothing moved.
"""

import json
import logging
import re
import time
from collections.abc import Callable, Sequence

import jax
import orbax.checkpoint as ocp
from etils import epath

from dvq_jax.errors import CheckpointError
from dvq_jax.errors import ConfigError
from dvq_jax.training import digests
from dvq_jax.training.digests import state_digest

# Parameter-path fragments -> the config fields that set their shapes (for mismatch errors).
_FIELDS_BY_PARAM = (
    ("codebook", "num_codebooks / codebook_size / codebook_dim / quantizer"),
    ("", "model.* widths, quantizer, num_codebooks, codebook_dim or likelihood"),
)

# Seconds between the tries of a read that fails transiently: ~1.5 min in all, for a storage
# outage or throttling to pass.
RETRY_DELAYS_S = (1.0, 4.0, 16.0, 64.0)

# absl status codes that tensorstore puts at the head of its errors.
_STATUS = re.compile(r"^([A-Z_]+):")
_DAMAGE_CODES = frozenset({"DATA_LOSS", "OUT_OF_RANGE", "NOT_FOUND"})
_TRANSIENT_CODES = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED"})
# google-cloud-storage's retriable errors (google.api_core.exceptions), matched by name so that
# the library need not be installed.
_TRANSIENT_NAMES = frozenset({"ServiceUnavailable", "TooManyRequests", "InternalServerError",
                              "BadGateway", "GatewayTimeout", "DeadlineExceeded", "RetryError"})
_MISSING = (FileNotFoundError, NotADirectoryError, IsADirectoryError, json.JSONDecodeError)


def fault_kind(error: BaseException) -> str:
  """`"damaged"`, `"transient"` or `"other"`: what a failed checkpoint read says about it.

  The outermost exception in the `__cause__` / `__context__` chain that says either decides.

  >>> fault_kind(TimeoutError("read timed out")), fault_kind(FileNotFoundError("d/1f"))
  ('transient', 'damaged')
  >>> fault_kind(ValueError("OUT_OF_RANGE: Requested byte range [0, 288) is not valid"))
  'damaged'
  >>> fault_kind(ValueError("tree structures do not match"))
  'other'
  """
  return _classify(error)[0]


def _classify(error: BaseException) -> tuple[str, BaseException]:
  """`fault_kind` and the exception of the chain that decided it (`error` for "other")."""
  cause, seen = error, set()
  while cause is not None and id(cause) not in seen:
    seen.add(id(cause))
    code = _STATUS.match(str(cause))
    code = code.group(1) if code else ""
    if isinstance(cause, _MISSING) or code in _DAMAGE_CODES:
      return "damaged", cause
    if (isinstance(cause, OSError) or code in _TRANSIENT_CODES
        or type(cause).__name__ in _TRANSIENT_NAMES):
      return "transient", cause
    cause = cause.__cause__ or cause.__context__
  return "other", error


def _one_line(error: BaseException) -> str:
  return f"{type(error).__name__}: {' '.join(str(error).split())[:300]}"


def _renames_in_place(path: epath.Path) -> bool:
  """False on object stores (gs://, s3://), whose "rename" copies every byte."""
  return "://" not in str(path)


class _Damaged(Exception):
  """A read found evidence that a checkpoint is damaged; the message says what."""


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

  def __init__(self, workdir: str, keep: int, log: Callable[[str], None] = logging.info,
               retry_delays_s: Sequence[float] = RETRY_DELAYS_S):
    self._workdir = epath.Path(workdir)
    self._dir = self._workdir / "checkpoints"
    self._quarantine_dir = self._workdir / "corrupt_checkpoints"
    self._keep = keep
    self._log = log
    self._retry_delays_s = tuple(retry_delays_s)
    self._manager = self._new_manager()
    # Steps marked bad in place (object stores) are skipped until saved again.
    self._marked = set()
    if self._quarantine_dir.exists():
      self._marked = {int(p.stem[len("step_"):]) for p in self._quarantine_dir.glob("step_*.txt")}

  def _new_manager(self) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(max_to_keep=self._keep, create=True)
    handlers = {"state": ocp.StandardCheckpointHandler(), "digest": digests.DigestHandler()}
    return ocp.CheckpointManager(self._dir, options=options, item_handlers=handlers)

  def steps(self) -> list[int]:
    """The readable-looking steps, oldest first (quarantined ones left out)."""
    return sorted(set(self._manager.all_steps()) - self._marked)

  def save(self, step: int, state) -> None:
    """Writes checkpoint `step` (asynchronously; `wait` blocks until it is on disk)."""
    if step in self._marked:
      self._log(f"saving step {step} again: deleting the checkpoint marked bad there")
      self._manager.delete(step)
      self._marked.discard(step)
      if jax.process_index() == 0:
        (self._quarantine_dir / f"step_{step}.txt").unlink(missing_ok=True)
    if step in self._manager.all_steps():
      return
    args = ocp.args.Composite(state=ocp.args.StandardSave(state),
                              digest=digests.DigestSave(state))
    # force: a step marked bad may be newer than this one, and orbax saves only newer steps.
    self._manager.save(step, args=args, force=True)

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def _read(self, step: int, read: Callable[[], object], *, other_is_damage: bool = False):
    """`read()`, retried while it fails transiently; raises `_Damaged` or `CheckpointError`.

    `other_is_damage`: an error that is neither transient nor a known sign of damage counts as
    damage. True where no target structure is given (`restore_arrays`), so such an error can only
    come from the checkpoint's own bytes (e.g. a flipped bit in its metadata).
    """
    for delay in (*self._retry_delays_s, None):
      try:
        return read()
      except Exception as e:  # pylint: disable=broad-except  (classified below)
        kind, cause = _classify(e)
        if kind == "damaged" or (kind == "other" and other_is_damage):
          raise _Damaged(f"unreadable: {_one_line(cause)}") from e
        if kind == "transient" and delay is not None:
          self._log(f"checkpoint {step}: {_one_line(cause)}; retrying in {delay:g} s")
          time.sleep(delay)
          continue
        tries = f" after {len(self._retry_delays_s) + 1} tries" if kind == "transient" else ""
        raise CheckpointError(
            f"checkpoint {step} in {self._dir} could not be read{tries} ({_one_line(cause)});"
            " nothing was moved: check the storage and rerun (move the checkpoint away to"
            " start from an older one)") from None
    raise AssertionError("unreachable")

  def _restore(self, step: int, target, *, other_is_damage: bool = False):
    """The verified state of `step` restored into `target`; raises `_Damaged` if it is not."""
    restored = self._read(step, lambda: self._manager.restore(step, args=ocp.args.Composite(
        state=ocp.args.StandardRestore(target), digest=digests.DigestRestore())),
                          other_is_damage=other_is_damage)
    bad = digests.mismatches(restored["state"], restored["digest"])
    if bad:
      raise _Damaged(f"contents do not match the digest written with it, first in {bad[0]}")
    return restored["state"]

  def _quarantine(self, step: int, reason: str) -> None:
    if _renames_in_place(self._dir):
      where, action = self._quarantine_dir / f"step_{step}", "moved to"
      if where.exists():  # quarantined once before, in an earlier run
        where = self._quarantine_dir / f"step_{step}_{time.strftime('%Y%m%d-%H%M%S')}"
    else:
      where, action = self._quarantine_dir / f"step_{step}.txt", "left in place, marked bad in"
    self._log(f"checkpoint {step} is damaged ({reason}); {action} {where}, trying an older one")
    if jax.process_index() == 0:
      self._quarantine_dir.mkdir(parents=True, exist_ok=True)
      if _renames_in_place(self._dir):
        (self._dir / str(step)).rename(where)
      else:
        where.write_text(f"checkpoint {self._dir / str(step)} is damaged: {reason}\n")
    if not _renames_in_place(self._dir):
      self._marked.add(step)
    self._manager = self._new_manager()

  def restore_latest(self, abstract_state):
    """Returns the newest undamaged state matching `abstract_state`'s shapes, or None if none.

    Raises:
      ConfigError: a checkpoint's parameter shapes differ from the config's.
      CheckpointError: a checkpoint could not be read, without evidence of damage (nothing is
        moved).
    """
    for step in reversed(self.steps()):
      try:
        saved = self._read(step, lambda: self._manager.item_metadata(step)["state"])
        saved = saved.tree if hasattr(saved, "tree") else saved
        if saved is None:
          raise _Damaged("metadata unreadable")
        _check_shapes(saved["params"] if "params" in abstract_state else saved,
                      abstract_state.get("params", abstract_state), step, self._dir)
        state = self._restore(step, abstract_state)
      except _Damaged as e:
        self._quarantine(step, str(e))
        continue
      self._log(f"restored checkpoint {step} from {self._dir}")
      return state
    return None

  def restore_arrays(self, step: int | None = None):
    """The saved state of `step` (default: the newest) as saved, without a target structure.

    For inspection and for the models built on a trained run (the tokenizer, the code prior, the
    codec), on this process's first device whatever topology wrote it (a TPU pod's checkpoint
    opens on a laptop); optimizer states come back as plain dicts.

    Raises:
      ConfigError: there is no checkpoint, or it is damaged: its bytes do not match the digest
        written with it, files are missing or truncated, or its metadata cannot be parsed (a
        damaged or altered checkpoint is never handed out).
      CheckpointError: it could not be read, without evidence of damage.
    """
    steps = self.steps()
    step = (steps[-1] if steps else None) if step is None else step
    if step is None:
      raise ConfigError(f"no checkpoint in {self._dir}; train first or check the workdir")
    try:
      saved = self._read(step, lambda: self._manager.item_metadata(step)["state"],
                         other_is_damage=True)
      if saved is None:
        raise _Damaged("metadata unreadable")
      device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
      target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
                            saved.tree if hasattr(saved, "tree") else saved)
      return self._restore(step, target, other_is_damage=True)
    except _Damaged as e:
      raise ConfigError(f"checkpoint {step} in {self._dir} cannot be read: it is damaged or"
                        f" altered ({e}); use another step or retrain") from None

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()
