"""Where a compiled step's bytes and FLOPs go: its operations (mostly fusions), ranked.

Each top-level operation of the optimized program (a fusion, a convolution, a copy, ...) is
charged the bytes of its operands and its result (what it reads from and writes to memory, as
XLA's cost model does for a fusion) and the FLOPs of the matmuls and convolutions inside it,
times how often it runs per step (the trip counts of enclosing while loops). Element-wise FLOPs
are not counted here (they are in the step's total); compare the sums with that total.
"""

import dataclasses
import math
import re

from dvq_jax.plan import hlo

# Instructions that only name or regroup buffers, or end an asynchronous pair counted at its start.
_FREE = {"parameter", "get-tuple-element", "tuple", "constant", "bitcast", "after-all",
         "partition-id", "replica-id", "opt-barrier", "async-done"}
_TRIP_COUNT = re.compile(r'"known_trip_count":\{"n":"(\d+)"\}')
_OP_NAME = re.compile(r'op_name="([^"]*)"')


@dataclasses.dataclass(frozen=True)
class Operation:
  """One top-level operation of a compiled program, per step.

  Attributes:
    name: its HLO instruction name, e.g. "fusion.317" (search the HLO text for it).
    opcode: "fusion", "convolution", "copy-start", ...
    bytes: bytes of its operands and result, times `executions`.
    flops: FLOPs of the matmuls and convolutions it computes, times `executions`.
    executions: runs per step (1, or the trip count of the while loops around it).
    source: the JAX operation it came from (its metadata's op_name), "" if none.
  """
  name: str
  opcode: str
  bytes: float
  flops: float
  executions: int
  source: str


def _called(attributes: str, key: str) -> list[str]:
  match = re.search(key + r"=\{?([^}\s,]+(?:,\s*%[\w.\-]+)*)\}?", attributes)
  return re.findall(r"%?([\w.\-]+)", match.group(1)) if match else []


def _dot_flops(instruction: hlo.Instruction, shapes: dict[str, str]) -> float:
  lhs = hlo.dims(shapes.get(instruction.operands[0], ""))
  match = re.search(r"lhs_contracting_dims=\{([\d,]*)\}", instruction.attributes)
  contracted = [lhs[int(i)] for i in filter(None, match.group(1).split(","))] if match else []
  return 2.0 * math.prod(hlo.dims(instruction.shape)) * math.prod(contracted)


def _convolution_flops(instruction: hlo.Instruction, shapes: dict[str, str]) -> float:
  kernel = hlo.dims(shapes.get(instruction.operands[1], ""))
  labels = re.search(r"dim_labels=\w+_(\w+)->", instruction.attributes)
  window = re.search(r"size=([\dx]+)", instruction.attributes)
  dilation = re.search(r"lhs_dilate=([\dx]+)", instruction.attributes)
  inputs = kernel[labels.group(1).index("i")] if labels and kernel else 1
  sizes = [int(n) for n in window.group(1).split("x")] if window else [1]
  dilations = [int(n) for n in dilation.group(1).split("x")] if dilation else [1] * len(sizes)
  # An input dilated by d (transposed convolutions; XLA:TPU's form of batched matmuls) puts
  # d - 1 zeros between its values: each output sees only ceil(size / d) of a window's taps.
  taps = math.prod(-(-size // d) for size, d in zip(sizes, dilations))
  return 2.0 * math.prod(hlo.dims(instruction.shape)) * taps * inputs


def _flops(instruction, module: hlo.Module, shapes: dict[str, str]) -> float:
  """Matmul and convolution FLOPs of an instruction, inside fusions too (whose operands are
  looked up in their own computation: names repeat across computations)."""
  if instruction.opcode == "dot":
    return _dot_flops(instruction, shapes)
  if instruction.opcode == "convolution":
    return _convolution_flops(instruction, shapes)
  if instruction.opcode == "fusion":
    total = 0.0
    for called in _called(instruction.attributes, "calls"):
      inner = module.computations.get(called, [])
      inner_shapes = {**shapes, **{i.name: i.shape for i in inner}}
      total += sum(_flops(i, module, inner_shapes) for i in inner)
    return total
  return 0.0


def _bytes(instruction: hlo.Instruction, shapes: dict[str, str]) -> float:
  operands = sum(hlo.shape_bytes(shapes.get(name, "")) for name in set(instruction.operands))
  if instruction.opcode.endswith("-start"):
    return 2.0 * operands  # read and written once; the result tuple holds both
  if instruction.opcode.endswith("-done"):
    return 0.0
  return operands + hlo.shape_bytes(instruction.shape)


def _trip_count(instruction: hlo.Instruction, module: hlo.Module) -> int:
  """Iterations of a while loop: XLA's known trip count, else the `i < N` bound of its
  condition (a counter from 0, as `lax.fori_loop` makes), else 1."""
  known = _TRIP_COUNT.search(instruction.attributes)
  if known:
    return int(known.group(1))
  for condition in _called(instruction.attributes, "condition"):
    body = module.computations.get(condition, [])
    constants = {i.name: i.arguments for i in body if i.opcode == "constant"}
    for compare in (i for i in body if i.opcode == "compare" and "direction=LT" in i.attributes):
      bound = constants.get(compare.operands[-1], "")
      if bound.isdigit():
        return int(bound)
  return 1


def operations(text: str) -> list[Operation]:
  """Every top-level operation of a compiled program's HLO text, per step (unsorted)."""
  module = hlo.parse(text)
  shapes = {i.name: i.shape for instructions in module.computations.values()
            for i in instructions}
  result = []

  def visit(computation: str, executions: int) -> None:
    for instruction in module.computations.get(computation, []):
      if instruction.opcode in _FREE:
        continue
      if instruction.opcode == "while":
        for body in _called(instruction.attributes, "body"):
          visit(body, executions * _trip_count(instruction, module))
        continue
      if instruction.opcode in ("call", "conditional", "async-start"):
        for key in ("to_apply", "calls", "branch_computations", "true_computation",
                    "false_computation"):
          for called in _called(instruction.attributes, key):
            visit(called, executions)
        continue
      source = _OP_NAME.search(instruction.attributes)
      result.append(Operation(
          name=instruction.name, opcode=instruction.opcode,
          bytes=executions * _bytes(instruction, shapes),
          flops=executions * _flops(instruction, module, shapes), executions=executions,
          source=source.group(1) if source else ""))

  visit(module.entry, 1)
  return result


def top_operations(text: str, count: int) -> dict[str, list[Operation]]:
  """The `count` operations with the most bytes and the `count` with the most FLOPs, plus
  their sums over all operations (`"total"`: one `Operation` named "all")."""
  ops = operations(text)
  total = Operation("all", "", sum(o.bytes for o in ops), sum(o.flops for o in ops), 1, "")
  return {
      "by_bytes": sorted(ops, key=lambda o: -o.bytes)[:count],
      "by_flops": sorted(ops, key=lambda o: -o.flops)[:count],
      "total": [total],
  }
