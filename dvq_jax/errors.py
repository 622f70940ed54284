"""The one exception type for user mistakes: `main` turns it into a one-line message and exit 2."""


class ConfigError(ValueError):
  """A bad config value, data set or workdir; the message names the field and the fix."""


class NumericalError(RuntimeError):
  """Training produced a NaN or infinite metric; the message names the step and the metric."""
