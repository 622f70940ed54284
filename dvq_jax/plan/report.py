"""A plan as text for people and as JSON for scripts."""

import dataclasses
import json

from dvq_jax.plan.planner import Plan
from dvq_jax.plan.planner import Planned

_ESTIMATE = ("ESTIMATE: FLOPs and bytes of the program XLA compiles for this machine's CPU, set"
             " against the H100's peaks (no GPU compiler runs without a GPU; its fusions and"
             " memory differ); measure on the GPU with benchmarks/device_check.sh")


def _gb(n: float) -> str:
  return f"{n / 1e9:.3g} GB"


def _seconds(s: float) -> str:
  return f"{s * 1e3:.3g} ms" if s < 1 else f"{s:.3g} s"


def _program_lines(planned: Planned, plan: Plan) -> list[str]:
  a, r, chip = planned.analysis, planned.roofline, plan.target.chip
  devices = len(plan.target.devices)
  lines = [f"{a.name}: {a.examples} examples per step ({a.examples / devices:g} per chip),"
           f" compiled in {a.compile_seconds:.1f} s"]
  budget = f" of {_gb(chip.hbm_bytes)} HBM" if chip else ""
  lines.append(f"  memory per chip     {_gb(a.memory_bytes)}{budget}: arguments"
               f" {_gb(a.argument_bytes)}, outputs {_gb(a.output_bytes)} ({_gb(a.alias_bytes)}"
               f" reuse donated arguments), temporaries {_gb(a.temp_bytes)}, code"
               f" {_gb(a.code_bytes)}")
  intensity = a.flops / a.bytes_accessed if a.bytes_accessed else float("inf")
  lines.append(f"  per step per chip   {a.flops / 1e9:.4g} GFLOP, {_gb(a.bytes_accessed)}"
               f" accessed: {intensity:.3g} FLOP/byte")
  if r is not None:
    lines.append(f"  roofline            step >= {_seconds(r.step_seconds)} ({r.bound}-bound;"
                 f" compute {_seconds(r.compute_seconds)}, memory {_seconds(r.memory_seconds)}),"
                 f" <= {r.examples_per_second:,.0f} examples/s, MFU <= {r.mfu:.1%} (ridge"
                 f" {r.ridge:.0f} FLOP/byte)")
  collectives = ", ".join(f"{kind} x{c['count']} ({_gb(c['bytes'])})"
                          for kind, c in a.collectives.items()) or "none"
  lines.append(f"  collectives         {collectives}")
  if planned.fusions:
    total = planned.fusions["total"][0]
    # On TPU XLA's cost model charges more than operands + results (its totals above); the
    # ranking still shows which operations move the most data.
    lines.append(f"  top operations (operands + result bytes, matmul/conv FLOPs; all operations:"
                 f" {_gb(total.bytes)} of XLA's {_gb(a.bytes_accessed)}, {total.flops / 1e9:.4g}"
                 f" of its {a.flops / 1e9:.4g} GFLOP)")
    for key, title in (("by_bytes", "by bytes"), ("by_flops", "by FLOPs")):
      lines.append(f"    {title}:")
      for op in planned.fusions[key]:
        runs = f" x{op.executions}" if op.executions > 1 else ""
        lines.append(f"      {_gb(op.bytes):>10} {op.flops / 1e9:>9.4g} GFLOP  {op.name}{runs}"
                     f"  {op.source}")
  return lines


def text(plan: Plan, config_name: str) -> str:
  """The plan as lines for a terminal."""
  target, chip = plan.target, plan.target.chip
  devices = len(target.devices)
  head = f"plan: {config_name} on {target.name}, {devices} device{'s' * (devices > 1)}"
  if chip is not None:
    head += (f" ({chip.name}: {chip.peak_flops / 1e12:g} TFLOP/s bfloat16,"
             f" {chip.hbm_bandwidth / 1e9:g} GB/s and {_gb(chip.hbm_bytes)} HBM per chip;"
             f" {chip.source})")
  lines = [head]
  if target.estimate:
    lines.append(_ESTIMATE)
  for planned in plan.programs:
    lines += _program_lines(planned, plan)
  return "\n".join(lines)


def as_dict(plan: Plan, config_name: str) -> dict:
  """The plan as plain data (`--json`); byte and FLOP counts are per chip per step."""
  target = plan.target
  return {
      "config": config_name,
      "topology": target.name,
      "devices": len(target.devices),
      "chip": dataclasses.asdict(target.chip) if target.chip else None,
      "estimate": target.estimate,
      "programs": [{
          **dataclasses.asdict(p.analysis),
          "memory_bytes": p.analysis.memory_bytes,
          "fits": target.chip is None or p.analysis.memory_bytes <= target.chip.hbm_bytes,
          "roofline": dataclasses.asdict(p.roofline) if p.roofline else None,
          "fusions": {key: [dataclasses.asdict(op) for op in ops]
                      for key, ops in p.fusions.items()} if p.fusions else None,
      } for p in plan.programs],
  }


def fit_errors(plan: Plan) -> list[str]:
  """One line per program whose per-chip memory exceeds the chip's HBM."""
  chip = plan.target.chip
  return [f"{p.analysis.name} needs {_gb(p.analysis.memory_bytes)} per chip, more than the"
          f" {_gb(chip.hbm_bytes)} of a {chip.name}; lower config.batch_size, raise"
          " config.microbatches or plan a larger slice" for p in plan.too_big()]


def json_text(plan: Plan, config_name: str) -> str:
  return json.dumps(as_dict(plan, config_name), indent=2)
