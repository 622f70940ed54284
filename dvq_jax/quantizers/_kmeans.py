"""k-means codebook initialisation from data: k-means++ seeding and Lloyd steps, per codebook.

Every function works on depthwise slices `(..., L, D)` and L codebooks `(L, K, D)`; the L
problems are independent and run under `jax.vmap`. The searches reuse `nearest_codes`.
"""

import jax
import jax.numpy as jnp

from dvq_jax.quantizers import _checks
from dvq_jax.quantizers._ema import assignment_sums
from dvq_jax.quantizers._ema import check_slices
from dvq_jax.quantizers._nearest import nearest_codes
from dvq_jax.quantizers._stats import position_weights


def _by_codebook(slices: jax.Array) -> jax.Array:
  """`(..., L, D)` -> `(L, N, D)` float32."""
  num_codebooks, dim = slices.shape[-2:]
  return slices.reshape(-1, num_codebooks, dim).transpose(1, 0, 2).astype(jnp.float32)


def _sq_dist_to(x: jax.Array, centre: jax.Array) -> jax.Array:
  return jnp.sum(jnp.square(x - centre), axis=-1)


def _seed_one(key: jax.Array, x: jax.Array, codebook_size: int, valid: jax.Array) -> jax.Array:
  """k-means++ (Arthur & Vassilvitskii 2007) on `(N, D)`: `(K, D)` centres drawn from the
  rows of x where `valid` `(N,)` is True."""
  first_key, rest_key = jax.random.split(key)
  first = x[jax.random.categorical(first_key, jnp.where(valid, 0.0, -jnp.inf))]
  centres = jnp.zeros((codebook_size, x.shape[1]), x.dtype).at[0].set(first)

  def body(k, carry):
    centres, min_sq = carry
    # D^2 sampling: a point is drawn with probability proportional to its squared distance to
    # the nearest centre so far (points already chosen have probability 0).
    logits = jnp.where(valid & (min_sq > 0), jnp.log(jnp.maximum(min_sq, 1e-30)), -jnp.inf)
    # If every point coincides with a centre (fewer distinct points than K), draw uniformly.
    logits = jnp.where(jnp.any(valid & (min_sq > 0)), logits, jnp.where(valid, 0.0, -jnp.inf))
    pick = x[jax.random.categorical(jax.random.fold_in(rest_key, k), logits)]
    return centres.at[k].set(pick), jnp.minimum(min_sq, _sq_dist_to(x, pick))

  centres, _ = jax.lax.fori_loop(1, codebook_size, body, (centres, _sq_dist_to(x, first)))
  return centres


def _lloyd_one(x: jax.Array, codebook: jax.Array, valid: jax.Array) -> jax.Array:
  codes = nearest_codes(x, codebook)
  counts, sums = assignment_sums(x[:, None, :], codes[:, None], codebook.shape[0], valid)
  counts, sums = counts[0], sums[0]
  means = sums / jnp.maximum(counts, 1.0)[:, None]
  return jnp.where(counts[:, None] > 0, means, codebook)  # empty clusters keep their centre


def _valid(mask: jax.Array | None, slices: jax.Array) -> jax.Array:
  """bool `(N,)`: the unmasked positions of slices `(..., L, D)`."""
  weights = position_weights(mask, slices.shape[:-2])
  num_rows = slices.size // (slices.shape[-1] * slices.shape[-2]) if slices.size else 0
  return jnp.ones((num_rows,), bool) if weights is None else weights > 0


def kmeans_step(slices: jax.Array, codebooks: jax.Array, *,
                mask: jax.Array | None = None) -> jax.Array:
  """One Lloyd iteration per codebook: every code moves to the mean of the slices it wins.

  A code that wins no slice keeps its value.

  Args:
    slices: `(..., L, D)` vectors, slice l belongs to codebook l.
    codebooks: `(L, K, D)`.
    mask: optional bool `(...)`: masked positions are left out.

  Returns:
    `(L, K, D)` float32 codebooks.

  >>> import jax.numpy as jnp
  >>> slices = jnp.array([[[0.0]], [[1.0]], [[9.0]]])  # N=3, L=1, D=1
  >>> kmeans_step(slices, jnp.array([[[0.0], [10.0]]]))[0, :, 0].tolist()
  [0.5, 9.0]
  """
  _checks.check_codebooks(codebooks)
  check_slices(slices, None, codebooks.shape[0], codebooks.shape[2])
  return jax.vmap(_lloyd_one, in_axes=(0, 0, None))(
      _by_codebook(slices), codebooks.astype(jnp.float32), _valid(mask, slices))


def kmeans_init(
    key: jax.Array, slices: jax.Array, codebook_size: int, *, num_iters: int = 10,
    mask: jax.Array | None = None,
) -> jax.Array:
  """L codebooks from data: k-means++ seeding, then `num_iters` Lloyd iterations, per codebook.

  Deterministic for a key (codebook l uses `jax.random.fold_in(key, l)`).

  Args:
    key: PRNG key.
    slices: `(..., L, D)` vectors (e.g. `z.reshape(*z.shape[:-1], L, D)` of the first batches),
      at least K of them per codebook.
    codebook_size: K.
    num_iters: Lloyd iterations after seeding, >= 0.
    mask: optional bool `(...)`: masked positions are never drawn and left out of the means
      (at least K unmasked vectors are needed).

  Returns:
    `(L, K, D)` codebooks in the dtype of the slices.

  >>> import jax, jax.numpy as jnp
  >>> slices = jnp.array([[[0.0]], [[0.1]], [[5.0]], [[5.2]]])  # N=4, L=1, D=1
  >>> sorted(round(c, 2) for c in kmeans_init(jax.random.key(0), slices, 2)[0, :, 0].tolist())
  [0.05, 5.1]
  """
  if slices.ndim < 2:
    raise ValueError(f"slices must be (..., L, D), got shape {slices.shape}")
  num_vectors = slices.size // (slices.shape[-1] * slices.shape[-2]) if slices.size else 0
  if codebook_size < 1 or num_vectors < codebook_size:
    raise ValueError(
        f"kmeans_init needs 1 <= K <= number of vectors per codebook, got K = {codebook_size} and"
        f" slices shape {slices.shape} ({num_vectors} vectors); pass more batches or a smaller K"
    )
  if num_iters < 0:
    raise ValueError(f"num_iters must be >= 0, got {num_iters}")
  x = _by_codebook(slices)
  valid = _valid(mask, slices)
  keys = jax.vmap(lambda l: jax.random.fold_in(key, l))(jnp.arange(x.shape[0]))
  codebooks = jax.vmap(_seed_one, in_axes=(0, 0, None, None))(keys, x, codebook_size, valid)
  codebooks = jax.lax.fori_loop(
      0, num_iters, lambda _, c: jax.vmap(_lloyd_one, in_axes=(0, 0, None))(x, c, valid),
      codebooks
  )
  return codebooks.astype(slices.dtype)
