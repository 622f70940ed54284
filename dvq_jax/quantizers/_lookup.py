"""Codes back to vectors: the inverse of each quantizer's `codes` output."""

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from dvq_jax.quantizers import _checks


def _check_codes(codes: jax.Array, rank: int, layout: str, *, exact: bool = False) -> None:
  if not jnp.issubdtype(codes.dtype, jnp.integer):
    raise ValueError(f"codes must be integers, got dtype {codes.dtype}")
  if codes.ndim < rank or (exact and codes.ndim != rank):
    raise ValueError(
        f"codes must have rank {'' if exact else '>= '}{rank} {layout}, got shape {codes.shape}"
    )


def vector_lookup(codes: jax.Array, codebook: jax.Array) -> jax.Array:
  """Codes `(...)` of `vector_quantize` -> vectors `(..., D)`.

  >>> import jax.numpy as jnp
  >>> vector_lookup(jnp.array([1, 0]), jnp.array([[0., 0.], [1., 2.]])).tolist()
  [[1.0, 2.0], [0.0, 0.0]]
  """
  _checks.check_codebook(codebook)
  _check_codes(codes, 0, "(...)")
  return jnp.take(codebook, codes, axis=0)


def depthwise_lookup(
    codes: jax.Array, codebooks: jax.Array, *, slice_sizes: Sequence[int] | None = None
) -> jax.Array:
  """Codes `(..., L)` of `depthwise_quantize` -> vectors `(..., L*D)` (or `(..., sum(slice_sizes))`).

  Also inverts `multi_codebook_quantize`, whose output has the same layout.

  >>> import jax.numpy as jnp
  >>> codebooks = jnp.array([[[0.], [1.]], [[0.], [1.]]])
  >>> depthwise_lookup(jnp.array([[1, 0]]), codebooks).tolist()
  [[1.0, 0.0]]
  """
  _checks.check_codebooks(codebooks)
  _check_codes(codes, 1, "(..., L)")
  num_codebooks, _, dim = codebooks.shape
  if codes.shape[-1] != num_codebooks:
    raise ValueError(
        f"codes last axis {codes.shape[-1]} (shape {codes.shape}) != L = {num_codebooks}"
    )
  slice_sizes = (dim,) * num_codebooks if slice_sizes is None else tuple(slice_sizes)
  _checks.check_slice_sizes(slice_sizes, sum(slice_sizes), codebooks.shape)
  vectors = jax.vmap(lambda c, cb: jnp.take(cb, c, axis=0), in_axes=(-1, 0), out_axes=-2)(
      codes, codebooks
  )
  return jnp.concatenate([vectors[..., i, :n] for i, n in enumerate(slice_sizes)], axis=-1)


def multi_codebook_lookup(codes: jax.Array, codebooks: jax.Array) -> jax.Array:
  """Codes `(..., L)` of `multi_codebook_quantize` -> vectors `(..., L*D)`."""
  return depthwise_lookup(codes, codebooks)


def spatial_lookup(codes: jax.Array, codebooks: jax.Array) -> jax.Array:
  """Codes `(B, P)` of `spatial_quantize` -> vectors `(B, P, D)`.

  >>> import jax.numpy as jnp
  >>> codebooks = jnp.array([[[0.], [1.]], [[5.], [6.]]])
  >>> spatial_lookup(jnp.array([[1, 0, 0, 1]]), codebooks)[..., 0].tolist()
  [[1.0, 0.0, 5.0, 6.0]]
  """
  _checks.check_codebooks(codebooks)
  _check_codes(codes, 2, "(B, P)", exact=True)
  num_codebooks = codebooks.shape[0]
  batch, positions = codes.shape
  if positions % num_codebooks:
    raise ValueError(
        f"number of positions P = {positions} is not divisible by L = {num_codebooks}"
    )
  grouped = codes.reshape(batch, num_codebooks, positions // num_codebooks)
  vectors = jax.vmap(lambda c, cb: jnp.take(cb, c, axis=0), in_axes=(1, 0), out_axes=1)(
      grouped, codebooks
  )
  return vectors.reshape(batch, positions, codebooks.shape[-1])
