"""A progress line on stderr: a tqdm bar in a terminal, a plain line every N seconds elsewhere."""

import math
import sys
import time

import tqdm

# Plain lines (CI logs, `> log`): tqdm's text without the bar.
_PLAIN_FORMAT = "{desc}  {n_fmt}/{total_fmt}  [{elapsed}<{remaining}, {rate_fmt}{postfix}]"


class Progress:
  """done/total, rate and ETA of a long loop.

  The rate and the ETA count from the first `update` on, so a first step that compiles does
  not distort them. In a terminal the line is a tqdm bar redrawn in place and `write` ends it
  before printing anything else; elsewhere a plain line is printed at the first update, every
  `interval` seconds and at the end. `close` (or reaching `total`) ends the line.

  >>> import io
  >>> stream = io.StringIO()
  >>> bar = Progress(4, "steps", unit="step", stream=stream, interval=0.0)
  >>> bar.update(1)
  >>> bar.update(3, loss=0.5)
  >>> bar.close()
  >>> stream.getvalue().splitlines()[-1].startswith("steps  4/4")
  True
  """

  def __init__(self, total: int, desc: str, *, unit: str = "it", start: int = 0,
               stream=None, interval: float = 30.0, enabled: bool = True):
    self.total, self.desc, self.unit = total, desc, unit
    self.done = start
    self._stream = sys.stderr if stream is None else stream
    self._enabled = enabled
    self._interval = interval
    self._tty = enabled and getattr(self._stream, "isatty", lambda: False)()
    self._bar = None  # the tqdm bar (terminal), made at the first update
    self._first = None  # (time, done) at the first update: the rate counts from here
    self._last_line, self._printed_done = -math.inf, None
    self._postfix = {}
    self._closed = False

  def update(self, n: int = 1, **postfix) -> None:
    """Counts `n` more done; `postfix` (name=value) is shown after the rate."""
    self.done += n
    if not self._enabled or self._closed:
      return
    self._postfix = postfix or self._postfix
    if self._tty:
      if self._bar is None:  # starts after the first update: `initial` is excluded from rates
        self._bar = tqdm.tqdm(total=self.total, initial=self.done, desc=self.desc,
                              unit=self.unit, file=self._stream, dynamic_ncols=True)
      else:
        self._bar.update(n)
      if postfix:
        self._bar.set_postfix(postfix, refresh=False)
    else:
      now = time.monotonic()
      if self._first is None:
        self._first = (now, self.done)
      if now - self._last_line >= self._interval or self.done >= self.total:
        self._plain_line(now)
    if self.done >= self.total:
      self.close()

  def _plain_line(self, now: float) -> None:
    self._last_line, self._printed_done = now, self.done
    start_time, start_done = self._first
    postfix = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                        for k, v in self._postfix.items())
    line = tqdm.tqdm.format_meter(
        self.done, self.total, now - start_time, prefix=self.desc, unit=self.unit,
        initial=start_done, bar_format=_PLAIN_FORMAT, postfix=postfix or None)
    self._stream.write(line + "\n")
    self._stream.flush()

  def write(self, message: str, file=None) -> None:
    """Prints `message` (default: to stdout) on its own line, then redraws the bar under it."""
    file = sys.stdout if file is None else file
    if self._bar is not None and not self._closed:
      self._bar.clear()
      print(message, file=file, flush=True)
      self._bar.refresh()
    else:
      print(message, file=file, flush=True)

  def close(self) -> None:
    """Ends the line (a final plain line if the last one is stale); idempotent."""
    if self._closed:
      return
    self._closed = True
    if self._bar is not None:
      self._bar.close()
    elif self._first is not None and self._printed_done != self.done:  # stopped early
      self._plain_line(time.monotonic())
