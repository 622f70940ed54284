"""`plan(config, topology)`: the run's programs compiled for a slice, with their costs.

The one call `python -m dvq_jax.plan` and the tests make; `report` prints its result.
"""

import dataclasses

import ml_collections

from dvq_jax import backends
from dvq_jax.plan import analysis
from dvq_jax.plan import chips
from dvq_jax.plan import fusions as fusions_lib
from dvq_jax.plan import programs as programs_lib
from dvq_jax.plan import roofline as roofline_lib
from dvq_jax.training import sharding

PROGRAMS = ("train_step", "eval_step")


@dataclasses.dataclass(frozen=True)
class Planned:
  """One program of the plan: its costs, its roofline (None without a chip), its top operations
  (`fusions.top_operations`; empty unless asked for)."""
  analysis: analysis.Analysis
  roofline: roofline_lib.Roofline | None
  fusions: dict


@dataclasses.dataclass(frozen=True)
class Plan:
  """A run planned for a topology.

  Attributes:
    target: what was compiled for (`chips.Target`).
    programs: the planned programs, in `PROGRAMS` order.
  """
  target: chips.Target
  programs: list[Planned]

  def too_big(self) -> list[Planned]:
    """The programs whose per-chip memory exceeds the chip's HBM (none without a chip)."""
    chip = self.target.chip
    return [p for p in self.programs
            if chip is not None and p.analysis.memory_bytes > chip.hbm_bytes]


def plan(config: ml_collections.ConfigDict, topology: str, *,
         vqvae_config: ml_collections.ConfigDict | None = None,
         only: tuple[str, ...] = PROGRAMS, fusions: int = 0) -> Plan:
  """Compiles the run's train and evaluation steps for `topology` ahead of time.

  Args:
    config: a VQ-VAE or code-prior config, as `python -m dvq_jax.main` takes it.
    topology: e.g. "v5e:4x4", "v4:2x2x1", "cpu:8" or "h100" (`chips.parse`).
    vqvae_config: a prior's VQ-VAE, when `config.vqvae_workdir` is empty.
    only: which of `PROGRAMS` to compile.
    fusions: list this many top operations by bytes and by FLOPs per program (0: none).

  Raises:
    ConfigError: a bad topology or config, or libtpu missing for a TPU topology.
  """
  target = chips.target(topology)
  mesh = sharding.make_mesh(target.devices)
  planned = []
  # The model and its step take the forms of the backend they are compiled for, not the host's.
  with backends.compiling_for("gpu" if target.estimate else target.devices[0].platform):
    compiled_programs = [(program, *analysis.compile_program(program))
                         for program in programs_lib.programs(config, mesh, vqvae_config)
                         if program.name in only]
  for program, compiled, seconds in compiled_programs:
    result = analysis.analyze(program, compiled, seconds)
    bound = None
    if target.chip is not None:
      bound = roofline_lib.roofline(result.flops, result.bytes_accessed, program.examples,
                                    target.chip)
    top = fusions_lib.top_operations(compiled.as_text(), fusions) if fusions else {}
    planned.append(Planned(result, bound, top))
  return Plan(target, planned)
