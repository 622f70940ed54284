"""The four quantizers of the paper as pure functions: VQ, DVQ, multi-codebook VQ, SVQ.

Each one views its input as `(..., L, D)` -- slice l of every position belongs to codebook l --
without moving it: the search reads the slices in place and the chosen vectors are gathered
straight into that layout, so no transposed copy of z (or of its gradient) is made.

One loss convention for all four: `codebook_loss` and `commitment_loss` are means over latent
positions (the vectors z is made of) of the squared error summed over that vector's features,
summed over the codebooks a position uses (L for DVQ and MVQ, one for VQ and SVQ). beta weights
the commitment (encoder) term, as in van den Oord et al. (2017); the DVQ paper's Eq. 2/4 print
beta on d(sg(z), z_q) instead.

Options of all four: `cosine=True` quantizes l2-normalised slices with l2-normalised codebooks
(cosine-similarity codes; quantized and losses are then those of the unit vectors, and the
gradient flows through the normalisation), and `gradient_estimator="rotation"` replaces
straight-through by the rotation trick (Fifty et al. 2024; see `rotation_trick`).

Non-finite input: codes always index the codebook (0 <= code < K); a position with a NaN or inf
in z gets code 0 and a NaN or inf codebook_loss / commitment_loss / loss, and a NaN or inf
anywhere in a codebook makes codebook_loss and loss NaN, so a trainer's finite check sees it.
"""

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp

from dvq_jax.quantizers import _checks
from dvq_jax.quantizers._cosine import l2_normalize
from dvq_jax.quantizers._estimators import check_gradient_estimator
from dvq_jax.quantizers._estimators import estimate
from dvq_jax.quantizers._nearest import search_slices
from dvq_jax.quantizers._stats import code_statistics
from dvq_jax.quantizers._stats import num_positions
from dvq_jax.quantizers._stats import position_weights


class QuantizerOutput(NamedTuple):
  """What every quantizer returns.

  Attributes:
    quantized: the input's shape and dtype; value = the chosen codebook vectors, gradient with
      respect to z = identity (straight-through, `stop_gradient(e) + z - stop_gradient(z)`).
    codes: int32 indices of the chosen codebook vectors.
    loss: `codebook_loss + beta * commitment_loss` (paper Eq. 4 with beta on the commitment
      term, as in van den Oord et al.), float32 scalar.
    codebook_loss: mean over latent positions of ||sg(z) - e||^2 (summed over the vector's
      features), summed over the codebooks a position uses; its gradient reaches the codebooks
      only. NaN if any codebook entry is NaN or inf.
    commitment_loss: the same mean of ||z - sg(e)||^2; its gradient reaches z only.
    perplexity: `(L,)` exp(entropy) of each codebook's code histogram over the batch.
    usage: `(L,)` fraction of each codebook's K vectors chosen at least once in the batch.
  """

  quantized: jax.Array
  codes: jax.Array
  loss: jax.Array
  codebook_loss: jax.Array
  commitment_loss: jax.Array
  perplexity: jax.Array
  usage: jax.Array


def _nan_unless_finite(codebooks: jax.Array) -> jax.Array:
  """0 for finite codebooks, NaN otherwise: non-finite rows are never chosen, so no loss term
  would carry them."""
  return jnp.where(jnp.all(jnp.isfinite(codebooks)), 0.0, jnp.nan).astype(jnp.float32)


def _options(x: jax.Array, codebooks: jax.Array, cosine: bool, gradient_estimator: str):
  """Checks the options; with cosine, the l2-normalised slices `(..., L, D)` and codebooks."""
  check_gradient_estimator(gradient_estimator)
  if cosine:
    return l2_normalize(x), l2_normalize(codebooks)
  return x, codebooks


def _quantize_slices(x: jax.Array, codes: jax.Array, codebooks: jax.Array, beta,
                     num_positions: int, gradient_estimator: str = "straight_through",
                     weights: jax.Array | None = None) -> tuple[jax.Array, QuantizerOutput]:
  """The straight-through output and the losses, given the codes.

  Args:
    x: `(..., L, D)` slices of z (or `(..., 1, D)`: one vector for all L codebooks).
    codes: `(..., L)` int32 codes, slice l in codebook l.
    codebooks: `(L, K, D)`.
    beta: weight of the commitment loss.
    num_positions: latent positions the losses are means over (the unmasked ones).
    gradient_estimator: "straight_through" or "rotation".
    weights: None, or 0/1 weights of the codes `(N, L)` (or `(N, 1)`), N = codes.size / L:
      masked entries add nothing; the losses are then means over the unmasked positions.

  Returns:
    `(quantized (..., L, D), output)`, the output's `quantized` left to the caller and its
    codes those of the unmasked entries (0 elsewhere), shaped like `codes`.
  """
  sg = jax.lax.stop_gradient
  num_codebooks, size, dim = codebooks.shape
  flat_codes = codes + size * jnp.arange(num_codebooks, dtype=codes.dtype)
  # In range (codes are in [0, K)): mode="clip" avoids the out-of-range select of the default.
  chosen = jnp.take(codebooks.reshape(num_codebooks * size, dim), flat_codes, axis=0,
                    mode="clip")
  columns = codes.reshape(-1, num_codebooks)
  if weights is None:
    sq_sum = lambda a: jnp.sum(jnp.square(a.astype(jnp.float32))) / num_positions
  else:
    weights = jnp.broadcast_to(weights, columns.shape)
    columns = jnp.where(weights > 0, columns, 0)
    w = weights.reshape(*codes.shape, 1)
    sq_sum = lambda a: jnp.sum(jnp.where(w > 0, jnp.square(a.astype(jnp.float32)), 0.0)
                                ) / num_positions
  codebook_loss = sq_sum(sg(x) - chosen) + _nan_unless_finite(sg(codebooks))
  commitment_loss = sq_sum(x - sg(chosen))
  perplexity, usage = code_statistics(codes.reshape(-1, num_codebooks), size, weights)
  output = QuantizerOutput(
      quantized=None,
      codes=columns.reshape(codes.shape),
      loss=codebook_loss + beta * commitment_loss,
      codebook_loss=codebook_loss,
      commitment_loss=commitment_loss,
      perplexity=perplexity,
      usage=usage,
  )
  # value: exactly e (x - sg(x) is exactly 0); gradient w.r.t. x: the estimator's.
  return estimate(gradient_estimator, x, chosen), output


def vector_quantize(
    z: jax.Array,
    codebook: jax.Array,
    *,
    beta: float = 0.25,
    cosine: bool = False,
    gradient_estimator: str = "straight_through",
    mask: jax.Array | None = None,
) -> QuantizerOutput:
  """VQ: quantizes every D-vector of `z` with one codebook.

  Args:
    z: `(..., D)` vectors.
    codebook: `(K, D)`, same dtype as z.
    beta: weight of the commitment loss, >= 0.
    cosine: quantize l2-normalised slices with l2-normalised codebooks (cosine codes).
    gradient_estimator: "straight_through" or "rotation" (the rotation trick).
    mask: optional bool `(...)`, one per vector of z: masked vectors add nothing to the losses
      or the statistics (losses are means over the unmasked vectors) and their codes are 0.

  Returns:
    QuantizerOutput with quantized `(..., D)`, codes `(...)`, perplexity and usage `(1,)`;
    losses are means over the vectors of z of ||z - e||^2. A vector with a NaN or inf gets
    code 0 and makes the losses non-finite; a non-finite codebook row is never chosen and makes
    codebook_loss and loss NaN.

  >>> import jax.numpy as jnp
  >>> codebook = jnp.array([[0., 0.], [1., 1.]])
  >>> out = vector_quantize(jnp.array([[0.9, 0.8], [0.1, -0.2]]), codebook)
  >>> out.codes.tolist(), out.quantized.tolist()
  ([1, 0], [[1.0, 1.0], [0.0, 0.0]])
  """
  _checks.check_beta(beta)
  _checks.check_codebook(codebook)
  _checks.check_min_rank(z, 1, "(..., D)")
  _checks.check_dtypes(z, codebook)
  _checks.check_feature_size(z, codebook.shape[1], "codebook dim D")
  out = depthwise_quantize(z, codebook[None], beta=beta, cosine=cosine,
                           gradient_estimator=gradient_estimator, mask=mask)
  return out._replace(codes=out.codes[..., 0])


def depthwise_quantize(
    z: jax.Array,
    codebooks: jax.Array,
    *,
    beta: float = 0.25,
    slice_sizes: Sequence[int] | None = None,
    cosine: bool = False,
    gradient_estimator: str = "straight_through",
    mask: jax.Array | None = None,
) -> QuantizerOutput:
  """DVQ: splits the feature axis into L slices and quantizes slice l with codebook l.

  With equal slices z is `(..., L*D)`. With `slice_sizes` (paper Eq. 3, unequal D_l) the slices
  are zero-padded to D = max(slice_sizes) and the codebook entries beyond D_l are held at zero
  (and get no gradient), so every distance is exactly that of the unequal slice.

  Args:
    z: `(..., L*D)`, or `(..., sum(slice_sizes))`.
    codebooks: `(L, K, D)`, same dtype as z.
    beta: weight of the commitment loss, >= 0.
    cosine: quantize l2-normalised slices with l2-normalised codebooks (cosine codes).
    gradient_estimator: "straight_through" or "rotation" (the rotation trick).
    slice_sizes: optional L feature counts D_l, summing to z's feature size, max = D.
    mask: optional bool `(...)`, one per vector of z: masked vectors add nothing to the losses
      or the statistics (losses are means over the unmasked vectors) and their codes are 0.

  Returns:
    QuantizerOutput with quantized like z, codes `(..., L)`, perplexity and usage `(L,)`;
    losses are means over the positions of z (`prod(z.shape[:-1])` of them) of the squared
    error summed over the slice's features, summed over the L codebooks. A slice with a NaN or
    inf gets code 0 and makes the losses non-finite; a non-finite codebook row is never chosen
    and makes codebook_loss and loss NaN.

  >>> import jax.numpy as jnp
  >>> codebooks = jnp.array([[[0.], [1.]], [[0.], [1.]]])  # L=2 codebooks, K=2, D=1
  >>> out = depthwise_quantize(jnp.array([[0.9, 0.2]]), codebooks)
  >>> out.codes.tolist(), out.quantized.tolist()
  ([[1, 0]], [[1.0, 0.0]])
  """
  _checks.check_beta(beta)
  _checks.check_codebooks(codebooks)
  _checks.check_min_rank(z, 1, "(..., L*D)")
  _checks.check_dtypes(z, codebooks)
  num_codebooks, _, dim = codebooks.shape
  flat = z.reshape(-1, z.shape[-1])
  if slice_sizes is None:
    _checks.check_feature_size(z, num_codebooks * dim, f"L*D = {num_codebooks}*{dim}")
    slices = flat.reshape(-1, num_codebooks, dim)  # a view: slice l of row n is [n, l]
  else:
    slice_sizes = tuple(int(s) for s in slice_sizes)
    _checks.check_slice_sizes(slice_sizes, z.shape[-1], codebooks.shape)
    starts = [sum(slice_sizes[:i]) for i in range(num_codebooks)]
    slices = jnp.stack([
        jnp.pad(flat[:, s:s + n], ((0, 0), (0, dim - n))) for s, n in zip(starts, slice_sizes)
    ], axis=1)
    keep = (jnp.arange(dim)[None, :] < jnp.array(slice_sizes)[:, None]).astype(codebooks.dtype)
    codebooks = codebooks * keep[:, None, :]
  slices, codebooks = _options(slices, codebooks, cosine, gradient_estimator)
  codes = search_slices(slices, codebooks)
  weights = position_weights(mask, z.shape[:-1])
  quantized, out = _quantize_slices(slices, codes, codebooks, beta,
                                    num_positions(weights, flat.shape[0]), gradient_estimator,
                                    None if weights is None else weights[:, None])
  if slice_sizes is not None:
    quantized = jnp.concatenate([quantized[:, i, :n] for i, n in enumerate(slice_sizes)], -1)
  return out._replace(quantized=quantized.reshape(z.shape),
                      codes=out.codes.reshape(*z.shape[:-1], num_codebooks))


def multi_codebook_quantize(
    z: jax.Array,
    codebooks: jax.Array,
    *,
    beta: float = 0.25,
    cosine: bool = False,
    gradient_estimator: str = "straight_through",
    mask: jax.Array | None = None,
) -> QuantizerOutput:
  """The paper's "VQVAE" baseline: L codebooks, each over the whole vector, concatenated.

  Args:
    z: `(..., D)`.
    codebooks: `(L, K, D)`, same dtype as z.
    beta: weight of the commitment loss, >= 0.
    cosine: quantize l2-normalised slices with l2-normalised codebooks (cosine codes).
    gradient_estimator: "straight_through" or "rotation" (the rotation trick).
    mask: optional bool `(...)`, one per vector of z: masked vectors add nothing to the losses
      or the statistics and their codes are 0.

  Returns:
    QuantizerOutput with quantized `(..., L*D)`, codes `(..., L)`, perplexity and usage `(L,)`;
    losses are means over the positions of z of ||z - e_l||^2, summed over the L codebooks.
    Non-finite input: as for `depthwise_quantize`.

  >>> import jax.numpy as jnp
  >>> codebooks = jnp.array([[[0.], [1.]], [[0.5], [2.]]])  # L=2, K=2, D=1
  >>> out = multi_codebook_quantize(jnp.array([[0.9]]), codebooks)
  >>> out.codes.tolist(), out.quantized.tolist()
  ([[1, 0]], [[1.0, 0.5]])
  """
  _checks.check_beta(beta)
  _checks.check_codebooks(codebooks)
  _checks.check_min_rank(z, 1, "(..., D)")
  _checks.check_dtypes(z, codebooks)
  num_codebooks, _, dim = codebooks.shape
  _checks.check_feature_size(z, dim, "codebook dim D")
  flat = z.reshape(-1, 1, dim)  # one slice, searched in every codebook
  flat, codebooks = _options(flat, codebooks, cosine, gradient_estimator)
  codes = search_slices(flat, codebooks)
  weights = position_weights(mask, z.shape[:-1])
  quantized, out = _quantize_slices(flat, codes, codebooks, beta,
                                    num_positions(weights, flat.shape[0]), gradient_estimator,
                                    None if weights is None else weights[:, None])
  return out._replace(quantized=quantized.reshape(*z.shape[:-1], num_codebooks * dim),
                      codes=out.codes.reshape(*z.shape[:-1], num_codebooks))


def spatial_quantize(
    z: jax.Array,
    codebooks: jax.Array,
    *,
    beta: float = 0.25,
    cosine: bool = False,
    gradient_estimator: str = "straight_through",
    mask: jax.Array | None = None,
) -> QuantizerOutput:
  """SVQ baseline: the P positions split into L contiguous groups; group l uses codebook l.

  Args:
    z: `(B, P, D)` with P divisible by L (flatten height and width into P first).
    codebooks: `(L, K, D)`, same dtype as z.
    beta: weight of the commitment loss, >= 0.
    cosine: quantize l2-normalised slices with l2-normalised codebooks (cosine codes).
    gradient_estimator: "straight_through" or "rotation" (the rotation trick).
    mask: optional bool `(B, P)`, one per position: masked positions add nothing to the losses
      or the statistics and their codes are 0.

  Returns:
    QuantizerOutput with quantized `(B, P, D)`, codes `(B, P)`, perplexity and usage `(L,)`;
    losses are means over all B*P positions of ||z - e||^2 (each position uses one codebook),
    so with the same codebook in every group they equal `vector_quantize`'s. Non-finite input:
    as for `depthwise_quantize`.

  >>> import jax.numpy as jnp
  >>> codebooks = jnp.array([[[0.], [1.]], [[5.], [6.]]])  # L=2, K=2, D=1
  >>> out = spatial_quantize(jnp.array([[[0.9], [0.1], [5.1], [5.9]]]), codebooks)
  >>> out.codes.tolist(), out.quantized[..., 0].tolist()
  ([[1, 0, 0, 1]], [[1.0, 0.0, 5.0, 6.0]])
  """
  _checks.check_beta(beta)
  _checks.check_codebooks(codebooks)
  if z.ndim != 3:
    raise ValueError(f"z must have rank 3 (B, P, D) for spatial_quantize, got shape {z.shape}")
  _checks.check_dtypes(z, codebooks)
  num_codebooks, _, dim = codebooks.shape
  batch, positions, _ = z.shape
  _checks.check_feature_size(z, dim, "codebook dim D")
  if positions % num_codebooks:
    raise ValueError(
        f"number of positions P = {positions} (z shape {z.shape}) is not divisible by"
        f" L = {num_codebooks}; choose L dividing P"
    )
  group = positions // num_codebooks
  # (B, group, L, D): position g of every group side by side, slice l for codebook l.
  slices = z.reshape(batch, num_codebooks, group, dim).transpose(0, 2, 1, 3)
  slices = slices.reshape(batch * group, num_codebooks, dim)
  slices, codebooks = _options(slices, codebooks, cosine, gradient_estimator)
  codes = search_slices(slices, codebooks)
  weights = position_weights(mask, (batch, positions))
  if weights is not None:  # laid out like the slices: (B * group, L)
    weights = weights.reshape(batch, num_codebooks, group).transpose(0, 2, 1).reshape(-1,
                                                                                     num_codebooks)
  quantized, out = _quantize_slices(slices, codes, codebooks, beta,
                                    num_positions(weights, batch * positions),
                                    gradient_estimator, weights)
  quantized = quantized.reshape(batch, group, num_codebooks, dim).transpose(0, 2, 1, 3)
  codes = out.codes.reshape(batch, group, num_codebooks).transpose(0, 2, 1)
  return out._replace(quantized=quantized.reshape(z.shape), codes=codes.reshape(batch, positions))
