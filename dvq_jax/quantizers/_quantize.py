"""The four quantizers of the paper as pure functions: VQ, DVQ, multi-codebook VQ, SVQ.

Each one reshapes its input to `(L, N, D)` -- one `(N, D)` block of vectors per codebook -- and
runs the same single-codebook step under `jax.vmap` over the L codebooks.

One loss convention for all four: `codebook_loss` and `commitment_loss` are means over latent
positions (the vectors z is made of) of the squared error summed over that vector's features,
summed over the codebooks a position uses (L for DVQ and MVQ, one for VQ and SVQ). beta weights
the commitment (encoder) term, as in van den Oord et al. (2017); the DVQ paper's Eq. 2/4 print
beta on d(sg(z), z_q) instead.

Non-finite input: codes always index the codebook (0 <= code < K); a position with a NaN or inf
in z gets code 0 and a NaN or inf codebook_loss / commitment_loss / loss, and a NaN or inf
anywhere in a codebook makes codebook_loss and loss NaN, so a trainer's finite check sees it.
"""

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.special import xlogy

from dvq_jax.quantizers import _checks
from dvq_jax.quantizers._nearest import nearest_codes


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


class _Single(NamedTuple):
  quantized: jax.Array
  codes: jax.Array
  codebook_loss: jax.Array
  commitment_loss: jax.Array
  perplexity: jax.Array
  usage: jax.Array


def _mean_sq_norm(a: jax.Array) -> jax.Array:
  return jnp.mean(jnp.sum(jnp.square(a.astype(jnp.float32)), axis=-1))


def _nan_unless_finite(codebook: jax.Array) -> jax.Array:
  """0 for a finite codebook, NaN otherwise: its non-finite rows are never chosen, so no loss
  term would carry them."""
  return jnp.where(jnp.all(jnp.isfinite(codebook)), 0.0, jnp.nan).astype(jnp.float32)


def _quantize_one(x: jax.Array, codebook: jax.Array) -> _Single:
  """Quantizes `(N, D)` vectors with one `(K, D)` codebook."""
  sg = jax.lax.stop_gradient
  codes = nearest_codes(sg(x), sg(codebook))
  chosen = jnp.take(codebook, codes, axis=0, mode="clip")  # in range: no out-of-range select
  counts = jnp.zeros(codebook.shape[0], jnp.float32).at[codes].add(1.0)
  probs = counts / codes.shape[0]
  return _Single(
      # value: exactly e (x - sg(x) is exactly 0); gradient w.r.t. x: identity.
      quantized=sg(chosen) + (x - sg(x)),
      codes=codes,
      codebook_loss=_mean_sq_norm(sg(x) - chosen) + _nan_unless_finite(sg(codebook)),
      commitment_loss=_mean_sq_norm(x - sg(chosen)),
      perplexity=jnp.exp(-jnp.sum(xlogy(probs, probs))),
      usage=jnp.mean(counts > 0),
  )


def _finish(single: _Single, quantized: jax.Array, codes: jax.Array, beta: float, *,
            per_position=jnp.sum):
  """`per_position` turns the L per-codebook means into one per position: a sum when every
  position uses all L codebooks, a mean when each uses one (SVQ's equal groups)."""
  codebook_loss = per_position(single.codebook_loss)
  commitment_loss = per_position(single.commitment_loss)
  return QuantizerOutput(
      quantized=quantized,
      codes=codes,
      loss=codebook_loss + beta * commitment_loss,
      codebook_loss=codebook_loss,
      commitment_loss=commitment_loss,
      perplexity=single.perplexity,
      usage=single.usage,
  )


def vector_quantize(z: jax.Array, codebook: jax.Array, *, beta: float = 0.25) -> QuantizerOutput:
  """VQ: quantizes every D-vector of `z` with one codebook.

  Args:
    z: `(..., D)` vectors.
    codebook: `(K, D)`, same dtype as z.
    beta: weight of the commitment loss, >= 0.

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
  out = depthwise_quantize(z, codebook[None], beta=beta)
  return out._replace(codes=out.codes[..., 0])


def depthwise_quantize(
    z: jax.Array,
    codebooks: jax.Array,
    *,
    beta: float = 0.25,
    slice_sizes: Sequence[int] | None = None,
) -> QuantizerOutput:
  """DVQ: splits the feature axis into L slices and quantizes slice l with codebook l.

  With equal slices z is `(..., L*D)`. With `slice_sizes` (paper Eq. 3, unequal D_l) the slices
  are zero-padded to D = max(slice_sizes) and the codebook entries beyond D_l are held at zero
  (and get no gradient), so every distance is exactly that of the unequal slice.

  Args:
    z: `(..., L*D)`, or `(..., sum(slice_sizes))`.
    codebooks: `(L, K, D)`, same dtype as z.
    beta: weight of the commitment loss, >= 0.
    slice_sizes: optional L feature counts D_l, summing to z's feature size, max = D.

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
  batch_shape = z.shape[:-1]
  flat = z.reshape(-1, z.shape[-1])
  if slice_sizes is None:
    _checks.check_feature_size(z, num_codebooks * dim, f"L*D = {num_codebooks}*{dim}")
    slices = flat.reshape(-1, num_codebooks, dim).transpose(1, 0, 2)
    single = jax.vmap(_quantize_one)(slices, codebooks)
    quantized = single.quantized.transpose(1, 0, 2).reshape(z.shape)
  else:
    slice_sizes = tuple(int(s) for s in slice_sizes)
    _checks.check_slice_sizes(slice_sizes, z.shape[-1], codebooks.shape)
    starts = [sum(slice_sizes[:i]) for i in range(num_codebooks)]
    slices = jnp.stack([
        jnp.pad(flat[:, s:s + n], ((0, 0), (0, dim - n))) for s, n in zip(starts, slice_sizes)
    ])
    keep = (jnp.arange(dim)[None, :] < jnp.array(slice_sizes)[:, None]).astype(codebooks.dtype)
    single = jax.vmap(_quantize_one)(slices, codebooks * keep[:, None, :])
    quantized = jnp.concatenate(
        [single.quantized[i, :, :n] for i, n in enumerate(slice_sizes)], axis=-1
    ).reshape(z.shape)
  codes = single.codes.T.reshape(*batch_shape, num_codebooks)
  return _finish(single, quantized, codes, beta)


def multi_codebook_quantize(
    z: jax.Array, codebooks: jax.Array, *, beta: float = 0.25
) -> QuantizerOutput:
  """The paper's "VQVAE" baseline: L codebooks, each over the whole vector, concatenated.

  Args:
    z: `(..., D)`.
    codebooks: `(L, K, D)`, same dtype as z.
    beta: weight of the commitment loss, >= 0.

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
  flat = z.reshape(-1, dim)
  single = jax.vmap(_quantize_one, in_axes=(None, 0))(flat, codebooks)
  quantized = single.quantized.transpose(1, 0, 2).reshape(*z.shape[:-1], num_codebooks * dim)
  codes = single.codes.T.reshape(*z.shape[:-1], num_codebooks)
  return _finish(single, quantized, codes, beta)


def spatial_quantize(z: jax.Array, codebooks: jax.Array, *, beta: float = 0.25) -> QuantizerOutput:
  """SVQ baseline: the P positions split into L contiguous groups; group l uses codebook l.

  Args:
    z: `(B, P, D)` with P divisible by L (flatten height and width into P first).
    codebooks: `(L, K, D)`, same dtype as z.
    beta: weight of the commitment loss, >= 0.

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
  groups = z.reshape(batch, num_codebooks, group, dim).transpose(1, 0, 2, 3)
  single = jax.vmap(_quantize_one)(groups.reshape(num_codebooks, batch * group, dim), codebooks)
  quantized = single.quantized.reshape(num_codebooks, batch, group, dim).transpose(1, 0, 2, 3)
  codes = single.codes.reshape(num_codebooks, batch, group).transpose(1, 0, 2)
  return _finish(single, quantized.reshape(z.shape), codes.reshape(batch, positions), beta,
                 per_position=jnp.mean)
