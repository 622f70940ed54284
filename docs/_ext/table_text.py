"""What every table of the `results-table` directive shares: where the result files are, and
the Markdown a table renders as. A table reads `IMAGES` when it runs (tests point it elsewhere).
"""

import json
import pathlib
from typing import Any

import numpy as np

DOCS = pathlib.Path(__file__).resolve().parents[1]
IMAGES = DOCS / "images"

PM = "\u00a0±\u00a0"  # non-breaking: a cell never wraps between a mean and its std


def load(path: str) -> Any:
  """The JSON file `IMAGES/path`."""
  return json.loads((IMAGES / path).read_text())


def optional(path: str) -> Any:
  """The JSON file `IMAGES/path`, or None when it does not exist."""
  file = IMAGES / path
  return json.loads(file.read_text()) if file.exists() else None


def markdown(header: list[str], rows: list[list[str]]) -> str:
  """A Markdown table."""
  lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
  lines += ["| " + " | ".join(row) + " |" for row in rows]
  return "\n".join(lines)


def mean_std(values: list[float], digits: int) -> str:
  """`mean ± std` (ddof 1) of the values, or the one value."""
  values = np.asarray(values, dtype=np.float64)
  if len(values) == 1:
    return f"{values[0]:.{digits}f}"
  return f"{values.mean():.{digits}f}{PM}{values.std(ddof=1):.{digits}f}"
