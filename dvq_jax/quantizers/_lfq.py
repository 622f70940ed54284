"""LFQ: lookup-free quantization (Yu et al. 2023, MAGVIT-v2, "Language Model Beats Diffusion").

Every dimension is quantized to its sign, so D dimensions index an implicit codebook
{-1, 1}^D of 2^D codes without a search (bit i of the code is dimension i, dimension 0 the
least significant). An entropy penalty keeps each vector's soft assignment confident while the
batch uses the whole codebook.
"""

import jax
import jax.numpy as jnp

from dvq_jax.quantizers import _checks
from dvq_jax.quantizers._quantize import QuantizerOutput

# The codebook entropy needs the soft assignment over all 2^D codes.
_MAX_BITS = 16
# Rows per block of the (rows, 2^D) soft assignment, as in nearest_codes: about 4 MiB, but at
# least _MIN_ROWS rows (64 MiB at 2^16 codes) so large codebooks still get GEMM-sized blocks.
_TILE_BYTES = 4 << 20
_MIN_ROWS = 256


def lfq_lookup(codes: jax.Array, num_bits: int, dtype=jnp.float32) -> jax.Array:
  """int codes `(...)` -> `(..., num_bits)` vectors of +-1 (bit i = dimension i).

  >>> lfq_lookup(jnp.array([1, 6]), 3).tolist()
  [[1.0, -1.0, -1.0], [-1.0, 1.0, 1.0]]
  """
  bits = (codes[..., None].astype(jnp.int32) >> jnp.arange(num_bits, dtype=jnp.int32)) & 1
  return (2 * bits - 1).astype(dtype)


def _codebook_entropy(logits_z: jax.Array, log_norm: jax.Array) -> jax.Array:
  """H(mean_n p_n) for p_n = softmax over codes c of logits_z[n] . c, in blocks of rows."""
  num_rows, num_bits = logits_z.shape
  size = 1 << num_bits
  codebook = lfq_lookup(jnp.arange(size), num_bits)  # (2^D, D)
  rows = max(1, min(num_rows, max(_MIN_ROWS, _TILE_BYTES // (4 * size))))
  if rows == num_rows:  # one block: no loop
    probs = jnp.exp(logits_z @ codebook.T - log_norm[:, None])
    mean_probs = jnp.mean(probs, axis=0)
    return -jnp.sum(mean_probs * jnp.log(jnp.maximum(mean_probs, 1e-30)))
  num_blocks = -(-num_rows // rows)
  pad = num_blocks * rows - num_rows
  logits_z = jnp.pad(logits_z, ((0, pad), (0, 0)))
  log_norm = jnp.pad(log_norm, (0, pad), constant_values=jnp.inf)  # padded rows: p = 0

  @jax.checkpoint  # recompute each block's (rows, 2^D) probabilities in the backward pass
  def block_sum(args):
    a, norm = args
    return jnp.sum(jnp.exp(a @ codebook.T - norm[:, None]), axis=0)

  def accumulate(total, block):  # a running (2^D,) sum: no (blocks, 2^D) stack, nor its cotangent
    return total + block_sum(block), None

  blocks = (logits_z.reshape(num_blocks, rows, num_bits), log_norm.reshape(num_blocks, rows))
  total, _ = jax.lax.scan(accumulate, jnp.zeros(size, jnp.float32), blocks)
  mean_probs = total / num_rows
  return -jnp.sum(mean_probs * jnp.log(jnp.maximum(mean_probs, 1e-30)))


def lookup_free_quantize(
    z: jax.Array,
    *,
    entropy_weight: float = 0.1,
    diversity_weight: float = 1.0,
    inverse_temperature: float = 100.0,
    beta: float = 0.25,
) -> QuantizerOutput:
  """LFQ: quantized = sign(z) in {-1, 1}^D (straight-through), codes = the bits as an integer.

  The soft assignment of z to code c is p(c | z) = softmax_c(2 * inverse_temperature * z . c)
  (i.e. softmax of -inverse_temperature ||z - c||^2), which factorizes over dimensions. With
  H the entropy in nats,

      loss = beta * commitment_loss
             + entropy_weight * (mean_n H(p(. | z_n)) - diversity_weight * H(mean_n p(. | z_n)))

  where commitment_loss = mean over vectors of ||z - sg(sign(z))||^2 (summed over the D
  dimensions, as for the other quantizers) and codebook_loss = 0 (there is no codebook). The
  batch entropy term is over the whole (global, under a sharded jit) batch.

  Args:
    z: `(..., D)`, D <= 16 (the batch entropy sums over all 2^D codes).
    entropy_weight: weight of the entropy penalty.
    diversity_weight: weight of the batch (codebook) entropy inside the penalty (gamma).
    inverse_temperature: sharpness of the soft assignment.
    beta: weight of the commitment loss.

  Returns:
    QuantizerOutput with quantized like z, codes `(...)` int32 in [0, 2^D), perplexity and
    usage `(1,)` of the hard codes.

  >>> out = lookup_free_quantize(jnp.array([[0.3, -2.0, 0.1]]))
  >>> out.codes.tolist(), out.quantized.tolist()
  ([5], [[1.0, -1.0, 1.0]])
  """
  _checks.check_beta(beta)
  _checks.check_min_rank(z, 1, "(..., D)")
  num_bits = z.shape[-1]
  if not 1 <= num_bits <= _MAX_BITS:
    raise ValueError(
        f"lookup_free_quantize needs 1 <= D <= {_MAX_BITS} bits, got z shape {z.shape}; split z"
        f" into groups of <= {_MAX_BITS} dimensions (z.reshape(..., L, D)) and quantize each"
    )
  sg = jax.lax.stop_gradient
  z32 = z.astype(jnp.float32)
  hard = jnp.where(z32 > 0, 1.0, -1.0)
  quantized = z32 + sg(hard - z32)
  bits = (sg(z32) > 0).astype(jnp.int32)
  codes = jnp.sum(bits << jnp.arange(num_bits, dtype=jnp.int32), axis=-1)
  flat = z32.reshape(-1, num_bits)
  commitment_loss = jnp.mean(jnp.sum(jnp.square(flat - sg(hard.reshape(flat.shape))), axis=-1))
  # Per dimension p(bit = 1) = sigmoid(4 t z): the per-vector entropy is a sum of binary ones.
  a = 4.0 * inverse_temperature * flat
  p_one = jax.nn.sigmoid(a)
  sample_entropy = -jnp.mean(jnp.sum(
      p_one * jax.nn.log_sigmoid(a) + (1.0 - p_one) * jax.nn.log_sigmoid(-a), axis=-1))
  half = 0.5 * a  # logits of code c: half . c, normalizer sum_i log(2 cosh(half_i))
  log_norm = jnp.sum(jnp.logaddexp(half, -half), axis=-1)
  codebook_entropy = _codebook_entropy(half, log_norm)
  counts = jnp.zeros(1 << num_bits, jnp.float32).at[codes.reshape(-1)].add(1.0)
  probs = counts / flat.shape[0]
  zero = jnp.zeros((), jnp.float32)
  return QuantizerOutput(
      quantized=quantized.astype(z.dtype),
      codes=codes,
      loss=beta * commitment_loss
      + entropy_weight * (sample_entropy - diversity_weight * codebook_entropy),
      codebook_loss=zero,
      commitment_loss=commitment_loss,
      perplexity=jnp.exp(-jnp.sum(jax.scipy.special.xlogy(probs, probs)))[None],
      usage=jnp.mean(counts > 0)[None],
  )
