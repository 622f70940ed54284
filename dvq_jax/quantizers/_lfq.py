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
from dvq_jax.quantizers._stats import code_statistics
from dvq_jax.quantizers._stats import num_positions
from dvq_jax.quantizers._stats import position_weights
from dvq_jax.quantizers._stats import weighted_mean
from dvq_jax.quantizers._stats import zero_masked

# The codebook entropy needs the soft assignment over all 2^D codes.
_MAX_BITS = 16
# Rows per block of the (rows, groups, 2^g) soft assignment, as in nearest_codes: about 4 MiB, but at
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


def binary_entropies(x: jax.Array, inverse_temperature: float, group_size: int,
                     weights: jax.Array | None) -> tuple[jax.Array, jax.Array]:
  """The entropy terms of a soft assignment to sign codes s in {-1, 1}^D.

  p(s | x) = softmax_s(2 t x . s) (t = inverse_temperature) factorizes over dimensions, so the
  per-vector entropy is a sum of D binary entropies. The batch (codebook) entropy is taken per
  group of `group_size` consecutive dimensions and summed over the D / group_size groups:
  exactly H(mean_n p(. | x_n)) when group_size = D, an upper bound of it otherwise.

  Both terms are accumulated over blocks of rows, each block's work recomputed in the backward
  pass: the pass keeps x and a running (groups, 2^group_size) sum, never an (N, 2^group_size)
  matrix nor (N, D) intermediates (which a residual LFQ would otherwise hold for every stage).

  Args:
    x: `(N, D)` float32.
    inverse_temperature: t.
    group_size: dimensions per group, dividing D, <= 16.
    weights: `(N,)` 0/1 position weights or None.

  Returns:
    `(mean_n H(p(. | x_n)), sum_groups H(mean_n p_group(. | x_n)))`, means over unmasked rows.
  """
  num_rows, num_bits = x.shape
  num_groups, size = num_bits // group_size, 1 << group_size
  codebook = lfq_lookup(jnp.arange(size), group_size)  # (2^g, g)
  rows = max(1, min(num_rows, max(_MIN_ROWS, _TILE_BYTES // (4 * num_groups * size))))
  num_blocks = -(-num_rows // rows)
  pad = num_blocks * rows - num_rows
  w = jnp.ones((num_rows,), jnp.float32) if weights is None else weights
  if pad:  # padded rows: weight 0
    x, w = jnp.pad(x, ((0, pad), (0, 0))), jnp.pad(w, (0, pad))

  @jax.checkpoint  # recompute each block's (rows, groups, 2^g) probabilities in the backward
  def block_sums(args):
    xb, wb = args
    a = 4.0 * inverse_temperature * xb  # per dimension p(s = 1) = sigmoid(a)
    p_one = jax.nn.sigmoid(a)
    entropy = -jnp.sum(p_one * jax.nn.log_sigmoid(a) + (1.0 - p_one) * jax.nn.log_sigmoid(-a),
                       axis=-1)
    half = (0.5 * a).reshape(rows, num_groups, group_size)  # logits of s: half . s
    log_norm = jnp.sum(jnp.logaddexp(half, -half), axis=-1)  # sum_i log(2 cosh(half_i))
    probs = jnp.exp(half @ codebook.T - log_norm[..., None])  # (rows, groups, 2^g)
    probs = jnp.where(wb[:, None, None] > 0, probs, 0.0)
    return jnp.sum(wb * entropy), jnp.sum(probs, axis=0)

  def accumulate(total, block):  # running sums: no per-block stack, nor its cotangent
    entropy, probs = block_sums(block)
    return (total[0] + entropy, total[1] + probs), None

  blocks = (x.reshape(num_blocks, rows, num_bits), w.reshape(num_blocks, rows))
  if num_blocks == 1:  # one block: no loop
    entropy, probs = block_sums((blocks[0][0], blocks[1][0]))
  else:
    zeros = (jnp.zeros((), jnp.float32), jnp.zeros((num_groups, size), jnp.float32))
    (entropy, probs), _ = jax.lax.scan(accumulate, zeros, blocks)
  count = num_positions(weights, num_rows)
  mean_probs = probs / count
  batch_entropy = -jnp.sum(mean_probs * jnp.log(jnp.maximum(mean_probs, 1e-30)))
  return entropy / count, batch_entropy


def check_group_size(group_size: int | None, num_bits: int, what: str) -> int:
  """group_size, or D when None (the exact batch entropy), checked: divides D, <= 16."""
  if group_size is None:
    group_size = num_bits
  if not (isinstance(group_size, int) and 1 <= group_size <= _MAX_BITS
          and num_bits % group_size == 0):
    raise ValueError(
        f"{what}: group_size = {group_size!r} must divide D = {num_bits} and be in"
        f" [1, {_MAX_BITS}] (the batch entropy sums over 2^group_size codes a group); pick one"
    )
  return group_size


def lookup_free_quantize(
    z: jax.Array,
    *,
    entropy_weight: float = 0.1,
    diversity_weight: float = 1.0,
    inverse_temperature: float = 100.0,
    beta: float = 0.25,
    mask: jax.Array | None = None,
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
    mask: optional bool `(...)`, one per vector: masked vectors add nothing to the losses, the
      entropies or the statistics, and their codes are 0.

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
  weights = position_weights(mask, z.shape[:-1])
  sg = jax.lax.stop_gradient
  z32 = z.astype(jnp.float32)
  hard = jnp.where(z32 > 0, 1.0, -1.0)
  quantized = z32 + sg(hard - z32)
  flat = z32.reshape(-1, num_bits)
  bits = (sg(flat) > 0).astype(jnp.int32)
  codes = zero_masked(jnp.sum(bits << jnp.arange(num_bits, dtype=jnp.int32), axis=-1), weights)
  commitment_loss = weighted_mean(
      jnp.sum(jnp.square(flat - sg(hard.reshape(flat.shape))), axis=-1), weights)
  sample_entropy, codebook_entropy = binary_entropies(flat, inverse_temperature, num_bits,
                                                      weights)
  perplexity, usage = code_statistics(codes[:, None], 1 << num_bits, weights)
  zero = jnp.zeros((), jnp.float32)
  return QuantizerOutput(
      quantized=quantized.astype(z.dtype),
      codes=codes.reshape(z.shape[:-1]),
      loss=beta * commitment_loss
      + entropy_weight * (sample_entropy - diversity_weight * codebook_entropy),
      codebook_loss=zero,
      commitment_loss=commitment_loss,
      perplexity=perplexity,
      usage=usage,
  )
