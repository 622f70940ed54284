"""Reading a compiled program's HLO text: shapes and their bytes, instructions, collectives.

The text is `jax.stages.Compiled.as_text()` after optimization (TPU or CPU): one computation
per block, one instruction per line, `%name = TYPE opcode(%operand, ...), attr=..., ...`;
operands are printed by name only, so shapes are looked up from their definitions.
"""

import dataclasses
import math
import re

# Bytes per element of each HLO element type (sub-byte types rounded up per element).
_ELEMENT_BYTES = {
    "pred": 1, "s4": 1, "u4": 1, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "f16": 2, "bf16": 2,
    "s32": 4, "u32": 4, "f32": 4, "s64": 8, "u64": 8, "f64": 8, "c64": 8, "c128": 16,
}
_ARRAY = re.compile(r"\b([a-z]+[0-9]*(?:e[0-9]m[0-9][a-z0-9]*)?)\[([0-9,]*)\](?:\{([^}]*)\})?")
_TILE = re.compile(r"T\(([\d,]+)\)")
_INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%([\w.\-]+) = (.*)$")
_COMPUTATION = re.compile(r"^(ENTRY\s+)?%([\w.\-]+) .*\{$")
COLLECTIVES = ("all-reduce", "all-gather", "reduce-scatter", "all-to-all", "collective-permute",
               "collective-broadcast", "ragged-all-to-all")


def element_bytes(dtype: str) -> int:
  """Bytes of one element of an HLO type name; 8-bit floats (`f8e4m3fn`, ...) are 1."""
  return 1 if dtype.startswith("f8") else _ELEMENT_BYTES.get(dtype, 0)


def _padded_count(dims: list[int], layout: str | None) -> int:
  """Elements an array occupies in memory: its first layout tile (TPU: `T(8,128)`) pads the
  minor-most dimensions up to multiples of the tile, which costs memory and bandwidth alike."""
  tile = _TILE.search(layout or "")
  if not tile:
    return math.prod(dims)
  order, _, _ = layout.partition(":")
  minor_to_major = [int(n) for n in filter(None, order.split(","))] or list(range(len(dims)))[::-1]
  physical = [dims[i] for i in reversed(minor_to_major)]
  sizes = [int(n) for n in tile.group(1).split(",")]
  physical = [1] * max(0, len(sizes) - len(physical)) + physical
  for k, size in enumerate(reversed(sizes), start=1):
    physical[-k] = -(-physical[-k] // size) * size
  return math.prod(physical)


def shape_bytes(shape: str) -> int:
  """Bytes of every array in an HLO shape string (a tuple counts all its elements), padded to
  the arrays' layout tiles where the shape carries them.

  >>> shape_bytes("(f32[2,3]{1,0}, bf16[4]{0})")
  32
  >>> shape_bytes("f32[2,3]{1,0:T(8,128)}")  # a TPU layout: 8x128 tiles
  4096
  """
  total = 0
  for dtype, dimensions, layout in _ARRAY.findall(shape):
    count = _padded_count([int(n) for n in filter(None, dimensions.split(","))], layout)
    total += count * element_bytes(dtype)
  return total


def dims(shape: str) -> list[int]:
  """The dimensions of the first array in a shape string: `"f32[2,3]{1,0}"` -> [2, 3]."""
  match = _ARRAY.search(shape)
  return [int(n) for n in filter(None, match.group(2).split(","))] if match else []


@dataclasses.dataclass(frozen=True)
class Instruction:
  """One HLO instruction: `%name = shape opcode(arguments), attributes`; `operands` are the
  names in the arguments (a constant's arguments are its value)."""
  name: str
  shape: str
  opcode: str
  operands: tuple[str, ...]
  attributes: str
  arguments: str


def _split_type(rest: str) -> tuple[str, str]:
  """`"(f32[2], s32[]) tuple(%a, %b)"` -> the type and what follows it."""
  if not rest.startswith("("):
    shape, _, tail = rest.partition(" ")
    return shape, tail
  depth = 0
  for i, char in enumerate(rest):
    depth += {"(": 1, ")": -1}.get(char, 0)
    if depth == 0:
      return rest[:i + 1], rest[i + 1:].lstrip()
  return rest, ""


def _parse_instruction(line: str) -> Instruction | None:
  match = _INSTRUCTION.match(line)
  if not match:
    return None
  name, rest = match.groups()
  shape, tail = _split_type(rest)
  opcode, paren, after = tail.partition("(")
  if not paren:
    return None
  depth, end = 1, len(after)
  for i, char in enumerate(after):
    depth += {"(": 1, ")": -1}.get(char, 0)
    if depth == 0:
      end = i
      break
  operands = tuple(re.findall(r"%([\w.\-]+)", after[:end]))
  return Instruction(name, shape, opcode.strip(), operands, after[end + 1:], after[:end])


@dataclasses.dataclass(frozen=True)
class Module:
  """A parsed HLO module: its computations' instructions by name, and the entry's name."""
  computations: dict[str, list[Instruction]]
  entry: str


def parse(text: str) -> Module:
  """The computations of a module's HLO text (instructions of fused computations included)."""
  result, current, entry = {}, None, ""
  for line in text.splitlines():
    header = _COMPUTATION.match(line)
    if header:
      current = result.setdefault(header.group(2), [])
      entry = header.group(2) if header.group(1) else entry
      continue
    instruction = _parse_instruction(line) if current is not None else None
    if instruction is not None:
      current.append(instruction)
  return Module(result, entry)


def collectives(text: str) -> dict[str, dict[str, int]]:
  """`{kind: {"count", "bytes"}}` of the cross-device operations in a compiled program.

  An asynchronous pair (`all-reduce-start` / `all-reduce-done`) counts once, by the `-done`'s
  result; bytes are those of the result (per device).
  """
  result = {}
  for instructions in parse(text).computations.values():
    for instruction in instructions:
      kind = instruction.opcode.removesuffix("-done")
      if kind in COLLECTIVES and not instruction.opcode.endswith("-start"):
        entry = result.setdefault(kind, {"count": 0, "bytes": 0})
        entry["count"] += 1
        entry["bytes"] += shape_bytes(instruction.shape)
  return dict(sorted(result.items()))
