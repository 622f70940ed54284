"""Metric outputs of a run, written by process 0 only.

`metrics.jsonl` (one JSON object per logged step), TensorBoard event files, and `eval.json`
(the latest evaluation). Paths go through etils.epath, so a workdir may be local or gs://.
"""

import json
import math
import time
from collections.abc import Mapping

import jax
import numpy as np
from etils import epath
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.event_pb2 import SessionLog
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.summary.writer.event_file_writer import EventFileWriter


def _plain(value):
  """numpy/JAX scalars and arrays -> JSON-ready floats and lists (NaN/inf -> null)."""
  value = np.asarray(value)
  if value.ndim:
    return [_plain(v) for v in value]
  value = value.item()
  if isinstance(value, float) and not math.isfinite(value):
    return None
  return value


def _record_step(line: str) -> float:
  """The step of one metrics.jsonl line; inf for a line torn by a kill (so it is dropped)."""
  try:
    return json.loads(line)["step"]
  except (ValueError, KeyError, TypeError):
    return math.inf


class MetricWriter:
  """Appends metrics to `metrics.jsonl` and TensorBoard; a no-op on processes other than 0."""

  def __init__(self, workdir: str):
    self._active = jax.process_index() == 0
    self._dir = epath.Path(workdir)
    self._tb = EventFileWriter(str(self._dir / "tensorboard")) if self._active else None

  def write(self, step: int, metrics: Mapping[str, object]) -> None:
    """Writes one record; array values (per-codebook stats) go to TensorBoard per index."""
    if not self._active:
      return
    record = {"step": int(step), **{k: _plain(v) for k, v in metrics.items()}}
    with (self._dir / "metrics.jsonl").open("a") as f:
      f.write(json.dumps(record) + "\n")
    values = []
    for name, value in metrics.items():
      flat = np.asarray(value, np.float64).reshape(-1)
      tags = [name] if flat.size == 1 else [f"{name}/{i}" for i in range(flat.size)]
      values += [Summary.Value(tag=t, simple_value=float(v)) for t, v in zip(tags, flat)]
    self._tb.add_event(Event(wall_time=time.time(), step=int(step), summary=Summary(value=values)))
    self._tb.flush()

  def drop_after(self, step: int) -> None:
    """Forgets records past `step` (the restored checkpoint), so a resumed run logs each once.

    `metrics.jsonl` is rewritten atomically without them (and without a line torn by a kill).
    TensorBoard event files are append-only: a `SessionLog.START` event at `step + 1` makes
    TensorBoard's event loader discard the older events from `step + 1` on (its
    `--purge_orphaned_data`, on by default).
    """
    if not self._active:
      return
    path = self._dir / "metrics.jsonl"
    if path.exists():
      lines = path.read_text().splitlines()
      kept = [line for line in lines if _record_step(line) <= step]
      if len(kept) < len(lines):
        tmp = self._dir / ".metrics.jsonl.tmp"
        tmp.write_text("".join(line + "\n" for line in kept))
        tmp.replace(path)
    if step > 0:
      self._tb.add_event(Event(wall_time=time.time(), step=int(step) + 1,
                               session_log=SessionLog(status=SessionLog.START)))
      self._tb.flush()

  def write_json(self, name: str, payload: Mapping[str, object]) -> None:
    """Writes `workdir/name` atomically (write to a temp name, then rename)."""
    if not self._active:
      return
    tmp = self._dir / f".{name}.tmp"
    tmp.write_text(json.dumps({k: _plain(v) if not isinstance(v, (str, dict)) else v
                               for k, v in payload.items()}, indent=2))
    tmp.replace(self._dir / name)

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()
