"""Residual VQ (RVQ, Zeghidour et al. 2021 / Lee et al. 2022) and its depthwise composition.

RVQ quantizes a vector in M stages with M codebooks: stage m picks the code nearest to what the
previous stages left, r_m = z - sum_{j<m} e_j, and the output is the sum of the M chosen
vectors. Depthwise RVQ ("grouped residual VQ") splits the features into L slices like DVQ and
runs an independent M-stage RVQ on each, vmapped over the L slices.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from dvq_jax.quantizers import _checks
from dvq_jax.quantizers._estimators import check_gradient_estimator
from dvq_jax.quantizers._estimators import estimate
from dvq_jax.quantizers._nearest import nearest_codes
from dvq_jax.quantizers._quantize import QuantizerOutput
from dvq_jax.quantizers._stats import code_statistics
from dvq_jax.quantizers._stats import num_positions
from dvq_jax.quantizers._stats import position_weights
from dvq_jax.quantizers._stats import zero_masked


class _Stages(NamedTuple):
  total: jax.Array  # (N, D) sum of the chosen stage vectors
  codes: jax.Array  # (M, N)
  codebook_loss: jax.Array  # (M,)
  commitment_loss: jax.Array  # (M,)
  perplexity: jax.Array  # (M,)
  usage: jax.Array  # (M,)


def _residual_one(x: jax.Array, codebooks: jax.Array, active: jax.Array | None,
                  weights: jax.Array | None) -> _Stages:
  """M-stage RVQ of `(N, D)` vectors with `(M, K, D)` codebooks.

  `active` `(M, N)` 0/1 (or None: all stages) says which stages a row runs (quantize
  dropout: a dropped stage adds nothing and its code is 0); `weights` `(N,)` 0/1 (or None)
  masks rows out of the losses and statistics, which are means over the unmasked rows.
  """
  sg = jax.lax.stop_gradient
  count = num_positions(weights, x.shape[0])

  def stage(residual, inputs):
    codebook, on = inputs
    codes = nearest_codes(sg(residual), sg(codebook))
    chosen = jnp.take(codebook, codes, axis=0, mode="clip")
    if on is not None:
      chosen = chosen * on[:, None].astype(chosen.dtype)
    w = on if weights is None else (weights if on is None else on * weights)
    perplexity, usage = code_statistics(codes[:, None], codebook.shape[0], w)
    sq = lambda a: jnp.sum(jnp.square(a.astype(jnp.float32)), axis=-1)
    mean = (lambda a: jnp.mean(sq(a))) if w is None else (
        lambda a: jnp.sum(jnp.where(w > 0, sq(a), 0.0)) / count)
    stats = (
        zero_masked(codes, w),
        chosen,
        mean(sg(residual) - chosen),
        mean(residual - sg(chosen)),  # gradient reaches z through the residual
        perplexity[0],
        usage[0],
    )
    return residual - sg(chosen), stats

  _, (codes, chosen, codebook_loss, commitment_loss, perplexity, usage) = jax.lax.scan(
      stage, x, (codebooks, active)
  )
  return _Stages(jnp.sum(chosen, axis=0), codes, codebook_loss, commitment_loss, perplexity,
                 usage)


def _output(stages: _Stages, quantized, codes, beta) -> QuantizerOutput:
  codebook_loss = jnp.sum(stages.codebook_loss)
  commitment_loss = jnp.sum(stages.commitment_loss)
  return QuantizerOutput(
      quantized=quantized,
      codes=codes,
      loss=codebook_loss + beta * commitment_loss,
      codebook_loss=codebook_loss,
      commitment_loss=commitment_loss,
      perplexity=stages.perplexity,
      usage=stages.usage,
  )


def _stage_codebooks(codebooks: jax.Array, rank: int, layout: str, num_stages: int | None,
                     num_active_stages: int | None) -> jax.Array:
  """`codebooks` as `(..., M', K, D)`: a shared `(..., K, D)` one repeated `num_stages` times,
  cut to the first `num_active_stages` stages."""
  if codebooks.ndim == rank - 1 and num_stages is not None:  # one codebook shared by the stages
    if not isinstance(num_stages, int) or num_stages < 1:
      raise ValueError(f"num_stages = {num_stages!r}; set it to an integer >= 1")
    codebooks = jnp.broadcast_to(codebooks[..., None, :, :],
                                 (*codebooks.shape[:-2], num_stages, *codebooks.shape[-2:]))
  elif codebooks.ndim != rank or num_stages not in (None, codebooks.shape[-3]):
    raise ValueError(f"codebooks must have rank {rank} {layout}, or rank {rank - 1} with"
                     f" num_stages (one codebook shared by every stage), got shape"
                     f" {codebooks.shape} and num_stages = {num_stages!r}")
  if min(codebooks.shape[:-1]) < 1:
    raise ValueError(f"every axis of codebooks {layout} must be >= 1, got {codebooks.shape}")
  total = codebooks.shape[-3]
  if num_active_stages is not None:
    if not isinstance(num_active_stages, int) or not 1 <= num_active_stages <= total:
      raise ValueError(f"num_active_stages = {num_active_stages!r}; set it to an integer in"
                       f" [1, {total}] (M = {total} stages)")
    codebooks = codebooks[..., :num_active_stages, :, :]
  return codebooks


def _dropout_active(key: jax.Array, batch_shape: tuple[int, ...], num_stages: int) -> jax.Array:
  """`(M, N)` 0/1: example b (z's leading axis) runs its first n_b ~ U{1..M} stages."""
  batch = batch_shape[0] if batch_shape else 1
  kept = jax.random.randint(key, (batch,), 1, num_stages + 1)
  per_row = jnp.broadcast_to(kept.reshape(batch, *([1] * (len(batch_shape) - 1))),
                             batch_shape or (1,)).reshape(-1)
  return (jnp.arange(num_stages)[:, None] < per_row[None, :]).astype(jnp.float32)


def residual_quantize(
    z: jax.Array,
    codebooks: jax.Array,
    *,
    beta: float = 0.25,
    gradient_estimator: str = "straight_through",
    num_stages: int | None = None,
    num_active_stages: int | None = None,
    dropout_key: jax.Array | None = None,
    mask: jax.Array | None = None,
) -> QuantizerOutput:
  """RVQ: M stages, stage m quantizes the residual the previous stages left.

  Losses are summed over stages: codebook_loss = sum_m mean ||sg(r_m) - e_m||^2 and
  commitment_loss = sum_m mean ||r_m - sg(e_m)||^2 with r_m = z - sum_{j<m} sg(e_j). The
  quantized output is sum_m e_m, with the gradient estimator applied to the whole sum
  (straight-through: gradient w.r.t. z the identity).

  Options: a codebook shared by all stages (a `(K, D)` codebook with `num_stages`); quantize
  dropout (Zeghidour et al. 2021, SoundStream): with `dropout_key`, example b (z's leading
  axis) runs only its first n_b stages, n_b uniform in {1, ..., M}, so that the decoder learns
  every bit rate; the dropped stages add nothing to quantized, losses or statistics, and their
  codes are 0. At evaluation `num_active_stages` = n runs the first n stages only (n codes a
  vector: the bit rate).

  Args:
    z: `(..., D)` vectors.
    codebooks: `(M, K, D)`, one codebook per stage, or `(K, D)` shared by `num_stages` stages;
      same dtype as z.
    beta: weight of the commitment loss.
    gradient_estimator: "straight_through" or "rotation".
    num_stages: M for a shared `(K, D)` codebook (else None or M).
    num_active_stages: run only the first n stages, 1 <= n <= M; None = all.
    dropout_key: PRNG key for quantize dropout (training); None = no dropout.
    mask: optional bool `(...)`, one per vector: masked vectors add nothing to the losses or
      the statistics and their codes are 0.

  Returns:
    QuantizerOutput with quantized `(..., D)`, codes `(..., M)` (M = num_active_stages if
    given), perplexity and usage `(M,)`; losses are means over the (unmasked) vectors.

  >>> import jax.numpy as jnp
  >>> codebooks = jnp.array([[[0.0], [4.0]], [[0.0], [1.0]]])  # M=2 stages, K=2, D=1
  >>> out = residual_quantize(jnp.array([[4.9], [1.2]]), codebooks)
  >>> out.codes.tolist(), out.quantized[:, 0].tolist()
  ([[1, 1], [0, 1]], [5.0, 1.0])
  """
  codebooks = _stage_codebooks(codebooks, 3, "(M, K, D)", num_stages, num_active_stages)
  _checks.check_min_rank(z, 1, "(..., D)")
  _checks.check_feature_size(z, codebooks.shape[2], "codebook dim D")
  out = depthwise_residual_quantize(z, codebooks[None], beta=beta,
                                    gradient_estimator=gradient_estimator,
                                    dropout_key=dropout_key, mask=mask)
  return out._replace(codes=out.codes[..., 0, :], perplexity=out.perplexity[0],
                      usage=out.usage[0])


def depthwise_residual_quantize(
    z: jax.Array,
    codebooks: jax.Array,
    *,
    beta: float = 0.25,
    gradient_estimator: str = "straight_through",
    num_stages: int | None = None,
    num_active_stages: int | None = None,
    dropout_key: jax.Array | None = None,
    mask: jax.Array | None = None,
) -> QuantizerOutput:
  """Depthwise RVQ: L feature slices, each an independent M-stage RVQ (grouped residual VQ).

  The options are `residual_quantize`'s; with quantize dropout every slice of an example
  runs the same number of stages (one bit rate per example).

  Args:
    z: `(..., L*D)`.
    codebooks: `(L, M, K, D)`, or `(L, K, D)` (one codebook a slice, shared by its
      `num_stages` stages); same dtype as z.
    beta: weight of the commitment loss (losses summed over slices and stages).
    gradient_estimator: "straight_through" or "rotation", applied per slice.
    num_stages: M for shared `(L, K, D)` codebooks (else None or M).
    num_active_stages: run only the first n stages, 1 <= n <= M; None = all.
    dropout_key: PRNG key for quantize dropout (training); None = no dropout.
    mask: optional bool `(...)`, one per position: masked positions add nothing to the losses
      or the statistics and their codes are 0.

  Returns:
    QuantizerOutput with quantized like z, codes `(..., L, M)`, perplexity and usage `(L, M)`.

  >>> import jax.numpy as jnp
  >>> codebooks = jnp.array([[[[0.0], [4.0]], [[0.0], [1.0]]]] * 2)  # L=2, M=2, K=2, D=1
  >>> depthwise_residual_quantize(jnp.array([[4.9, 1.2]]), codebooks).codes.tolist()
  [[[1, 1], [0, 1]]]
  """
  codebooks = _stage_codebooks(codebooks, 4, "(L, M, K, D)", num_stages, num_active_stages)
  _checks.check_beta(beta)
  _checks.check_min_rank(z, 1, "(..., L*D)")
  _checks.check_dtypes(z, codebooks)
  num_codebooks, num_stages, _, dim = codebooks.shape
  _checks.check_feature_size(z, num_codebooks * dim, f"L*D = {num_codebooks}*{dim}")
  check_gradient_estimator(gradient_estimator)
  weights = position_weights(mask, z.shape[:-1])
  active = None if dropout_key is None else _dropout_active(dropout_key, z.shape[:-1],
                                                            num_stages)
  slices = z.reshape(-1, num_codebooks, dim)
  stages = jax.vmap(_residual_one, in_axes=(1, 0, None, None))(slices, codebooks, active,
                                                                weights)
  total = stages.total.transpose(1, 0, 2)  # (N, L, D)
  quantized = estimate(gradient_estimator, slices, total.astype(z.dtype)).reshape(z.shape)
  codes = stages.codes.transpose(2, 0, 1).reshape(*z.shape[:-1], num_codebooks, num_stages)
  return _output(stages, quantized, codes, beta)
