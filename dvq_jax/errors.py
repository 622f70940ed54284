"""The exceptions `main` turns into exit codes: a user mistake (one-line message, exit 2), a
NaN or an unreadable checkpoint (exit 1), a signal that stopped training with a checkpoint
(exit 0)."""


class ConfigError(ValueError):
  """A bad config value, data set or workdir; the message names the field and the fix."""


class NumericalError(RuntimeError):
  """Training produced a NaN or infinite metric; the message names the step and the metric."""


class CheckpointError(RuntimeError):
  """A checkpoint could not be read and shows no evidence of damage (storage still failing after
  the retries, or an unexpected error); it was left where it is. The message names it."""


class Stopped(Exception):
  """SIGTERM or SIGINT stopped training at a step boundary after saving a checkpoint there; the
  same call (or command) continues from it. Raised, not returned, so that no caller (a study's
  grid, a notebook) takes the partly trained model's evaluation for the final one."""
