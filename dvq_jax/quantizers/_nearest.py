"""Nearest-codebook search: the one compute kernel shared by every quantizer.

The (rows, K) distance tile is built one block of rows at a time, so memory grows with
N + K, never with N*K (N = number of vectors, K = codebook size).
"""

import jax
import jax.numpy as jnp

# A block of rows is sized so its (rows, K) float32 tile stays near this many bytes.
_TILE_BYTES = 1 << 20


def _block_rows(num_rows: int, codebook_size: int) -> int:
  return max(1, min(num_rows, _TILE_BYTES // (4 * codebook_size)))


def nearest_codes(
    x: jax.Array,
    codebook: jax.Array,
    *,
    precision: jax.lax.Precision = jax.lax.Precision.HIGHEST,
) -> jax.Array:
  """Index of the nearest codebook vector for every row of `x` (squared Euclidean).

  Distances ||x||^2 - 2 x.e + ||e||^2 are formed in float32 whatever the input dtype;
  ||x||^2 is the same for every code of a row, so it is left out of the argmin.
  Ties go to the lowest index.

  Args:
    x: `(N, D)` vectors.
    codebook: `(K, D)` codebook vectors.
    precision: matmul precision of x.e; HIGHEST keeps float32 exact on TPU/GPU.

  Returns:
    `(N,)` int32 codes.
  """
  num_rows, dim = x.shape
  x32 = x.astype(jnp.float32)
  e32 = codebook.astype(jnp.float32)
  e_sq = jnp.sum(e32 * e32, axis=-1)
  minus_two_e = -2.0 * e32

  def block(rows: jax.Array) -> jax.Array:
    scores = jnp.dot(rows, minus_two_e.T, precision=precision) + e_sq
    return jnp.argmin(scores, axis=-1).astype(jnp.int32)

  rows = _block_rows(num_rows, codebook.shape[0])
  if rows == num_rows:
    return block(x32)
  num_blocks = -(-num_rows // rows)
  padded = jnp.pad(x32, ((0, num_blocks * rows - num_rows), (0, 0)))
  codes = jax.lax.map(block, padded.reshape(num_blocks, rows, dim))
  return codes.reshape(-1)[:num_rows]
