"""The roofline bound of a step on a chip: the larger of its compute time and its memory time.

A step of F FLOPs and B bytes per chip takes at least max(F / peak FLOP/s, B / HBM bandwidth)
on that chip; the MFU it can reach is at most the compute time over that bound (1 when it is
compute-bound). Time in collectives and in host input is not modelled: a lower bound on time.
"""

import dataclasses

from dvq_jax.plan.chips import Chip


@dataclasses.dataclass(frozen=True)
class Roofline:
  """Bounds of one step on one chip kind.

  Attributes:
    intensity: FLOPs per byte accessed.
    ridge: the chip's peak FLOP/s over its HBM bandwidth: at higher intensity it is compute-bound.
    compute_seconds, memory_seconds: F / peak, B / bandwidth.
    step_seconds: the larger of the two, a lower bound on the step time.
    examples_per_second: the global images (code grids) per step over that bound, all chips.
    mfu: compute_seconds / step_seconds, an upper bound on the model FLOP/s utilization.
    bound: "memory" or "compute".
  """
  intensity: float
  ridge: float
  compute_seconds: float
  memory_seconds: float
  step_seconds: float
  examples_per_second: float
  mfu: float
  bound: str


def roofline(flops: float, bytes_accessed: float, examples: int, chip: Chip) -> Roofline:
  """The bound of a step of `flops` and `bytes_accessed` per chip, `examples` over all chips.

  >>> from dvq_jax.plan.chips import CHIPS
  >>> r = roofline(197e12, 819e9, 128, CHIPS["v5e"])  # 1 s of compute and 1 s of memory
  >>> round(r.step_seconds, 6), round(r.mfu, 6), r.bound
  (1.0, 1.0, 'compute')
  """
  compute = flops / chip.peak_flops
  memory = bytes_accessed / chip.hbm_bandwidth
  step = max(compute, memory)
  return Roofline(
      intensity=flops / bytes_accessed if bytes_accessed else float("inf"),
      ridge=chip.peak_flops / chip.hbm_bandwidth,
      compute_seconds=compute, memory_seconds=memory, step_seconds=step,
      examples_per_second=examples / step if step else float("inf"),
      mfu=compute / step if step else 0.0,
      bound="compute" if compute >= memory else "memory")
