"""Plan a run before paying for it: its steps compiled ahead of time for a TPU slice (or 8 CPU
devices, or an H100 estimate), with per-chip memory, FLOPs, bytes, roofline and collectives.

  python -m dvq_jax.plan --config=configs/cifar10.py --topology=v5e:4x4

`plan(config, topology)` does the work; `report` formats it.
"""

from dvq_jax.plan.chips import CHIPS
from dvq_jax.plan.chips import Chip
from dvq_jax.plan.planner import PROGRAMS
from dvq_jax.plan.planner import Plan
from dvq_jax.plan.planner import plan

__all__ = ["CHIPS", "PROGRAMS", "Chip", "Plan", "plan"]
