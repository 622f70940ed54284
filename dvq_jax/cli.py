"""What every command line of dvq_jax shares: flags, one-line errors, signals, `--help`.

  _FLAGS = cli.new_flags()
  flags.DEFINE_string("output", None, "...", flag_values=_FLAGS)

  def main(argv=None):
    cli.run(_body, _FLAGS, argv, doc=__doc__)

Each command owns its `FlagValues` (no clash between commands; tests call `main([...])` in
process). Guarantees: a bad flag value, an unknown flag or a `ConfigError` ends with one
`error:` line on stderr and exit code 2; `--help` prints the usage and exits 0; SIGINT and SIGTERM
end the command with one line and exit code 130 / 143, leaving no partial output
(`training.stopping`; a running training loop instead stops at a step boundary with a
checkpoint). Nothing here imports JAX: `dvq_jax.main` may re-execute itself before JAX loads.
"""

import signal
import sys
from collections.abc import Callable

from absl import flags
from absl import logging

from dvq_jax.errors import CheckpointError
from dvq_jax.errors import ConfigError

_HELP = ("--help", "-h", "-?", "--helpshort", "--helpfull")
_as_program = False  # set by `program`: signals stay ignored after the command, not restored


def fail(message: str, code: int = 2):
  """Prints `error: message` on stderr and exits with `code`."""
  print(f"error: {message}", file=sys.stderr, flush=True)
  sys.exit(code)


def one_line(text: str) -> str:
  """`text` with its whitespace and line breaks collapsed."""
  return " ".join(str(text).split())


def new_flags() -> flags.FlagValues:
  """A command's own flags, with `--verbosity` (absl logging: -1 warnings, 0 info)."""
  flag_values = flags.FlagValues()
  flags.DEFINE_integer("verbosity", -1, "Logging level: -1 warnings only, 0 info, 1 debug.",
                       flag_values=flag_values)
  return flag_values


def run(body: Callable[[list[str]], None], flag_values: flags.FlagValues,
        argv: list[str] | None = None, *, doc: str,
        parse: Callable[[list[str]], list[str]] | None = None) -> None:
  """Parses `argv` into `flag_values` and calls `body(remaining argv)` under the policy above.

  Args:
    body: the command; raises ConfigError for user mistakes.
    flag_values: the command's flags (from `new_flags`).
    argv: the command line, program name first; None = `sys.argv`.
    doc: the usage text `--help` prints before the flags.
    parse: a replacement for `flag_values(argv)` that turns its own errors into `fail`.
  """
  argv = list(sys.argv if argv is None else argv)
  if any(arg in _HELP for arg in argv[1:]):
    print(doc.strip() + "\n\nflags:\n" + flag_values.get_help(include_special_flags=False))
    sys.exit(0)
  flag_values.unparse_flags()  # a second call in one process starts from the defaults
  try:
    rest = parse(argv) if parse else flag_values(argv)
  except flags.Error as e:
    fail(f"{one_line(e)}; see --help")
  # As absl's app.run does: log records of every library (the loop's, orbax's) go through absl's
  # handler, and --verbosity sets the level of all of them.
  logging.use_absl_handler()
  logging.set_verbosity(flag_values.verbosity)
  flags.FLAGS.mark_as_parsed()  # libraries that read absl's global flags (grain) may run now
  # Imported here: it imports JAX (see the module docstring).
  from dvq_jax.training import stopping  # pylint: disable=import-outside-toplevel
  previous = stopping.handle_signals_for_process()
  try:
    body(rest)
  except ConfigError as e:
    fail(str(e))
  except CheckpointError as e:  # storage still failing after the retries: not the user's input
    fail(str(e), code=1)
  finally:
    for signum, handler in previous.items():
      signal.signal(signum, signal.SIG_IGN if _as_program else handler)


def program(main: Callable[[], None]) -> None:
  """Runs `main()` as the process's program: SIGINT/SIGTERM are ignored once `run` has ended
  (everything is written; Python's shutdown resets its own handlers before XLA's runtime is
  torn down, so a late signal would otherwise crash the exit)."""
  global _as_program
  _as_program = True
  main()
