"""Residual FSQ and residual LFQ: M stages of FSQ or LFQ, each on what the previous ones left.

Stage m quantizes the residual r_m = z - sum_{j<m} sg(q_j) at a finer scale: it quantizes
r_m / s_m and contributes q_m = s_m * quantize(r_m / s_m), and the output is sum_m q_m.
The scales are those of vector-quantize-pytorch's `ResidualFSQ` (s_m = levels^-m per
dimension: a stage's grid spacing is about 2 / levels, the largest residual it leaves) and
`ResidualLFQ` (s_m = 2^-m), after the residual FSQ of Mentzer et al. (2023, "Finite Scalar
Quantization: VQ-VAE Made Simple") and the residual LFQ of Yu et al. (2023, MAGVIT-v2). Codes
are `(..., M)`, stage m's in its own [0, prod(levels)) or [0, 2^D).
"""

from collections.abc import Callable
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from dvq_jax.quantizers import _checks
from dvq_jax.quantizers._fsq import _levels
from dvq_jax.quantizers._fsq import finite_scalar_quantize
from dvq_jax.quantizers._fsq import fsq_lookup
from dvq_jax.quantizers._lfq import lfq_lookup
from dvq_jax.quantizers._lfq import lookup_free_quantize
from dvq_jax.quantizers._quantize import QuantizerOutput


def _check_stages(num_stages: int) -> None:
  if not isinstance(num_stages, int) or num_stages < 1:
    raise ValueError(f"num_stages = {num_stages!r}; set it to an integer >= 1")


def _fsq_scales(levels: np.ndarray, num_stages: int) -> np.ndarray:
  return (levels.astype(np.float64) ** -np.arange(num_stages)[:, None]).astype(np.float32)


def _lfq_scales(num_stages: int) -> np.ndarray:
  return (2.0 ** -np.arange(num_stages)[:, None]).astype(np.float32)


def _residual_stages(z: jax.Array, scales: np.ndarray,
                     quantize: Callable[[jax.Array], QuantizerOutput]) -> QuantizerOutput:
  """Runs `quantize` on the scaled residual of every stage; losses summed over stages.

  A Python loop over the M stages (M is small): under `jax.grad`, a `lax.scan` over stages that
  each hold LFQ's blocked batch-entropy loop compiled to 313 MiB of temporaries for two stages
  at N = 262,144, D = 10. Unrolled, each stage keeps about three (N, D) arrays for the backward
  pass (its scaled residual, signs and gradient): memory O(M * N * D), never O(N * 2^D).
  """
  sg = jax.lax.stop_gradient
  residual = z.astype(jnp.float32)
  total = jnp.zeros_like(residual)
  outs = []
  for scale in scales:
    out = quantize(residual / scale)
    quantized = out.quantized * scale
    residual, total = residual - sg(quantized), total + quantized
    outs.append(out)
  stack = lambda field: jnp.stack([getattr(o, field) for o in outs])
  zero = jnp.zeros((), jnp.float32)
  return QuantizerOutput(
      quantized=total.astype(z.dtype), codes=jnp.stack([o.codes for o in outs], axis=-1),
      loss=jnp.sum(stack("loss")), codebook_loss=zero,
      commitment_loss=jnp.sum(stack("commitment_loss")), perplexity=stack("perplexity")[:, 0],
      usage=stack("usage")[:, 0])


def rfsq_lookup(codes: jax.Array, levels: Sequence[int], dtype=jnp.float32) -> jax.Array:
  """Residual-FSQ codes `(..., M)` -> `(..., len(levels))`: sum_m levels^-m fsq_lookup(code_m).

  >>> rfsq_lookup(jnp.array([[7, 0]]), (3, 4)).tolist()  # stage 1 adds (-1/3, -1/4)
  [[-0.3333333432674408, -0.25]]
  """
  levels = _levels(levels)
  scales = _fsq_scales(levels, codes.shape[-1])
  return jnp.sum(fsq_lookup(codes, levels) * scales, axis=-2).astype(dtype)


def rlfq_lookup(codes: jax.Array, num_bits: int, dtype=jnp.float32) -> jax.Array:
  """Residual-LFQ codes `(..., M)` -> `(..., num_bits)`: sum_m 2^-m lfq_lookup(code_m).

  >>> rlfq_lookup(jnp.array([[1, 2]]), 2).tolist()
  [[0.5, -0.5]]
  """
  scales = _lfq_scales(codes.shape[-1])
  return jnp.sum(lfq_lookup(codes, num_bits) * scales, axis=-2).astype(dtype)


def residual_finite_scalar_quantize(
    z: jax.Array,
    levels: Sequence[int],
    num_stages: int,
    *,
    mask: jax.Array | None = None,
) -> QuantizerOutput:
  """Residual FSQ: `num_stages` FSQ stages, stage m on the residual scaled by levels^m.

  Every stage is `finite_scalar_quantize` (tanh bound, straight-through round); the gradient
  reaches z through every stage's bound. There are no codebooks, so all losses are zero.

  Args:
    z: `(..., len(levels))`; any float dtype (computed in float32).
    levels: values per dimension of every stage, each >= 2.
    num_stages: M >= 1.
    mask: optional bool `(...)`, one per vector: masked vectors add nothing to the statistics
      and their codes are 0.

  Returns:
    QuantizerOutput with quantized like z (the sum of the M stages), codes `(..., M)` int32 in
    [0, prod(levels)), perplexity and usage `(M,)` per stage.

  >>> out = residual_finite_scalar_quantize(jnp.array([[0.7, -0.2]]), (5, 5), 2)
  >>> out.codes.tolist(), bool(jnp.allclose(rfsq_lookup(out.codes, (5, 5)), out.quantized))
  ([[13, 4]], True)
  """
  levels = _levels(levels)
  _check_stages(num_stages)
  _checks.check_min_rank(z, 1, "(..., len(levels))")
  _checks.check_feature_size(z, len(levels), f"len(levels) for levels {levels.tolist()}")
  return _residual_stages(z, _fsq_scales(levels, num_stages),
                          lambda x: finite_scalar_quantize(x, levels, mask=mask))


def residual_lookup_free_quantize(
    z: jax.Array,
    num_stages: int,
    *,
    entropy_weight: float = 0.1,
    diversity_weight: float = 1.0,
    inverse_temperature: float = 100.0,
    beta: float = 0.25,
    mask: jax.Array | None = None,
) -> QuantizerOutput:
  """Residual LFQ: `num_stages` LFQ stages, stage m on the residual scaled by 2^m.

  Every stage is `lookup_free_quantize` of its scaled residual (signs, straight-through, its
  own entropy penalty and commitment loss); `loss` and `commitment_loss` are summed over the
  stages.

  Args:
    z: `(..., D)`, D <= 16; any float dtype (computed in float32).
    num_stages: M >= 1.
    entropy_weight, diversity_weight, inverse_temperature, beta: as for
      `lookup_free_quantize`, for every stage.
    mask: optional bool `(...)`, one per vector: masked vectors add nothing to the losses, the
      entropies or the statistics, and their codes are 0.

  Returns:
    QuantizerOutput with quantized like z (the sum of the M stages), codes `(..., M)` int32 in
    [0, 2^D), perplexity and usage `(M,)` per stage.

  >>> out = residual_lookup_free_quantize(jnp.array([[0.7, -1.2]]), 2)
  >>> out.codes.tolist(), out.quantized.tolist()
  ([[1, 0]], [[0.5, -1.5]])
  """
  _check_stages(num_stages)
  return _residual_stages(z, _lfq_scales(num_stages), lambda x: lookup_free_quantize(
      x, entropy_weight=entropy_weight, diversity_weight=diversity_weight,
      inverse_temperature=inverse_temperature, beta=beta, mask=mask))
