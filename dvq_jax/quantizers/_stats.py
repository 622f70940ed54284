"""Position masks and the code statistics every quantizer reports (perplexity, usage).

A mask is one bool per latent position (z's shape without its feature axis): masked positions
(False) add nothing to the losses or the statistics, and their codes are 0. Inside the
quantizers it becomes float32 weights `(N,)` over the flattened positions (None = all ones),
so every loss is a weighted mean and every histogram a weighted count.
"""

import jax
import jax.numpy as jnp
from jax.scipy.special import xlogy


def position_weights(mask: jax.Array | None, batch_shape: tuple[int, ...]) -> jax.Array | None:
  """bool `mask` of shape `batch_shape` -> float32 weights `(N,)` (N = prod(batch_shape)), or None."""
  if mask is None:
    return None
  if tuple(mask.shape) != tuple(batch_shape):
    raise ValueError(
        f"mask shape {tuple(mask.shape)} must be z's shape without its feature axis,"
        f" {tuple(batch_shape)}; pass one bool per position"
    )
  return jnp.asarray(mask).astype(bool).reshape(-1).astype(jnp.float32)


def num_positions(weights: jax.Array | None, count: int) -> jax.Array | int:
  """The positions a loss is a mean over: `count`, or the unmasked ones (at least 1)."""
  return count if weights is None else jnp.maximum(jnp.sum(weights), 1.0)


def weighted_mean(values: jax.Array, weights: jax.Array | None) -> jax.Array:
  """Mean of `(N,)` float32 values over the unmasked positions."""
  if weights is None:
    return jnp.mean(values)
  return jnp.sum(values * weights) / num_positions(weights, values.shape[0])


def zero_masked(codes: jax.Array, weights: jax.Array | None) -> jax.Array:
  """Codes `(N, ...)` with every masked position's set to 0."""
  if weights is None:
    return codes
  return jnp.where(weights.reshape(-1, *([1] * (codes.ndim - 1))) > 0, codes, 0)


def code_statistics(codes: jax.Array, size: int, weights: jax.Array | None = None
                    ) -> tuple[jax.Array, jax.Array]:
  """Perplexity and usage of each column of codes `(N, G)` in [0, size), over the unmasked rows.

  Args:
    codes: `(N, G)` int codes, column g of codebook g.
    size: the codes a column can take.
    weights: None, or 0/1 weights `(N,)` (per row) or `(N, G)` (per entry).

  Returns:
    `(perplexity (G,), usage (G,))`: exp(entropy) of column g's code histogram, and the fraction
    of the `size` codes it uses at least once.
  """
  rows, groups = codes.shape
  flat = (codes + size * jnp.arange(groups, dtype=codes.dtype)).reshape(-1)
  if weights is None:
    counts = jnp.zeros(groups * size, jnp.float32).at[flat].add(1.0).reshape(groups, size)
    probs = counts / max(rows, 1)
  else:
    w = jnp.broadcast_to(weights.reshape(rows, -1), codes.shape)
    counts = jnp.zeros(groups * size, jnp.float32).at[flat].add(w.reshape(-1))
    counts = counts.reshape(groups, size)
    probs = counts / jnp.maximum(jnp.sum(w, axis=0), 1.0)[:, None]
  return jnp.exp(-jnp.sum(xlogy(probs, probs), axis=-1)), jnp.mean(counts > 0, axis=-1)
