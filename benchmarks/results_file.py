"""The `--output` file of the benchmark scripts: their rows with the run that wrote them.

A results page renders its tables from these files (docs/_ext/results_tables.py), so each file
carries what the page prints beside a table: the command, the commit, the machine, the date and
the load.
"""

import argparse
import datetime
import json
import os
import pathlib
import platform
import subprocess
import sys
from typing import Any

import jax


def add_flag(parser: argparse.ArgumentParser) -> None:
  """Adds `--output`, the JSON file the script's rows go to."""
  parser.add_argument("--output", default=None,
                      help="also write the results to this JSON file (rows, command, commit,"
                      " machine, date, load)")


def cpu_model() -> str:
  """The CPU's model name from /proc/cpuinfo (`platform.processor()` where there is none)."""
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as f:
      return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
  except (OSError, StopIteration):
    return platform.processor()


def _commit() -> str | None:
  """The checkout's commit (with `+changes` when the work tree differs outside docs/images),
  None outside git."""
  root = pathlib.Path(__file__).resolve().parents[1]
  try:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, check=True,
                            capture_output=True, text=True).stdout.strip()
    # Results files (docs/images) are what a run writes, not what it ran.
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                            ":(exclude)docs/images"], cwd=root, check=True, capture_output=True,
                           text=True).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    return None
  return commit + ("+changes" if dirty else "")


def write(path: str | None, rows: list[dict[str, Any]], **settings: Any) -> None:
  """Writes `rows` (one dict a table row) to `path` as JSON, with the run's provenance.

  Args:
    path: the `--output` value; nothing is written when it is None.
    rows: the script's results, one dict a row, JSON-serializable.
    **settings: the run's settings worth keeping beside the rows (sizes, rounds, ...).
  """
  if path is None:
    return
  record = {
      "command": " ".join(["python", *sys.argv]),
      "commit": _commit(),
      "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
      "cpu": cpu_model(),
      "cpus": os.cpu_count(),
      "load": [round(x, 2) for x in os.getloadavg()],
      "jax": jax.__version__,
      "settings": settings,
      "rows": rows,
  }
  pathlib.Path(path).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
