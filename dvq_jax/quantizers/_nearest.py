"""Nearest-codebook search: the one compute kernel shared by every quantizer.

Speed on XLA:CPU (measured in benchmarks/RESULTS.md) rests on three choices:

* Every op of the search -- the x.e matmul, the ||e||^2 add and both min-reductions -- is one
  that XLA:CPU fuses into a single YNNPACK kernel, which streams the (rows, K) distance tile
  through cache instead of writing it to memory. `jnp.argmin` (a variadic reduce) and
  compare/select are not such ops and would materialize the tile, so the index of the minimum
  is found with a second min-reduction over `iota + K * sign(score - min)` (exact: a code whose
  score equals the row minimum contributes its index, every other code contributes >= K).
* Rows are processed in blocks of about `_TILE_BYTES` of distances, so memory grows with
  N + K, never with N*K (N = number of vectors, K = codebook size).
* Under `jax.vmap` (one codebook per depth slice, L of them) the codebooks are searched one
  after another: one 2-D search already keeps every core busy, while XLA's batched 3-D form
  of the same fusion runs about 4x slower.
"""

import functools

import jax
import jax.numpy as jnp
from jax.custom_batching import custom_vmap

# Rows per block are chosen so that one block's (rows, K) float32 distances take about this many
# bytes. On the 2-core benchmark VM, 1-16 MiB blocks run within 5% of each other; much larger
# blocks sometimes fall off a cliff (up to 4x slower), much smaller ones pay loop overhead.
_TILE_BYTES = 4 << 20

# iota + K * sign(...) must be exact in float32: 2*K <= 2**24.
_MAX_CODEBOOK_SIZE = 1 << 23


def _block_rows(num_rows: int, codebook_size: int) -> int:
  return max(1, min(num_rows, _TILE_BYTES // (4 * codebook_size)))


def _search_block(
    rows: jax.Array, minus_two_e_t: jax.Array, e_sq: jax.Array, precision
) -> jax.Array:
  """`(R, D)` rows -> `(R,)` int32 index of the smallest ||e||^2 - 2 x.e (lowest on ties)."""
  scores = jnp.dot(rows, minus_two_e_t, precision=precision) + e_sq
  row_min = jnp.min(scores, axis=-1, keepdims=True)
  codebook_size = scores.shape[-1]
  index = jax.lax.broadcasted_iota(jnp.float32, scores.shape, 1)
  # sign(score - min) is 0 exactly where score == min (XLA:CPU flushes denormals, so two scores
  # closer than 2**-126 -- only possible when both are below ~2**-102 -- also count as tied).
  first = jnp.min(index + codebook_size * jnp.sign(scores - row_min), axis=-1)
  return first.astype(jnp.int32)


def _search(x: jax.Array, codebook: jax.Array, precision) -> jax.Array:
  """`(N, D)` float32 vectors, `(K, D)` float32 codebook -> `(N,)` int32 codes."""
  num_rows, dim = x.shape
  e_sq = jnp.sum(codebook * codebook, axis=-1)
  minus_two_e_t = (-2.0 * codebook).T  # exact: scaling by a power of two
  search = functools.partial(
      _search_block, minus_two_e_t=minus_two_e_t, e_sq=e_sq, precision=precision
  )
  rows = _block_rows(num_rows, codebook.shape[0])
  if rows == num_rows:
    return search(x)
  num_blocks = -(-num_rows // rows)
  padded = jnp.pad(x, ((0, num_blocks * rows - num_rows), (0, 0)))
  codes = jax.lax.map(search, padded.reshape(num_blocks, rows, dim))
  return codes.reshape(-1)[:num_rows]


def _searcher(precision):
  """`_search` with a batching rule that loops over the batch instead of batching the kernel."""

  @custom_vmap
  def search(x: jax.Array, codebook: jax.Array) -> jax.Array:
    return _search(x, codebook, precision)

  @search.def_vmap
  def _(axis_size: int, in_batched: list[bool], x: jax.Array, codebook: jax.Array):
    x_batched, codebook_batched = in_batched
    if not x_batched:  # one x, many codebooks (multi-codebook VQ): do not copy x L times
      return jax.lax.map(lambda e: search(x, e), codebook), True
    if not codebook_batched:
      codebook = jnp.broadcast_to(codebook, (axis_size, *codebook.shape))
    return jax.lax.map(lambda args: search(*args), (x, codebook)), True

  return search


def nearest_codes(
    x: jax.Array,
    codebook: jax.Array,
    *,
    precision: jax.lax.Precision = jax.lax.Precision.HIGHEST,
) -> jax.Array:
  """Index of the nearest codebook vector for every row of `x` (squared Euclidean).

  Distances ||x||^2 - 2 x.e + ||e||^2 are formed in float32 whatever the input dtype;
  ||x||^2 is the same for every code of a row, so it is left out of the argmin.
  Ties go to the lowest index. The codes are integers, so no gradient flows through them.

  Args:
    x: `(N, D)` vectors.
    codebook: `(K, D)` codebook vectors, K <= 2**23.
    precision: matmul precision of x.e; HIGHEST keeps float32 exact on TPU/GPU.

  Returns:
    `(N,)` int32 codes.

  >>> import jax.numpy as jnp
  >>> nearest_codes(jnp.array([[0.9, 0.8], [0.5, 0.5]]), jnp.array([[0., 0.], [1., 1.]])).tolist()
  [1, 0]
  """
  if x.ndim != 2 or codebook.ndim != 2 or x.shape[1] != codebook.shape[1]:
    raise ValueError(
        f"nearest_codes needs x (N, D) and codebook (K, D) with the same D, got shapes"
        f" {x.shape} and {codebook.shape}"
    )
  if codebook.shape[0] > _MAX_CODEBOOK_SIZE:
    raise ValueError(
        f"codebook size K = {codebook.shape[0]} exceeds {_MAX_CODEBOOK_SIZE}, the largest"
        " nearest_codes indexes exactly; use a smaller codebook"
    )
  sg = jax.lax.stop_gradient
  x32 = sg(x).astype(jnp.float32)
  e32 = sg(codebook).astype(jnp.float32)
  return _searcher(precision)(x32, e32)
