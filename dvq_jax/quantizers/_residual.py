"""Residual VQ (RVQ, Zeghidour et al. 2021 / Lee et al. 2022) and its depthwise composition.

RVQ quantizes a vector in M stages with M codebooks: stage m picks the code nearest to what the
previous stages left, r_m = z - sum_{j<m} e_j, and the output is the sum of the M chosen
vectors. Depthwise RVQ ("grouped residual VQ") splits the features into L slices like DVQ and
runs an independent M-stage RVQ on each, vmapped over the L slices.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import xlogy

from dvq_jax.quantizers import _checks
from dvq_jax.quantizers._estimators import check_gradient_estimator
from dvq_jax.quantizers._estimators import estimate
from dvq_jax.quantizers._nearest import nearest_codes
from dvq_jax.quantizers._quantize import QuantizerOutput


class _Stages(NamedTuple):
  total: jax.Array  # (N, D) sum of the chosen stage vectors
  codes: jax.Array  # (M, N)
  codebook_loss: jax.Array  # (M,)
  commitment_loss: jax.Array  # (M,)
  perplexity: jax.Array  # (M,)
  usage: jax.Array  # (M,)


def _mean_sq_norm(a: jax.Array) -> jax.Array:
  return jnp.mean(jnp.sum(jnp.square(a.astype(jnp.float32)), axis=-1))


def _residual_one(x: jax.Array, codebooks: jax.Array) -> _Stages:
  """M-stage RVQ of `(N, D)` vectors with `(M, K, D)` codebooks."""
  sg = jax.lax.stop_gradient

  def stage(residual, codebook):
    codes = nearest_codes(sg(residual), sg(codebook))
    chosen = jnp.take(codebook, codes, axis=0, mode="clip")
    counts = jnp.zeros(codebook.shape[0], jnp.float32).at[codes].add(1.0)
    probs = counts / codes.shape[0]
    stats = (
        codes,
        chosen,
        _mean_sq_norm(sg(residual) - chosen),
        _mean_sq_norm(residual - sg(chosen)),  # gradient reaches z through the residual
        jnp.exp(-jnp.sum(xlogy(probs, probs))),
        jnp.mean(counts > 0),
    )
    return residual - sg(chosen), stats

  _, (codes, chosen, codebook_loss, commitment_loss, perplexity, usage) = jax.lax.scan(
      stage, x, codebooks
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


def residual_quantize(
    z: jax.Array,
    codebooks: jax.Array,
    *,
    beta: float = 0.25,
    gradient_estimator: str = "straight_through",
) -> QuantizerOutput:
  """RVQ: M stages, stage m quantizes the residual the previous stages left.

  Losses are summed over stages: codebook_loss = sum_m mean ||sg(r_m) - e_m||^2 and
  commitment_loss = sum_m mean ||r_m - sg(e_m)||^2 with r_m = z - sum_{j<m} sg(e_j). The
  quantized output is sum_m e_m, with the gradient estimator applied to the whole sum
  (straight-through: gradient w.r.t. z the identity).

  Args:
    z: `(..., D)` vectors.
    codebooks: `(M, K, D)`, one codebook per stage, same dtype as z.
    beta: weight of the commitment loss.
    gradient_estimator: "straight_through" or "rotation".

  Returns:
    QuantizerOutput with quantized `(..., D)`, codes `(..., M)`, perplexity and usage `(M,)`.

  >>> import jax.numpy as jnp
  >>> codebooks = jnp.array([[[0.0], [4.0]], [[0.0], [1.0]]])  # M=2 stages, K=2, D=1
  >>> out = residual_quantize(jnp.array([[4.9], [1.2]]), codebooks)
  >>> out.codes.tolist(), out.quantized[:, 0].tolist()
  ([[1, 1], [0, 1]], [5.0, 1.0])
  """
  if codebooks.ndim != 3:
    raise ValueError(f"codebooks must have rank 3 (M, K, D), got shape {codebooks.shape}")
  _checks.check_beta(beta)
  _checks.check_min_rank(z, 1, "(..., D)")
  _checks.check_dtypes(z, codebooks)
  _checks.check_feature_size(z, codebooks.shape[2], "codebook dim D")
  check_gradient_estimator(gradient_estimator)
  out = depthwise_residual_quantize(
      z, codebooks[None], beta=beta, gradient_estimator=gradient_estimator
  )
  return out._replace(codes=out.codes[..., 0, :], perplexity=out.perplexity[0],
                      usage=out.usage[0])


def depthwise_residual_quantize(
    z: jax.Array,
    codebooks: jax.Array,
    *,
    beta: float = 0.25,
    gradient_estimator: str = "straight_through",
) -> QuantizerOutput:
  """Depthwise RVQ: L feature slices, each an independent M-stage RVQ (grouped residual VQ).

  Args:
    z: `(..., L*D)`.
    codebooks: `(L, M, K, D)`, same dtype as z.
    beta: weight of the commitment loss (losses summed over slices and stages).
    gradient_estimator: "straight_through" or "rotation", applied per slice.

  Returns:
    QuantizerOutput with quantized like z, codes `(..., L, M)`, perplexity and usage `(L, M)`.

  >>> import jax.numpy as jnp
  >>> codebooks = jnp.array([[[[0.0], [4.0]], [[0.0], [1.0]]]] * 2)  # L=2, M=2, K=2, D=1
  >>> depthwise_residual_quantize(jnp.array([[4.9, 1.2]]), codebooks).codes.tolist()
  [[[1, 1], [0, 1]]]
  """
  if codebooks.ndim != 4:
    raise ValueError(f"codebooks must have rank 4 (L, M, K, D), got shape {codebooks.shape}")
  if min(codebooks.shape[:3]) < 1:
    raise ValueError(f"L, M and K must all be >= 1, got codebooks shape {codebooks.shape}")
  _checks.check_beta(beta)
  _checks.check_min_rank(z, 1, "(..., L*D)")
  _checks.check_dtypes(z, codebooks)
  num_codebooks, num_stages, _, dim = codebooks.shape
  _checks.check_feature_size(z, num_codebooks * dim, f"L*D = {num_codebooks}*{dim}")
  check_gradient_estimator(gradient_estimator)
  slices = z.reshape(-1, num_codebooks, dim)
  stages = jax.vmap(_residual_one, in_axes=(1, 0))(slices, codebooks)
  total = stages.total.transpose(1, 0, 2)  # (N, L, D)
  quantized = estimate(gradient_estimator, slices, total.astype(z.dtype)).reshape(z.shape)
  codes = stages.codes.transpose(2, 0, 1).reshape(*z.shape[:-1], num_codebooks, num_stages)
  return _output(stages, quantized, codes, beta)
