"""BSQ: binary spherical quantization (Zhao, Xiong and Krähenbühl 2024, "Image and Video
Tokenization with Binary Spherical Quantization").

BSQ is LFQ on the unit sphere: z is l2-normalised to u and every dimension is quantized to
sign(u_i) / sqrt(D), so the D-bit codes index an implicit codebook of 2^D points on the sphere
(bit i of the code is dimension i, dimension 0 the least significant) and every quantized
vector has norm 1. The bounded quantization error keeps the entropy penalty of LFQ cheap and
stable; with the soft assignment factorized over dimensions the per-vector entropy is exact,
and the batch (codebook) entropy is taken over groups of dimensions (exact for one group).
"""

import math

import jax
import jax.numpy as jnp

from dvq_jax.quantizers import _checks
from dvq_jax.quantizers._cosine import l2_normalize
from dvq_jax.quantizers._lfq import binary_entropies
from dvq_jax.quantizers._lfq import check_group_size
from dvq_jax.quantizers._lfq import lfq_lookup
from dvq_jax.quantizers._quantize import QuantizerOutput
from dvq_jax.quantizers._stats import code_statistics
from dvq_jax.quantizers._stats import position_weights
from dvq_jax.quantizers._stats import weighted_mean
from dvq_jax.quantizers._stats import zero_masked

# Codes are int32: D bits must stay below 2**31.
_MAX_DIM = 31


def bsq_lookup(codes: jax.Array, dim: int, dtype=jnp.float32) -> jax.Array:
  """int codes `(...)` in [0, 2^D) -> `(..., D)` points of +-1/sqrt(D) (bit i = dimension i).

  >>> bsq_lookup(jnp.array([1, 2]), 4).tolist()
  [[0.5, -0.5, -0.5, -0.5], [-0.5, 0.5, -0.5, -0.5]]
  """
  return (lfq_lookup(codes, dim) / math.sqrt(dim)).astype(dtype)


def binary_spherical_quantize(
    z: jax.Array,
    *,
    beta: float = 0.25,
    entropy_weight: float = 0.1,
    diversity_weight: float = 1.0,
    inverse_temperature: float = 100.0,
    group_size: int | None = None,
    mask: jax.Array | None = None,
) -> QuantizerOutput:
  """BSQ: u = z / ||z||, quantized = sign(u) / sqrt(D) (straight-through), codes = the bits.

  The gradient reaches z through the l2 normalisation (straight-through the sign). The soft
  assignment of u to code c is p(c | u) = softmax_c(2 * inverse_temperature * u . c), as LFQ's
  with c on the sphere; with H the entropy in nats,

      loss = beta * commitment_loss
             + entropy_weight * (mean_n H(p(. | u_n))
                                 - diversity_weight * sum_g H(mean_n p_g(. | u_n)))

  where commitment_loss = mean over vectors of ||u - sg(quantized)||^2, p_g is the soft
  assignment of group g (dimensions g*group_size .. (g+1)*group_size - 1) to its
  2^group_size sub-codes, and codebook_loss = 0. The per-vector entropy is exact (it
  factorizes over dimensions); the batch entropy is exact for group_size = D and the paper's
  factorized approximation (a sum over groups) otherwise. The batch entropy is computed in
  blocks of rows: memory grows with N + 2^group_size, never with their product.

  Args:
    z: `(..., D)`, 1 <= D <= 31; any float dtype (computed in float32).
    beta: weight of the commitment loss, >= 0.
    entropy_weight: weight of the entropy penalty.
    diversity_weight: weight of the batch (codebook) entropy inside the penalty.
    inverse_temperature: sharpness of the soft assignment.
    group_size: dimensions per batch-entropy group, dividing D and <= 16; None = D (exact,
      needs D <= 16).
    mask: optional bool `(...)`, one per vector: masked vectors add nothing to the losses, the
      entropies or the statistics, and their codes are 0.

  Returns:
    QuantizerOutput with quantized like z (norm 1), codes `(...)` int32 in [0, 2^D),
    perplexity and usage `(1,)` of the hard codes.

  >>> out = binary_spherical_quantize(jnp.array([[3.0, -1.0, 0.5, -0.2]]))
  >>> out.codes.tolist(), out.quantized.tolist()
  ([5], [[0.5, -0.5, 0.5, -0.5]])
  """
  _checks.check_beta(beta)
  _checks.check_min_rank(z, 1, "(..., D)")
  dim = z.shape[-1]
  if not 1 <= dim <= _MAX_DIM:
    raise ValueError(f"binary_spherical_quantize needs 1 <= D <= {_MAX_DIM} (int32 codes), got z"
                     f" shape {z.shape}; split z into slices (depthwise) of fewer dimensions")
  group_size = check_group_size(group_size, dim, "binary_spherical_quantize")
  weights = position_weights(mask, z.shape[:-1])
  sg = jax.lax.stop_gradient
  u = l2_normalize(z.astype(jnp.float32)).reshape(-1, dim)
  hard = jnp.where(u > 0, 1.0, -1.0) / math.sqrt(dim)
  quantized = u + sg(hard - u)
  bits = (sg(u) > 0).astype(jnp.int32)
  codes = zero_masked(jnp.sum(bits << jnp.arange(dim, dtype=jnp.int32), axis=-1), weights)
  commitment_loss = weighted_mean(jnp.sum(jnp.square(u - sg(hard)), axis=-1), weights)
  # BSQ's p(c | u) is LFQ's for x = u / sqrt(D) against sign codes.
  sample_entropy, codebook_entropy = binary_entropies(
      u / math.sqrt(dim), inverse_temperature, group_size, weights)
  perplexity, usage = code_statistics(codes[:, None], 1 << dim, weights)
  zero = jnp.zeros((), jnp.float32)
  return QuantizerOutput(
      quantized=quantized.reshape(z.shape).astype(z.dtype),
      codes=codes.reshape(z.shape[:-1]),
      loss=beta * commitment_loss
      + entropy_weight * (sample_entropy - diversity_weight * codebook_entropy),
      codebook_loss=zero,
      commitment_loss=commitment_loss,
      perplexity=perplexity,
      usage=usage,
  )
