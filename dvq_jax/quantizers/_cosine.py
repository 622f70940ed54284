"""Cosine-similarity codes: l2-normalised vectors searched against l2-normalised codebooks."""

import jax
import jax.numpy as jnp

from dvq_jax.quantizers._nearest import nearest_codes


def l2_normalize(x: jax.Array, *, axis: int = -1, epsilon: float = 1e-12) -> jax.Array:
  """x / max(||x||, epsilon) along `axis`, computed in float32, returned in x's dtype.

  Cosine-similarity codes quantize l2-normalised vectors with l2-normalised codebooks: for unit
  vectors ||x - e||^2 = 2 - 2 cos(x, e), so the nearest code is the most similar one.
  """
  x32 = x.astype(jnp.float32)
  norm = jnp.linalg.norm(x32, axis=axis, keepdims=True)
  return (x32 / jnp.maximum(norm, epsilon)).astype(x.dtype)


def cosine_codes(x: jax.Array, codebook: jax.Array) -> jax.Array:
  """`(N,)` int32 index of the most cosine-similar row of codebook `(K, D)` for x `(N, D)`.

  >>> import jax.numpy as jnp
  >>> cosine_codes(jnp.array([[3.0, 0.1]]), jnp.array([[0.0, 1.0], [10.0, 0.0]])).tolist()
  [1]
  """
  return nearest_codes(l2_normalize(x), l2_normalize(codebook))
