"""SHA-256 digests of a checkpoint's array shards, written by every process beside the state.

Each process hashes the shards it holds the primary copy of (`replica_id == 0`, the ones orbax
writes from it), so no host ever pulls the whole state and the work splits over the hosts the
way the writes do. A save copies those shards to host memory (the next train step donates the
state) and hashes them in orbax's background commit thread, so the digest keeps the save
asynchronous. Process p writes `digest/process_<p>.json`:

    {"process_count": 2, "shards": [{"leaf": "params/w", "index": [[0, 64], [0, 128]],
                                     "sha256": "..."}]}

with `index` the shard's `[start, stop)` per axis in the global array. A restore checks every
recorded shard that lies inside a shard the restoring process holds, whatever number of
processes and devices wrote it: for the replicated train states the trainers keep, each process
checks every shard of the state. Checkpoints written before per-shard digests hold one
`state_digest` of the whole state (`digest/metadata`); it is checked the same way.
"""

import asyncio
import dataclasses
import hashlib
import json

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath

_Index = tuple[tuple[int, int], ...]


def state_digest(state) -> str:
  """SHA-256 over the bytes, shapes and dtypes of every array of the state, in tree order.

  Pulls the whole state to this host: for the params of a restored model (the tokenizer's and
  the prior's identity), not for checkpoints of a sharded run.
  """
  digest = hashlib.sha256()
  for leaf in jax.tree.leaves(jax.device_get(state)):
    array = np.asarray(leaf)
    digest.update(f"{array.shape}{array.dtype}".encode())
    digest.update(np.ascontiguousarray(array).tobytes())
  return digest.hexdigest()


def _leaf_name(path) -> str:
  """`params/conv/kernel`: the same for a state and its restore as plain dicts (orbax gives
  named tuples of optimizer states back as dicts, and list indices as dict keys)."""
  return "/".join(str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path)


def _bounds(index: tuple[slice, ...], shape: tuple[int, ...]) -> _Index:
  return tuple(s.indices(n)[:2] for s, n in zip(index, shape))


def _sha256(array: np.ndarray) -> str:
  digest = hashlib.sha256(f"{array.shape}{array.dtype}".encode())
  digest.update(np.ascontiguousarray(array).tobytes())
  return digest.hexdigest()


def _leaf_shards(leaf, *, primary_only: bool) -> list[tuple[_Index, object]]:
  """`(bounds, data)` of the shards of `leaf` this process holds (a numpy leaf is one shard)."""
  if not isinstance(leaf, jax.Array):
    array = np.asarray(leaf)
    if primary_only and jax.process_index():
      return []
    return [(tuple((0, n) for n in array.shape), array)]
  return [(_bounds(shard.index, leaf.shape), shard.data) for shard in leaf.addressable_shards
          if shard.replica_id == 0 or not primary_only]


def host_copies(state) -> list[tuple[str, _Index, np.ndarray]]:
  """`(leaf path, bounds, host copy)` of each shard of `state` this process writes."""
  flat, _ = jax.tree_util.tree_flatten_with_path(state)
  return [(_leaf_name(path), bounds, np.array(data, copy=True))
          for path, leaf in flat for bounds, data in _leaf_shards(leaf, primary_only=True)]


def shard_records(copies: list[tuple[str, _Index, np.ndarray]]) -> dict:
  """The JSON record of `host_copies`' shards (see the module docstring)."""
  return {"process_count": jax.process_count(),
          "shards": [{"leaf": leaf, "index": [list(b) for b in bounds], "sha256": _sha256(data)}
                     for leaf, bounds, data in copies]}


def _contains(outer: _Index, inner: _Index) -> bool:
  return all(lo <= in_lo and in_hi <= hi for (lo, hi), (in_lo, in_hi) in zip(outer, inner))


def _leaf_matches(held: list[tuple[_Index, object]], entries: list[dict]) -> bool:
  for entry in entries:
    wanted = tuple(tuple(b) for b in entry["index"])
    for bounds, data in held:
      if _contains(bounds, wanted):
        crop = tuple(slice(w_lo - lo, w_hi - lo) for (lo, _), (w_lo, w_hi) in zip(bounds, wanted))
        if _sha256(np.asarray(data)[crop]) != entry["sha256"]:
          return False
        break
  return True


def mismatches(state, records: list[dict]) -> list[str]:
  """Leaf paths of `state` whose restored shards differ from the digests in `records`.

  Args:
    state: the restored state (jax or numpy arrays).
    records: every process's `shard_records` of the save.

  Returns:
    The paths of the leaves with a recorded shard whose bytes differ, and of the leaves no
    record mentions (a digest of another state); empty if every recorded shard inside a shard
    this process holds matches.
  """
  if "state_sha256" in records[0]:  # the whole-state digest of older checkpoints
    return [] if state_digest(state) == records[0]["state_sha256"] else ["(the whole state)"]
  recorded: dict[str, list[dict]] = {}
  for record in records:
    for entry in record["shards"]:
      recorded.setdefault(entry["leaf"], []).append(entry)
  bad = []
  for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
    name = _leaf_name(path)
    if name not in recorded or not _leaf_matches(_leaf_shards(leaf, primary_only=False),
                                                 recorded[name]):
      bad.append(name)
  return bad


class DigestHandler(ocp.AsyncCheckpointHandler):
  """Writes `digest/process_<p>.json` from every process; restores all of them as a list."""

  async def _write(self, directory: epath.Path, copies) -> None:
    record = await asyncio.to_thread(shard_records, copies)  # hashlib releases the GIL
    (directory / f"process_{jax.process_index()}.json").write_text(json.dumps(record))

  async def async_save(self, directory: epath.Path, args: "DigestSave"):
    copies = host_copies(args.state)  # before returning: the caller may donate the state next
    return [ocp.future.CommitFutureAwaitingContractedSignals(
        self._write(directory, copies), name="digest_save")]

  def save(self, directory: epath.Path, args: "DigestSave") -> None:
    asyncio.run(self._write(directory, host_copies(args.state)))

  def restore(self, directory: epath.Path, args: "DigestRestore | None" = None) -> list[dict]:
    del args
    files = sorted(directory.glob("process_*.json"))
    if not files and (directory / "metadata").exists():
      return [{"state_sha256": json.loads((directory / "metadata").read_text())["sha256"]}]
    records = [json.loads(f.read_text()) for f in files]
    count = records[0]["process_count"] if records else 1
    missing = sorted({f"process_{p}.json" for p in range(count)} - {f.name for f in files})
    if missing:  # a digest file lost: the shards it covered cannot be checked
      raise FileNotFoundError(f"{directory / missing[0]} is missing")
    return records


@ocp.args.register_with_handler(DigestHandler, for_save=True)
@dataclasses.dataclass
class DigestSave(ocp.args.CheckpointArgs):
  """Save args: the state whose shards are hashed."""

  state: object


@ocp.args.register_with_handler(DigestHandler, for_restore=True)
@dataclasses.dataclass
class DigestRestore(ocp.args.CheckpointArgs):
  """Restore args (none)."""
