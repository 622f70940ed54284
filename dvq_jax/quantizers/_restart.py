"""Dead-code restart: codes that (almost) no vector chooses are moved onto batch vectors."""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from dvq_jax.quantizers import _checks
from dvq_jax.quantizers._ema import EmaState
from dvq_jax.quantizers._ema import check_slices
from dvq_jax.quantizers._stats import position_weights


class RestartOutput(NamedTuple):
  """What `restart_dead_codes` returns.

  Attributes:
    codebooks: `(L, K, D)` codebooks, dead codes replaced, in the input dtype.
    num_restarted: int32 scalar, the number of codes replaced (over all L codebooks).
    dead: `(L, K)` bool, which codes were replaced.
    ema_state: the EMA state with the replaced codes reset (cluster size = max(threshold, 1)
      pseudo-vectors equal to the new code), or None when none was given.
  """

  codebooks: jax.Array
  num_restarted: jax.Array
  dead: jax.Array
  ema_state: EmaState | None


def restart_dead_codes(
    key: jax.Array,
    codebooks: jax.Array,
    usage: jax.Array,
    slices: jax.Array,
    *,
    threshold: float,
    ema_state: EmaState | None = None,
    mask: jax.Array | None = None,
) -> RestartOutput:
  """Replaces every code whose usage is below `threshold` by a random batch vector of its slice.

  Codebook l draws its replacements from the slices of codebook l, without replacement when the
  batch has at least K vectors (so two restarted codes never land on the same vector). Usage is
  any per-code statistic: the EMA `cluster_size`, or the counts of the last batches.

  Args:
    key: PRNG key; the result is deterministic for a key (codebook l uses `fold_in(key, l)`).
    codebooks: `(L, K, D)`.
    usage: `(L, K)` usage of each code.
    slices: `(..., L, D)` batch vectors, slice l belongs to codebook l.
    threshold: codes with `usage < threshold` are restarted (may be traced under jit).
    ema_state: optional EMA state to reset for the restarted codes.
    mask: optional bool `(...)` over the batch positions: masked vectors are never drawn
      (without replacement while at least K are unmasked).

  Returns:
    RestartOutput(codebooks, num_restarted, dead, ema_state).

  >>> import jax, jax.numpy as jnp
  >>> out = restart_dead_codes(jax.random.key(0), jnp.zeros((1, 2, 1)), jnp.array([[5.0, 0.0]]),
  ...                          jnp.full((3, 1, 1), 7.0), threshold=1.0)
  >>> out.codebooks[0, :, 0].tolist(), int(out.num_restarted)
  ([0.0, 7.0], 1)
  """
  _checks.check_codebooks(codebooks)
  num_codebooks, codebook_size, dim = codebooks.shape
  check_slices(slices, None, num_codebooks, dim)
  if usage.shape != (num_codebooks, codebook_size):
    raise ValueError(
        f"usage shape {usage.shape} must be (L, K) = {(num_codebooks, codebook_size)} of"
        f" codebooks shape {codebooks.shape}; pass the EMA cluster_size or per-code counts"
    )
  x = slices.reshape(-1, num_codebooks, dim).transpose(1, 0, 2)
  num_vectors = x.shape[1]
  if num_vectors < 1:
    raise ValueError(f"restart_dead_codes needs at least one batch vector, got {slices.shape}")

  weights = position_weights(mask, slices.shape[:-2])

  def draw(l):
    key_l = jax.random.fold_in(key, l)
    if weights is None:
      return jax.random.choice(key_l, num_vectors, (codebook_size,),
                               replace=num_vectors < codebook_size)
    # Gumbel top-k over the unmasked vectors draws without replacement; picks beyond their
    # number (masked, score -inf) are redrawn with replacement among the unmasked.
    scores = jax.random.gumbel(key_l, (num_vectors,)) + jnp.log(weights)
    best, picks = jax.lax.top_k(scores, min(codebook_size, num_vectors))
    short = codebook_size - picks.shape[0]  # K > N: the rest are drawn with replacement
    best = jnp.pad(best, (0, short), constant_values=-jnp.inf)
    picks = jnp.pad(picks, (0, short))
    again = jax.random.categorical(jax.random.fold_in(key_l, 1), jnp.log(weights),
                                   shape=(codebook_size,))
    return jnp.where(jnp.isfinite(best), picks, again)

  picks = jax.vmap(draw)(jnp.arange(num_codebooks))
  candidates = jnp.take_along_axis(x, picks[..., None], axis=1).astype(codebooks.dtype)
  dead = usage < threshold
  new_codebooks = jnp.where(dead[..., None], jax.lax.stop_gradient(candidates), codebooks)
  new_state = None
  if ema_state is not None:
    reset = jnp.maximum(jnp.asarray(threshold, jnp.float32), 1.0)  # not dead again next step
    new_state = EmaState(
        cluster_size=jnp.where(dead, reset, ema_state.cluster_size),
        embed_sum=jnp.where(
            dead[..., None], reset * candidates.astype(jnp.float32), ema_state.embed_sum
        ),
    )
  return RestartOutput(new_codebooks, jnp.sum(dead, dtype=jnp.int32), dead, new_state)
