"""Nearest-codebook search: the one compute kernel shared by every quantizer.

Speed on XLA:CPU (measured in benchmarks/RESULTS.md) rests on four choices:

* Every op of the search -- the x.e matmul, the ||e||^2 add and both min-reductions -- is one
  that XLA:CPU fuses into a single YNNPACK kernel, which streams the (rows, K) distance tile
  through cache instead of writing it to memory. `jnp.argmin` (a variadic reduce) and
  compare/select are not such ops and would materialize the tile, so the index of the minimum
  is found with a second min-reduction over `iota + K * sign(score - min)` (exact: a code whose
  score equals the row minimum contributes its index, every other code contributes >= K).
* Rows are processed in blocks of about `_TILE_BYTES` of distances, so memory grows with
  N + K, never with N*K (N = number of vectors, K = codebook size). A large codebook is split
  into chunks with a running (min, index) merge, so a block keeps at least `_MIN_ROWS` rows and
  both cores share it. The merge recomputes each chunk's best score from the R chosen codes
  (an (R, D) gather): taking the row minimum out of the fused kernel as a second output would
  stop XLA:CPU from streaming the tile (measured 2x slower).
* Block b holds rows b, b + B, b + 2B, ... (B blocks): when the rows are sharded over devices
  (data parallelism, N split into contiguous shards), every block is spread over all shards, so
  XLA partitions the loop and each device searches only its own rows -- no gather.
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
# Fewest rows per block: beyond K = _TILE_BYTES / (4 * _MIN_ROWS) codes the codebook is chunked.
_MIN_ROWS = 256

# iota + K * sign(...) must be exact in float32: 2*K <= 2**24 (per chunk; the whole K is
# indexed in int32).
_MAX_CODEBOOK_SIZE = 1 << 23


def _plan(num_rows: int, codebook_size: int) -> tuple[int, int, int]:
  """`(rows per block, number of blocks, codes per chunk)` for an `(N, D)` x `(K, D)` search."""
  num_chunks = -(-codebook_size * _MIN_ROWS * 4 // _TILE_BYTES)
  chunk = -(-codebook_size // num_chunks)
  rows = max(1, _TILE_BYTES // (4 * chunk))
  if num_rows <= rows:
    return num_rows, 1, chunk
  fewest = -(-num_rows // rows)
  # Prefer a block count that divides N (no padding, which would reshard sharded rows) and
  # leaves every device shard a whole number of rows of each block.
  devices = jax.device_count()
  divisors = [b for b in range(fewest, 2 * fewest + 1) if num_rows % b == 0]
  for blocks in sorted(divisors, key=lambda b: (num_rows // b) % devices != 0):
    return num_rows // blocks, blocks, chunk
  return -(-num_rows // fewest), fewest, chunk


def _first_min_index(scores: jax.Array) -> jax.Array:
  """`(R, C)` scores -> `(R,)` int32 index of the first row minimum (garbage for NaN rows).

  Only the index may leave this computation: also returning the row minimum makes it a
  multi-output fusion, which XLA:CPU no longer streams through cache (measured 2x slower).
  Exact only if the compiler gives `scores` the same bits in both reductions. XLA:CPU does at
  its default optimization level; under `XLA_FLAGS=--xla_backend_optimization_level=0` it does
  not, and tests/test_quantizers.py's brute-force checks fail (wrong codes, still in range).
  benchmarks/device_check.sh compares this search with a plain argmin on an accelerator.
  """
  row_min = jnp.min(scores, axis=-1, keepdims=True)
  size = scores.shape[-1]
  index = jax.lax.broadcasted_iota(jnp.float32, scores.shape, 1)
  # sign(score - min) is 0 exactly where score == min (XLA:CPU flushes denormals, so two scores
  # closer than 2**-126 -- only possible when both are below ~2**-102 -- also count as tied).
  first = jnp.min(index + size * jnp.sign(scores - row_min), axis=-1)
  return first.astype(jnp.int32)


def _search_block(
    rows: jax.Array, minus_two_e: jax.Array, minus_two_e_t: jax.Array, e_sq: jax.Array,
    precision
) -> jax.Array:
  """`(R, D)` rows -> `(R,)` int32 index of the smallest ||e||^2 - 2 x.e (lowest on ties).

  The codebook comes in chunks of C: `minus_two_e` `(chunks, C, D)`, the same transposed
  `(chunks, D, C)` and `e_sq` `(chunks, C)`.
  """
  num_chunks, chunk, _ = minus_two_e.shape

  def chunk_best(c):
    """Index of the best code of chunk c and its score, recomputed from the R chosen codes."""
    scores = jnp.dot(rows, minus_two_e_t[c], precision=precision) + e_sq[c]
    code = jnp.clip(_first_min_index(scores), 0, chunk - 1)
    chosen = jnp.take(minus_two_e[c], code, axis=0, mode="clip")
    return code, jnp.sum(rows * chosen, axis=-1) + jnp.take(e_sq[c], code, mode="clip")

  code, best = chunk_best(0)
  if num_chunks > 1:
    def merge(c, carry):
      code, best = carry
      chunk_code, chunk_min = chunk_best(c)
      better = chunk_min < best  # strict: on a tie the earlier chunk (lower index) stays
      return jnp.where(better, chunk_code + c * chunk, code), jnp.where(better, chunk_min, best)
    code, best = jax.lax.fori_loop(1, num_chunks, merge, (code, best))
  # A row with a NaN or inf (or one whose best distance overflows, or with no finite code) has
  # no meaningful minimum: code 0, so that codes always index the codebook.
  return jnp.where(jnp.isfinite(best), code, 0)


def _prepare(codebook: jax.Array, chunk: int) -> tuple[jax.Array, jax.Array, jax.Array]:
  """`(K, D)` codebook -> `_search_block`'s chunked `minus_two_e`, `minus_two_e_t`, `e_sq`."""
  size, dim = codebook.shape
  e_sq = jnp.sum(codebook * codebook, axis=-1)
  # A codebook row with a NaN or inf (or whose norm overflows) scores +inf for every finite x:
  # never chosen, and it cannot turn other rows' scores into NaN.
  finite = jnp.isfinite(e_sq)
  e_sq = jnp.where(finite, e_sq, jnp.inf)
  minus_two_e = jnp.where(finite[:, None], -2.0 * codebook, 0.0)  # exact: a power of two
  num_chunks = -(-size // chunk)
  pad = num_chunks * chunk - size  # padding codes score +inf: never chosen
  e_sq = jnp.pad(e_sq, (0, pad), constant_values=jnp.inf).reshape(num_chunks, chunk)
  minus_two_e = jnp.pad(minus_two_e, ((0, pad), (0, 0))).reshape(num_chunks, chunk, dim)
  return minus_two_e, minus_two_e.transpose(0, 2, 1), e_sq


def _search(x: jax.Array, codebooks: jax.Array, precision) -> jax.Array:
  """`(N, G or 1, D)` float32 vectors, `(G, K, D)` float32 codebooks -> `(N, G)` int32 codes.

  Slice g of x (or its only slice, shared by every codebook) is searched in codebook g. The
  slices are read where they lie in x -- z's own `(N, L, D)` layout for DVQ -- so no transposed
  copy of x is made.
  """
  num_rows, x_groups, dim = x.shape
  groups, size, _ = codebooks.shape
  rows, num_blocks, chunk = _plan(num_rows, size)
  padded = jnp.pad(x, ((0, num_blocks * rows - num_rows), (0, 0), (0, 0)))
  # Block b = rows b, b + num_blocks, ...: the block axis is not the (possibly sharded) row axis.
  blocks = padded.reshape(rows, num_blocks, x_groups, dim)

  def one_codebook(g, codes):
    minus_two_e, minus_two_e_t, e_sq = _prepare(codebooks[g], chunk)
    search = functools.partial(_search_block, minus_two_e=minus_two_e,
                               minus_two_e_t=minus_two_e_t, e_sq=e_sq, precision=precision)
    x_g = jax.lax.dynamic_index_in_dim(blocks, g if x_groups > 1 else 0, axis=2, keepdims=False)

    def one_block(b, codes):
      block = jax.lax.dynamic_index_in_dim(x_g, b, axis=1, keepdims=False)
      return jax.lax.dynamic_update_slice(codes, search(block)[:, None, None], (0, b, g))

    return jax.lax.fori_loop(0, num_blocks, one_block, codes)

  codes = jax.lax.fori_loop(0, groups, one_codebook,
                            jnp.zeros((rows, num_blocks, groups), jnp.int32))
  return codes.reshape(-1, groups)[:num_rows]


def _searcher(precision):
  """`_search` with a batching rule that loops over the batch instead of batching the kernel:
  one 2-D search per codebook already keeps every core busy; XLA's batched form is slower."""

  @custom_vmap
  def search(x: jax.Array, codebooks: jax.Array) -> jax.Array:
    return _search(x, codebooks, precision)

  @search.def_vmap
  def _(axis_size: int, in_batched: list[bool], x: jax.Array, codebooks: jax.Array):
    x_batched, codebooks_batched = in_batched
    if not codebooks_batched:  # more rows for the same codebooks
      codes = search(x.reshape(-1, *x.shape[2:]), codebooks)
      return codes.reshape(axis_size, -1, codes.shape[-1]), True
    if not x_batched:  # one x, many codebook sets: do not copy x for each
      return jax.lax.map(lambda e: search(x, e), codebooks), True
    return jax.lax.map(lambda args: search(*args), (x, codebooks)), True

  return search


def search_slices(x: jax.Array, codebooks: jax.Array, *,
                  precision: jax.lax.Precision = jax.lax.Precision.HIGHEST) -> jax.Array:
  """`nearest_codes` of slice g of `x` `(N, G, D)` (or of `x` `(N, 1, D)` for every g) in
  codebook g of `codebooks` `(G, K, D)` -> `(N, G)` int32 codes. For the quantizers."""
  sg = jax.lax.stop_gradient
  return _searcher(precision)(sg(x).astype(jnp.float32), sg(codebooks).astype(jnp.float32))


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

  Non-finite input never yields an out-of-range code: a codebook row with a NaN or inf entry is
  never chosen (its distance counts as +inf), and a row of x with a NaN or inf entry -- or one
  whose every distance overflows float32, or with every codebook row non-finite -- gets code 0.
  Nothing here reports them; the quantizers carry them into their losses.

  Args:
    x: `(N, D)` vectors.
    codebook: `(K, D)` codebook vectors, K <= 2**23.
    precision: matmul precision of x.e; HIGHEST keeps float32 exact on TPU/GPU.

  Returns:
    `(N,)` int32 codes, each in [0, K).

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
  return search_slices(x[:, None], codebook[None], precision=precision)[:, 0]
