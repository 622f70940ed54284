"""The roofline of the shipped configs' steps on a TPU slice, one table: `dvq_jax.plan` for each.

Each plan is `python -m dvq_jax.plan ARGS --json` in a process of its own (a plan sets JAX's
platform and device count before the backend starts); its programs become rows: compile time,
per-chip memory, GFLOP and GB accessed per chip per step, FLOP/byte, the roofline step time,
images/s and MFU bound, and the collectives. TPU topologies need libtpu (`pip install -e
".[tpu]"`); on a CPU host run it as

    JAX_PLATFORMS=cpu TPU_SKIP_MDS_QUERY=1 python benchmarks/plan_table.py \\
        --output=docs/images/benchmarks/plans_v5e.json

A plan is given as one string of `dvq_jax.plan` flags (`--plans "--config=configs/demo.py
--topology=v5e:1x1" ...`); the default list is the shipped configs' train and eval steps on one
v5e chip, with cifar10's train step again in float32 (the precision the accelerator default
replaces).
"""

import argparse
import json
import shlex
import subprocess
import sys

import results_file

DEFAULT_PLANS = (
    "--config=configs/cifar10.py --topology=v5e:1x1",
    "--config=configs/cifar10.py --config.model.dtype=float32 --topology=v5e:1x1"
    " --programs=train_step",
    "--config=configs/imagenet64.py --topology=v5e:1x1",
    "--config=configs/prior.py --vqvae_config=configs/demo.py --topology=v5e:1x1",
    "--config=configs/cifar10.py --topology=v5e:4x4",
)


def plan_rows(flags: str) -> list[dict]:
  """The rows of one plan: one a compiled program."""
  command = [sys.executable, "-m", "dvq_jax.plan", *shlex.split(flags), "--json"]
  print("$", " ".join(command[1:]), flush=True)
  result = subprocess.run(command, capture_output=True, text=True, check=False)
  if result.returncode != 0:
    sys.exit(f"plan failed ({result.returncode}): {result.stderr.strip().splitlines()[-1]}")
  plan = json.loads(result.stdout[result.stdout.index("{"):])
  rows = []
  for program in plan["programs"]:
    roof = program["roofline"] or {}
    rows.append({
        "plan": flags, "topology": plan["topology"], "devices": plan["devices"],
        "program": program["name"], "examples": program["examples"],
        "compile_s": program["compile_seconds"], "memory_gb": program["memory_bytes"] / 1e9,
        "fits": program["fits"], "gflop": program["flops"] / 1e9,
        "gb_accessed": program["bytes_accessed"] / 1e9,
        "flop_per_byte": roof.get("intensity"),
        "step_ms_bound": 1e3 * roof["step_seconds"] if roof else None,
        "images_per_s_bound": roof.get("examples_per_second"), "mfu_bound": roof.get("mfu"),
        "collectives": {kind: value["count"] for kind, value in program["collectives"].items()},
    })
    print(f"  {program['name']}: {rows[-1]['gflop']:.1f} GFLOP, {rows[-1]['gb_accessed']:.2f} GB,"
          f" MFU bound {100 * (rows[-1]['mfu_bound'] or 0):.1f}%,"
          f" compiled in {rows[-1]['compile_s']:.0f} s", flush=True)
  return rows


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--plans", nargs="+", default=list(DEFAULT_PLANS),
                      help="each a string of dvq_jax.plan flags")
  results_file.add_flag(parser)
  args = parser.parse_args()
  rows = [row for flags in args.plans for row in plan_rows(flags)]
  results_file.write(args.output, rows)


if __name__ == "__main__":
  main()
