"""An entropy penalty for codebook quantizers (as MAGVIT and MaskGIT-style tokenizers add to VQ).

With the soft assignment p_n = softmax_k(-||z_n - e_k||^2 / temperature) of every vector to
the K codes, the penalty

    mean_n H(p_n) - diversity_weight * H(mean_n p_n)

is low when each vector is confidently assigned (first term) while the batch spreads over the
whole codebook (second term): added to the loss it fights codebook collapse (Yu et al. 2023,
MAGVIT-v2, Eq. 5, there for LFQ; the same penalty is used with VQ codebooks). It is computed
in row blocks -- each block's (rows, K) probabilities recomputed in the backward pass -- so
memory grows with N + K, never N * K.
"""

import jax
import jax.numpy as jnp

from dvq_jax.quantizers import _checks
from dvq_jax.quantizers._stats import num_positions
from dvq_jax.quantizers._stats import position_weights

# Rows per block: about this many bytes of (rows, K) float32 probabilities.
_TILE_BYTES = 4 << 20


def codebook_entropy_penalty(
    z: jax.Array,
    codebook: jax.Array,
    *,
    temperature: float = 1.0,
    diversity_weight: float = 1.0,
    mask: jax.Array | None = None,
) -> jax.Array:
  """mean_n H(p_n) - diversity_weight * H(mean_n p_n), p_n = softmax(-||z_n - e||^2 / t).

  Gradients reach z and the codebook. For L codebooks (DVQ), `jax.vmap` it over the slices,
  e.g. `jax.vmap(penalty, in_axes=(-2, 0))(z.reshape(*z.shape[:-1], L, D), codebooks)`.

  Args:
    z: `(..., D)` vectors (any float dtype; computed in float32).
    codebook: `(K, D)`.
    temperature: > 0, the soft assignment's temperature.
    diversity_weight: weight of the batch entropy.
    mask: optional bool `(...)`: masked vectors add nothing (means over the unmasked ones).

  Returns:
    float32 scalar, in nats.

  >>> import jax.numpy as jnp
  >>> codebook = jnp.array([[0.0], [10.0]])
  >>> round(float(codebook_entropy_penalty(jnp.array([[0.0], [10.0]]), codebook)), 4)
  -0.6931
  """
  _checks.check_codebook(codebook)
  _checks.check_min_rank(z, 1, "(..., D)")
  _checks.check_feature_size(z, codebook.shape[1], "codebook dim D")
  if not isinstance(temperature, (int, float)) or not temperature > 0:
    raise ValueError(f"temperature = {temperature!r}; set it to a number > 0")
  weights = position_weights(mask, z.shape[:-1])
  flat = z.reshape(-1, z.shape[-1]).astype(jnp.float32)
  e = codebook.astype(jnp.float32)
  num_rows, dim = flat.shape
  size = e.shape[0]
  rows = max(1, min(num_rows, _TILE_BYTES // (4 * size)))
  num_blocks = -(-num_rows // rows)
  pad = num_blocks * rows - num_rows
  w = jnp.ones((num_rows,), jnp.float32) if weights is None else weights
  blocks = (jnp.pad(flat, ((0, pad), (0, 0))).reshape(num_blocks, rows, dim),
            jnp.pad(w, (0, pad)).reshape(num_blocks, rows))  # padded rows: weight 0

  @jax.checkpoint  # recompute each block's (rows, K) probabilities in the backward pass
  def block_sums(args):
    x, wb = args
    distances = jnp.sum(x * x, -1, keepdims=True) - 2.0 * x @ e.T + jnp.sum(e * e, -1)
    log_p = jax.nn.log_softmax(-distances / temperature, axis=-1)
    p = jnp.exp(log_p)
    return jnp.sum(wb * -jnp.sum(p * log_p, -1)), jnp.sum(wb[:, None] * p, axis=0)

  def accumulate(total, block):
    entropy, probs = block_sums(block)
    return (total[0] + entropy, total[1] + probs), None

  (entropy, probs), _ = jax.lax.scan(
      accumulate, (jnp.zeros((), jnp.float32), jnp.zeros((size,), jnp.float32)), blocks)
  count = num_positions(weights, num_rows)
  mean_p = probs / count
  batch_entropy = -jnp.sum(mean_p * jnp.log(jnp.maximum(mean_p, 1e-30)))
  return entropy / count - diversity_weight * batch_entropy
