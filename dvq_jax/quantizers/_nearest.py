"""Nearest-codebook search: the one compute kernel shared by every quantizer.

The code of a vector is the index of the smallest float32 score ||e||^2 - 2 x.e (ties to the
lowest index), and that holds by construction, whatever XLA fuses or however it rounds: every
score is computed once into a tile, and the index is read off the same values the minimum was
taken over. (Had a second reduction recomputed the scores inside its own fusion, a different
rounding -- an FMA here and not there, as XLA:CPU does at `--xla_backend_optimization_level=0`
-- would make it miss the minimum.)

The search is batched over the G codebooks and tiled: a block of rows meets a chunk of the
codebook at a time, as one `(G, rows, chunk)` tile of scores, and a running (min, index) merge
carries the best code across chunks. Memory thus grows with N + K, never with N*K. Block b holds
rows b, b + B, b + 2B, ... (B blocks): when the rows are sharded over devices (data
parallelism), every block is spread over all shards, so XLA partitions the loop and each device
searches only its own rows -- no gather.

Two forms reduce a tile; `search_form` picks one per backend:

* `"argmin"` (GPU, TPU): one variadic reduction of (score, index) pairs, a single pass over the
  tile (XLA:TPU fuses it with the matmul); 64 MiB tiles.
* `"two_pass"` (CPU): the row minimum, then the lowest index whose score equals it, both plain
  min-reductions over the tile, which is materialized once (an optimization barrier keeps XLA
  from fusing the score computation into each reduction). XLA:CPU vectorizes min-reductions
  but runs a variadic reduction as scalar code, several times slower; 4 MiB tiles stay in the
  last-level cache.

The environment variable `DVQ_NEAREST_SEARCH` (`argmin` or `two_pass`) overrides the choice, for
benchmarks; it is read when a search is traced.
"""

import os
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.custom_batching import custom_vmap

from dvq_jax import backends

SEARCH_FORM_ENV = "DVQ_NEAREST_SEARCH"


def _two_pass(scores: jax.Array) -> tuple[jax.Array, jax.Array]:
  """`(A, B, C)` scores -> `(A, B)` minimum over C and `(A, B)` int32 index of its first
  occurrence (C where the minimum is NaN)."""
  scores = jax.lax.optimization_barrier(scores)  # one set of bits for both reductions
  best = jnp.min(scores, axis=-1)
  index = jax.lax.broadcasted_iota(jnp.int32, scores.shape, 2)
  first = jnp.min(jnp.where(scores == best[..., None], index, scores.shape[-1]), axis=-1)
  return best, first


def _argmin(scores: jax.Array) -> tuple[jax.Array, jax.Array]:
  """`(A, B, C)` scores -> `(A, B)` minimum over C and `(A, B)` int32 index of its first
  occurrence, in one variadic reduction. A NaN wins, so a row with one has a NaN minimum, as in
  `jnp.min`."""

  def first_min(a, b):
    (score_a, index_a), (score_b, index_b) = a, b
    take_a = ((score_a < score_b) | ((score_a == score_b) & (index_a < index_b))
              | jnp.isnan(score_a))
    return jnp.where(take_a, score_a, score_b), jnp.where(take_a, index_a, index_b)

  index = jax.lax.broadcasted_iota(jnp.int32, scores.shape, 2)
  init = (jnp.array(jnp.inf, scores.dtype), jnp.array(scores.shape[-1], jnp.int32))
  return jax.lax.reduce((scores, index), init, first_min, (2,))


class _Form(NamedTuple):
  """How one form reduces a tile and how large its tiles are."""

  reduce: Callable[[jax.Array], tuple[jax.Array, jax.Array]]
  # One block's (G, rows, chunk) float32 scores take about this many bytes.
  tile_bytes: int
  # Fewest rows per block: beyond K = tile_bytes / (4 * G * min_rows) the codebook is chunked.
  min_rows: int


# CPU: on the 2-core benchmark VM, 1-16 MiB tiles run within 5% of each other; much larger ones
# sometimes fall off a cliff (up to 4x slower), much smaller ones pay loop overhead. GPU/TPU:
# large tiles keep the loop short; 64 MiB is small next to their memory.
_FORMS = {
    "argmin": _Form(_argmin, tile_bytes=64 << 20, min_rows=1024),
    "two_pass": _Form(_two_pass, tile_bytes=4 << 20, min_rows=256),
}
SEARCH_FORMS = tuple(sorted(_FORMS))


def search_form() -> str:
  """The form a nearest-code search traced now uses (the module docstring describes both).

  Returns:
    `$DVQ_NEAREST_SEARCH` if set (`"argmin"` or `"two_pass"`; anything else raises a
    ValueError), else `"two_pass"` on CPU and `"argmin"` on GPU and TPU.
  """
  form = os.environ.get(SEARCH_FORM_ENV, "")
  if not form:
    return "two_pass" if backends.platform() == "cpu" else "argmin"
  if form not in _FORMS:
    raise ValueError(f"{SEARCH_FORM_ENV}={form!r} is not a search form: set it to one of"
                     f" {list(SEARCH_FORMS)}, or unset it for the backend's default")
  return form


def _plan(num_rows: int, groups: int, codebook_size: int, form: _Form) -> tuple[int, int, int]:
  """`(rows per block, number of blocks, codes per chunk)` for an `(N, D)` x `(G, K, D)` search."""
  num_chunks = -(-groups * codebook_size * form.min_rows * 4 // form.tile_bytes)
  chunk = -(-codebook_size // num_chunks)
  rows = max(1, form.tile_bytes // (4 * groups * chunk))
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


def _prepare(codebooks: jax.Array, chunk: int) -> tuple[jax.Array, jax.Array]:
  """`(G, K, D)` codebooks -> `-2 e` `(G, chunks, C, D)` and `||e||^2` `(G, chunks, C)`."""
  groups, size, dim = codebooks.shape
  e_sq = jnp.sum(codebooks * codebooks, axis=-1)
  # A codebook row with a NaN or inf (or whose norm overflows) scores +inf for every finite x:
  # never chosen, and it cannot turn other rows' scores into NaN.
  finite = jnp.isfinite(e_sq)
  e_sq = jnp.where(finite, e_sq, jnp.inf)
  minus_two_e = jnp.where(finite[..., None], -2.0 * codebooks, 0.0)  # exact: a power of two
  num_chunks = -(-size // chunk)
  pad = num_chunks * chunk - size  # padding codes score +inf: never chosen
  e_sq = jnp.pad(e_sq, ((0, 0), (0, pad)), constant_values=jnp.inf)
  minus_two_e = jnp.pad(minus_two_e, ((0, 0), (0, pad), (0, 0)))
  return (minus_two_e.reshape(groups, num_chunks, chunk, dim),
          e_sq.reshape(groups, num_chunks, chunk))


def _search_block(rows: jax.Array, minus_two_e: jax.Array, e_sq: jax.Array, form: _Form,
                  precision) -> jax.Array:
  """`(R, G or 1, D)` rows -> `(R, G)` int32 index of the smallest ||e||^2 - 2 x.e (lowest on
  ties), with `_prepare`'s chunked codebooks."""
  num_chunks, chunk = e_sq.shape[1:]
  # The tile's axes are the dot's own output order -- (R, G, C) for rows shared by every
  # codebook, (G, R, C) when slice g meets codebook g -- so no transposed copy of it is made
  # (on CPU such a copy took most of a single-codebook search's time).
  shared = rows.shape[1] == 1
  spec, operand = ("rd,gcd->rgc", rows[:, 0]) if shared else ("rgd,gcd->grc", rows)

  def chunk_best(c):
    scores = jnp.einsum(spec, operand, minus_two_e[:, c], precision=precision)
    return form.reduce(scores + (e_sq[None, :, c] if shared else e_sq[:, c, None]))

  best, code = chunk_best(0)
  if num_chunks > 1:
    def merge(c, carry):
      best, code = carry
      chunk_min, chunk_code = chunk_best(c)
      better = chunk_min < best  # strict: on a tie the earlier chunk (lower index) stays
      return jnp.where(better, chunk_min, best), jnp.where(better, chunk_code + c * chunk, code)
    best, code = jax.lax.fori_loop(1, num_chunks, merge, (best, code))
  # A row with a NaN or inf (or one whose best distance overflows, or with no finite code) has
  # no meaningful minimum: code 0, so that codes always index the codebook.
  code = jnp.where(jnp.isfinite(best), code, 0)
  return code if shared else code.T


def _search(x: jax.Array, codebooks: jax.Array, precision, form_name: str) -> jax.Array:
  """`(N, G or 1, D)` float32 vectors, `(G, K, D)` float32 codebooks -> `(N, G)` int32 codes.

  Slice g of x (or its only slice, shared by every codebook) is searched in codebook g. The
  slices are read where they lie in x -- z's own `(N, L, D)` layout for DVQ -- so no transposed
  copy of x is made.
  """
  form = _FORMS[form_name]
  num_rows, x_groups, dim = x.shape
  groups, size, _ = codebooks.shape
  rows, num_blocks, chunk = _plan(num_rows, groups, size, form)
  minus_two_e, e_sq = _prepare(codebooks, chunk)
  padded = jnp.pad(x, ((0, num_blocks * rows - num_rows), (0, 0), (0, 0)))
  # Block b = rows b, b + num_blocks, ...: the block axis is not the (possibly sharded) row axis.
  blocks = padded.reshape(rows, num_blocks, x_groups, dim)

  def one_block(b, codes):
    block = jax.lax.dynamic_index_in_dim(blocks, b, axis=1, keepdims=False)
    found = _search_block(block, minus_two_e, e_sq, form, precision)
    return jax.lax.dynamic_update_slice(codes, found[:, None], (0, b, 0))

  codes = jax.lax.fori_loop(0, num_blocks, one_block,
                            jnp.zeros((rows, num_blocks, groups), jnp.int32))
  return codes.reshape(-1, groups)[:num_rows]


def _searcher(precision, form: str):
  """`_search` with a batching rule that folds a batch of codebook sets into more codebooks (or
  a batch of vectors into more rows) of one batched search where the layout allows."""

  @custom_vmap
  def search(x: jax.Array, codebooks: jax.Array) -> jax.Array:
    return _search(x, codebooks, precision, form)

  @search.def_vmap
  def _(axis_size: int, in_batched: list[bool], x: jax.Array, codebooks: jax.Array):
    x_batched, codebooks_batched = in_batched
    if not codebooks_batched:  # more rows for the same codebooks
      codes = search(x.reshape(-1, *x.shape[2:]), codebooks)
      return codes.reshape(axis_size, -1, codes.shape[-1]), True
    groups = codebooks.shape[1]
    more_codebooks = codebooks.reshape(-1, *codebooks.shape[2:])  # (batch * G, K, D)
    if not x_batched and x.shape[1] == 1:  # one slice for every codebook of every set
      codes = search(x, more_codebooks)
    elif x_batched and x.shape[2] == groups:  # slice g of set b for codebook g of set b
      codes = search(jnp.moveaxis(x, 0, 1).reshape(x.shape[1], -1, x.shape[3]), more_codebooks)
    elif x_batched:
      return jax.lax.map(lambda args: search(*args), (x, codebooks)), True
    else:
      return jax.lax.map(lambda e: search(x, e), codebooks), True
    return codes.reshape(-1, axis_size, groups).transpose(1, 0, 2), True

  return search


def search_slices(x: jax.Array, codebooks: jax.Array, *,
                  precision: jax.lax.Precision = jax.lax.Precision.HIGHEST,
                  form: str | None = None) -> jax.Array:
  """`nearest_codes` of slice g of `x` `(N, G, D)` (or of `x` `(N, 1, D)` for every g) in
  codebook g of `codebooks` `(G, K, D)` -> `(N, G)` int32 codes. For the quantizers."""
  sg = jax.lax.stop_gradient
  form = form or search_form()
  if form not in _FORMS:
    raise ValueError(f"form={form!r} is not a search form: use one of {list(SEARCH_FORMS)} or None"
                     " for the backend's default")
  return _searcher(precision, form)(sg(x).astype(jnp.float32), sg(codebooks).astype(jnp.float32))


def nearest_codes(
    x: jax.Array,
    codebook: jax.Array,
    *,
    precision: jax.lax.Precision = jax.lax.Precision.HIGHEST,
    form: str | None = None,
) -> jax.Array:
  """Index of the nearest codebook vector for every row of `x` (squared Euclidean).

  Distances ||x||^2 - 2 x.e + ||e||^2 are formed in float32 whatever the input dtype;
  ||x||^2 is the same for every code of a row, so it is left out of the argmin. The code is
  exactly the index of the smallest float32 score (ties go to the lowest index) on every backend
  and under any XLA flags. The codes are integers, so no gradient flows through them.

  Non-finite input never yields an out-of-range code: a codebook row with a NaN or inf entry is
  never chosen (its distance counts as +inf), and a row of x with a NaN or inf entry -- or one
  whose every distance overflows float32, or with every codebook row non-finite -- gets code 0.
  Nothing here reports them; the quantizers carry them into their losses.

  Args:
    x: `(N, D)` vectors.
    codebook: `(K, D)` codebook vectors.
    precision: matmul precision of x.e; HIGHEST keeps float32 exact on TPU/GPU.
    form: `"argmin"` or `"two_pass"` (the module docstring says how they differ), or None for
      `search_form()`: `$DVQ_NEAREST_SEARCH`, else the backend's default. Both give the same
      codes.

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
  return search_slices(x[:, None], codebook[None], precision=precision, form=form)[:, 0]
