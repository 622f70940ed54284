"""Compiles a program ahead of time and reads what XLA says about it: cost, memory, collectives.

All numbers are per device (per chip): the compiled program is the SPMD-partitioned one each
chip runs. FLOPs and bytes are XLA's cost analysis of the optimized program; memory is its
buffer assignment (arguments, outputs, temporaries; donated inputs alias outputs).
"""

import dataclasses
import time

from dvq_jax.plan import hlo
from dvq_jax.plan.programs import Program


@dataclasses.dataclass(frozen=True)
class Analysis:
  """What one compiled program costs on one device.

  Attributes:
    name: "train_step" or "eval_step".
    examples: images (or code grids) per call over all devices.
    compile_seconds: wall time of `lower(...).compile()` on this machine.
    flops: floating-point operations per call per device.
    bytes_accessed: bytes read and written in memory per call per device.
    argument_bytes, output_bytes, alias_bytes, temp_bytes, code_bytes: per-device buffers;
      `alias_bytes` of the outputs reuse donated arguments.
    collectives: `{kind: {"count", "bytes"}}` (`hlo.collectives`).
  """
  name: str
  examples: int
  compile_seconds: float
  flops: float
  bytes_accessed: float
  argument_bytes: int
  output_bytes: int
  alias_bytes: int
  temp_bytes: int
  code_bytes: int
  collectives: dict

  @property
  def memory_bytes(self) -> int:
    """Device memory the program needs at once: arguments, outputs not aliasing a donated
    argument, temporaries and the program's code."""
    return (self.argument_bytes + self.output_bytes - self.alias_bytes + self.temp_bytes
            + self.code_bytes)


def compile_program(program: Program):
  """`(compiled, seconds)`: the program lowered with its abstract arguments and compiled."""
  start = time.perf_counter()
  compiled = program.jitted.lower(*program.args).compile()
  return compiled, time.perf_counter() - start


def analyze(program: Program, compiled, seconds: float) -> Analysis:
  """The costs of a compiled `program` (`compile_program`'s result)."""
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost  # older JAX: one dict per module
  memory = compiled.memory_analysis()
  return Analysis(
      name=program.name, examples=program.examples, compile_seconds=seconds,
      flops=float(cost.get("flops", 0.0)), bytes_accessed=float(cost.get("bytes accessed", 0.0)),
      argument_bytes=int(memory.argument_size_in_bytes),
      output_bytes=int(memory.output_size_in_bytes),
      alias_bytes=int(memory.alias_size_in_bytes), temp_bytes=int(memory.temp_size_in_bytes),
      code_bytes=int(memory.generated_code_size_in_bytes),
      collectives=hlo.collectives(compiled.as_text()))
