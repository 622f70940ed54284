"""SIGTERM / SIGINT: stop training at a step boundary, with a checkpoint, and exit cleanly.

A signal handler can only write process-global state, so the request lives here, not in a loop:

* `StopSignal` is the training loop's: installed for a run, it records SIGTERM and SIGINT and
  the loop checks `should_stop(step)` after every step.
* `handle_sigterm_for_process()` is the command line's (`python -m dvq_jax.main`): from then on
  a SIGTERM kills the process as by default until a training loop has started, and afterwards
  only requests a stop; `ignore_sigterm_while_exiting()` then covers Python's shutdown. So a
  signal that comes while the last checkpoint is written or while the process exits changes
  nothing (exit 0), and one that comes between two runs of a study stops the next run at its
  first step instead of being lost.

Several processes: all must stop at the same step, which JAX's preemption service agrees on
(`multihost_utils.reached_preemption_sync_point`). `jax.distributed.initialize` installs that
service's SIGTERM handler in C++; a Python SIGTERM handler would replace it (the sync point
would then never fire), so SIGTERM is left alone and SIGINT (Ctrl-C) is forwarded to it as a
SIGTERM.
"""

import signal

import jax

_requested = False  # a stop was asked for (by a signal, since the last run that owns it began)
_loop_started = False  # a training loop has run in this process


def _request_stop(signum, frame):  # pylint: disable=unused-argument
  global _requested
  _requested = True


def _process_sigterm(signum, frame):
  if _loop_started:
    _request_stop(signum, frame)
  else:  # nothing to checkpoint yet: die as the default handler would
    signal.signal(signum, signal.SIG_DFL)
    signal.raise_signal(signum)


def handle_sigterm_for_process() -> None:
  """The CLI's SIGTERM policy for the rest of the process (see the module docstring)."""
  signal.signal(signal.SIGTERM, _process_sigterm)


def ignore_sigterm_while_exiting() -> None:
  """The CLI's last step: everything is saved. (Python's shutdown resets Python-level handlers
  to the default before XLA's runtime is torn down, so the handler above cannot cover that.)"""
  if signal.getsignal(signal.SIGTERM) is _process_sigterm:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


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
    if signal.getsignal(signal.SIGTERM) is not _process_sigterm:
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
