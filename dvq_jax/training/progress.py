"""A dependency-free progress line: done/total, rate and ETA, redrawn in place on stderr."""

import sys
import time


def _clock(seconds: float) -> str:
  seconds = int(max(seconds, 0))
  return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
  """Prints `desc  done/total  rate unit/s  ETA h:mm:ss`, at most every `interval` seconds.

  >>> import io
  >>> stream = io.StringIO()
  >>> bar = Progress(4, "steps", unit="step", stream=stream, interval=0.0)
  >>> bar.update(4)
  >>> "4/4" in stream.getvalue()
  True
  """

  def __init__(self, total: int, desc: str, *, unit: str = "it", start: int = 0,
               stream=None, interval: float = 1.0, enabled: bool = True):
    self.total, self.desc, self.unit = total, desc, unit
    self.done = self._start_done = start
    self._stream = sys.stderr if stream is None else stream
    self._interval = interval
    self._enabled = enabled
    self._start = self._last = time.monotonic()

  def update(self, n: int = 1, **postfix) -> None:
    self.done += n
    now = time.monotonic()
    if not self._enabled or (now - self._last < self._interval and self.done < self.total):
      return
    self._last = now
    rate = (self.done - self._start_done) / max(now - self._start, 1e-9)
    eta = (self.total - self.done) / rate if rate > 0 else float("inf")
    extra = "".join(f"  {k}={v:.4g}" if isinstance(v, float) else f"  {k}={v}"
                    for k, v in postfix.items())
    eta_text = _clock(eta) if eta != float("inf") else "?"
    end = "\n" if self.done >= self.total else ""
    self._stream.write(f"\r{self.desc}  {self.done}/{self.total}  {rate:.3g} {self.unit}/s"
                       f"  ETA {eta_text}{extra}{end}")
    self._stream.flush()
