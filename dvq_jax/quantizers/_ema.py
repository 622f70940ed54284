"""EMA codebooks (van den Oord et al. 2017, App. A.1; Razavi et al. 2019): an `(init, update)` pair.

Each of the L codebooks keeps an exponential moving average of how many vectors chose each of
its K codes (`cluster_size`) and of their sum (`embed_sum`); the codebook is their ratio, with
Laplace smoothing of the counts so that an unused code never divides by zero. The sums are plain
reductions over the batch axis, so under a batch-sharded `jax.jit` they are over the global
batch: XLA inserts the all-reduce, no collective is written by hand.
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from dvq_jax.quantizers import _checks
from dvq_jax.quantizers._stats import position_weights


class EmaState(NamedTuple):
  """Moving averages behind L EMA codebooks.

  Attributes:
    cluster_size: `(L, K)` float32 EMA of the number of vectors assigned to each code.
    embed_sum: `(L, K, D)` float32 EMA of the sum of the vectors assigned to each code.
  """

  cluster_size: jax.Array
  embed_sum: jax.Array


class EmaCodebooks(NamedTuple):
  """The `(init, update)` pair returned by `ema_codebooks`."""

  init: Callable[[jax.Array], EmaState]
  update: Callable[..., tuple[jax.Array, EmaState]]


def check_slices(
    slices: jax.Array, codes: jax.Array | None, num_codebooks: int, dim: int
) -> None:
  """Checks slices `(..., L, D)` and codes `(..., L)` against L codebooks of D features."""
  if slices.ndim < 2 or slices.shape[-2:] != (num_codebooks, dim):
    raise ValueError(
        f"slices must be (..., L, D) = (..., {num_codebooks}, {dim}), got shape {slices.shape};"
        f" reshape z (..., L*D) with z.reshape(*z.shape[:-1], {num_codebooks}, {dim})"
    )
  if codes is not None and codes.shape != slices.shape[:-1]:
    raise ValueError(
        f"codes shape {codes.shape} must be slices shape {slices.shape} without its last axis;"
        " pass the codes the quantizer returned for these slices"
    )


def assignment_sums(slices: jax.Array, codes: jax.Array, codebook_size: int,
                    mask: jax.Array | None = None):
  """Per-code counts `(L, K)` and vector sums `(L, K, D)` of a batch, in float32.

  Args:
    slices: `(..., L, D)` vectors, slice l quantized by codebook l.
    codes: `(..., L)` int codes in [0, K).
    codebook_size: K.
    mask: optional bool `(...)`: masked positions count nowhere.

  Returns:
    (counts, sums): `(L, K)` and `(L, K, D)` float32.
  """
  num_codebooks, dim = slices.shape[-2:]
  flat = slices.reshape(-1, num_codebooks, dim).astype(jnp.float32)
  flat_codes = codes.reshape(-1, num_codebooks)
  depth = jnp.broadcast_to(jnp.arange(num_codebooks), flat_codes.shape)
  weights = position_weights(mask, slices.shape[:-2])
  ones = 1.0 if weights is None else jnp.broadcast_to(weights[:, None], flat_codes.shape)
  if weights is not None:
    flat = jnp.where(weights[:, None, None] > 0, flat, 0.0)
  counts = jnp.zeros((num_codebooks, codebook_size), jnp.float32).at[depth, flat_codes].add(ones)
  sums = jnp.zeros((num_codebooks, codebook_size, dim), jnp.float32).at[depth, flat_codes].add(
      flat
  )
  return counts, sums


def ema_codebooks(decay: float = 0.99, epsilon: float = 1e-5) -> EmaCodebooks:
  """EMA codebook learning as an optax-style pair of pure functions.

  `init(codebooks)` starts every code at one pseudo-vector equal to itself (`cluster_size = 1`,
  `embed_sum = codebooks`), so the first codebooks are the given ones and a code no vector ever
  chooses keeps its value. `update(slices, codes, state, mask=None)` returns
  `(codebooks, state)` (masked positions, bool `(...)`, count nowhere):

      cluster_size <- decay * cluster_size + (1 - decay) * counts
      embed_sum    <- decay * embed_sum    + (1 - decay) * sums
      n = sum_k cluster_size;  smoothed = (cluster_size + epsilon) / (n + K * epsilon) * n
      codebooks    =  embed_sum / smoothed

  where counts and sums are over every vector of the batch (over the global batch under a
  batch-sharded jit). Use the quantizer's commitment loss only (the codebook loss has no role:
  stop its gradient or drop it) and write the returned codebooks into the parameters.

  Args:
    decay: EMA decay in [0, 1).
    epsilon: Laplace smoothing of the cluster sizes, > 0.

  Returns:
    EmaCodebooks(init, update) with `init(codebooks (L, K, D)) -> EmaState` and
    `update(slices (..., L, D), codes (..., L), state) -> (codebooks (L, K, D), EmaState)`;
    the codebooks come back in the dtype of the slices.

  >>> import jax.numpy as jnp
  >>> ema = ema_codebooks(decay=0.5)
  >>> state = ema.init(jnp.zeros((1, 2, 1)))  # L=1, K=2, D=1
  >>> codebooks, state = ema.update(jnp.array([[[3.0]], [[3.0]]]), jnp.array([[1], [1]]), state)
  >>> state.cluster_size.tolist(), codebooks[0, :, 0].round(3).tolist()
  ([[0.5, 1.5]], [0.0, 2.0])
  """
  if not 0.0 <= decay < 1.0:
    raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
  if not epsilon > 0.0:
    raise ValueError(f"EMA epsilon must be > 0, got {epsilon}")

  def init(codebooks: jax.Array) -> EmaState:
    _checks.check_codebooks(codebooks)
    return EmaState(
        cluster_size=jnp.ones(codebooks.shape[:2], jnp.float32),
        embed_sum=codebooks.astype(jnp.float32),
    )

  def update(slices: jax.Array, codes: jax.Array, state: EmaState,
             mask: jax.Array | None = None):
    num_codebooks, codebook_size, dim = state.embed_sum.shape
    check_slices(slices, codes, num_codebooks, dim)
    counts, sums = assignment_sums(jax.lax.stop_gradient(slices), codes, codebook_size, mask)
    cluster_size = decay * state.cluster_size + (1.0 - decay) * counts
    embed_sum = decay * state.embed_sum + (1.0 - decay) * sums
    state = EmaState(cluster_size, embed_sum)
    return ema_codebooks_of(state, epsilon).astype(slices.dtype), state

  return EmaCodebooks(init, update)


def ema_codebooks_of(state: EmaState, epsilon: float = 1e-5) -> jax.Array:
  """The `(L, K, D)` float32 codebooks an EMA state stands for (Laplace-smoothed ratio)."""
  codebook_size = state.cluster_size.shape[-1]
  total = jnp.sum(state.cluster_size, axis=-1, keepdims=True)
  smoothed = (state.cluster_size + epsilon) / (total + codebook_size * epsilon) * total
  return state.embed_sum / smoothed[..., None]
