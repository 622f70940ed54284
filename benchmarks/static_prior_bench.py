r"""Wall-clock time of the full default static-prior study (Fig. 3 + Fig. 4, 10 repeats each).

  python benchmarks/static_prior_bench.py --workdir=/tmp/static_prior_full
  python benchmarks/static_prior_bench.py --workdir=/tmp/sp --arg=small   # a quick check

Runs `dvq_jax.static_prior.run.run` on configs/static_prior.py[:arg] in a fresh process (so every
program is compiled: no warm cache) and prints one JSON line: total seconds, settings, the number
of compiled programs, the CPU count and the 1-minute load average before and after (the machine
may be shared with other processes; a load above the CPU count slows the run).
"""

import argparse
import importlib.util
import json
import os
import pathlib
import time

import jax

from dvq_jax.static_prior import plan as plan_lib
from dvq_jax.static_prior import run as run_lib

_CONFIG = pathlib.Path(__file__).resolve().parent.parent / "configs" / "static_prior.py"


def _load_config(arg: str | None):
  spec = importlib.util.spec_from_file_location("static_prior_config", _CONFIG)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--arg", default=None, help="config argument: fig3, fig4 or small")
  args = parser.parse_args()
  config = _load_config(args.arg)
  plan = plan_lib.make_plan(config)
  load_before = os.getloadavg()[0]
  start = time.perf_counter()
  records = run_lib.run(config, args.workdir)
  seconds = time.perf_counter() - start
  print(json.dumps({
      "benchmark": "static_prior", "arg": args.arg, "seconds": round(seconds, 1),
      "settings": len(records), "programs_compiled": len(plan.jobs) + 1,
      "repeats": config.repeats, "steps": config.steps, "cpus": os.cpu_count(),
      "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2),
      "jax": jax.__version__, "backend": jax.default_backend()}))


if __name__ == "__main__":
  main()
