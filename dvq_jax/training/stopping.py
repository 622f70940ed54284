"""SIGTERM / SIGINT: stop training at a step boundary, with a checkpoint, and exit cleanly.

A signal handler can only write process-global state, so the request lives here, not in a loop:

* `StopSignal` is the training loop's: installed for a run, it records SIGTERM and SIGINT and
  the loop checks `should_stop(step)` after every step.
* `handle_signals_for_process()` is every command line's (`dvq_jax.cli.run`): until a training
  loop has started, SIGINT and SIGTERM end the process with one `error:` line and exit code
  130 / 143, after removing any output still being written (`dvq_jax.outputs`); once a loop has
  started they only request a stop. So a signal that comes while the last checkpoint is written
  changes nothing (exit 0), and one that comes between two runs of a study stops the next run
  at its first step instead of being lost.

Several processes: all must stop at the same step, which JAX's preemption service agrees on
(`multihost_utils.reached_preemption_sync_point`). `jax.distributed.initialize` installs that
service's SIGTERM handler in C++; a Python SIGTERM handler would replace it (the sync point
would then never fire), so SIGTERM is left alone and SIGINT (Ctrl-C) is forwarded to it as a
SIGTERM.
"""

import os
import signal
import sys

import jax

from dvq_jax import outputs

_requested = False  # a stop was asked for (by a signal, since the last run that owns it began)
_loop_started = False  # a training loop has run in this process


def _request_stop(signum, frame):  # pylint: disable=unused-argument
  global _requested
  _requested = True


def _process_signal(signum, frame):
  if _loop_started:
    _request_stop(signum, frame)
    return
  # Nothing to checkpoint: end now. os._exit, not an exception: a KeyboardInterrupt raised
  # inside JAX or during the interpreter's shutdown can crash it instead of exiting.
  outputs.remove_partial()
  name = signal.Signals(signum).name
  sys.stderr.write(f"error: interrupted by {name}; no partial output was left, run the command"
                   " again to redo it\n")
  sys.stderr.flush()
  os._exit(128 + signum)  # pylint: disable=protected-access


def handle_signals_for_process() -> dict:
  """The command lines' SIGINT/SIGTERM policy (see the module docstring); returns the previous
  handlers by signal number."""
  return {signum: signal.signal(signum, _process_signal)
          for signum in (signal.SIGINT, signal.SIGTERM)}


class StopSignal:
  """The training loop's handlers, from `install()` to `uninstall()`."""

  def __init__(self):
    self._previous = {}
    self._multi_process = jax.process_count() > 1

  def install(self) -> None:
    global _loop_started, _requested
    _loop_started = True

    def forward_to_preemption_service(signum, frame):  # pylint: disable=unused-argument
      signal.raise_signal(signal.SIGTERM)  # reaches JAX's C++ handler

    if self._multi_process:
      self._previous[signal.SIGINT] = signal.signal(signal.SIGINT, forward_to_preemption_service)
      return
    if signal.getsignal(signal.SIGTERM) is not _process_signal:
      _requested = False  # this run owns the request (e.g. a notebook's second run)
      self._previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, _request_stop)
    self._previous[signal.SIGINT] = signal.signal(signal.SIGINT, _request_stop)

  def uninstall(self) -> None:
    for sig, previous in self._previous.items():
      signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
    self._previous = {}

  def should_stop(self, step: int) -> bool:
    """Called by every process at every step (the sync point requires it)."""
    if self._multi_process:
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
      return multihost_utils.reached_preemption_sync_point(step)
    return _requested
