"""FSQ: finite scalar quantization (Mentzer et al. 2023, "Finite Scalar Quantization: VQ-VAE
Made Simple").

FSQ is DVQ taken to its limit: every slice is one-dimensional (L = number of dimensions, D = 1)
and codebook i is a fixed grid of levels[i] evenly spaced values in [-1, 1], so the nearest code
is a rounding and nothing is learned in the codebooks. The per-dimension digits combine into one
code in [0, prod(levels)) (dimension 0 is the least significant digit).
"""

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from dvq_jax.quantizers import _checks
from dvq_jax.quantizers._quantize import QuantizerOutput
from dvq_jax.quantizers._stats import code_statistics
from dvq_jax.quantizers._stats import position_weights
from dvq_jax.quantizers._stats import zero_masked

# Keeps tanh's open interval strictly inside the outermost rounding bins.
_EPS = 1e-3


def _levels(levels: Sequence[int]) -> np.ndarray:
  levels = np.asarray(tuple(int(l) for l in levels), np.int64)
  if levels.ndim != 1 or levels.size < 1 or np.any(levels < 2):
    raise ValueError(f"FSQ levels must be a non-empty sequence of ints >= 2, got {levels.tolist()}")
  if np.prod(levels) > 2**31 - 1:
    raise ValueError(
        f"prod(levels) = {np.prod(levels)} does not fit int32 codes; use fewer or smaller levels"
    )
  return levels


def _basis(levels: np.ndarray) -> np.ndarray:
  return np.concatenate([[1], np.cumprod(levels[:-1])]).astype(np.int64)


def _check_z(z: jax.Array, levels: np.ndarray) -> None:
  _checks.check_min_rank(z, 1, "(..., len(levels))")
  _checks.check_feature_size(z, len(levels), f"len(levels) for levels {levels.tolist()}")


def _round_straight_through(x: jax.Array) -> jax.Array:
  return x + jax.lax.stop_gradient(jnp.round(x) - x)


def _bound(z: jax.Array, levels: np.ndarray) -> jax.Array:
  """tanh squashing into (-(l-1)/2 - offset, (l-1)/2 - offset) per dim, with bound(0) = 0."""
  half_l = (levels - 1) * (1.0 + _EPS) / 2.0
  offset = np.where(levels % 2 == 0, 0.5, 0.0)
  shift = np.arctanh(offset / half_l)
  return (jnp.tanh(z + shift.astype(np.float32)) * half_l.astype(np.float32)
          - offset.astype(np.float32))


def fsq_codes(values: jax.Array, levels: Sequence[int]) -> jax.Array:
  """Grid values `(..., len(levels))` (as FSQ outputs them) -> int32 codes `(...)`.

  >>> fsq_codes(jnp.array([[-1.0, 0.5], [0.0, 0.0]]), (3, 4)).tolist()
  [9, 7]
  """
  levels = _levels(levels)
  _check_z(values, levels)
  half_width = (levels // 2).astype(np.float32)
  digits = jnp.round(values.astype(jnp.float32) * half_width + half_width).astype(jnp.int32)
  return jnp.sum(digits * _basis(levels).astype(np.int32), axis=-1)


def fsq_lookup(codes: jax.Array, levels: Sequence[int], dtype=jnp.float32) -> jax.Array:
  """int codes `(...)` in [0, prod(levels)) -> grid values `(..., len(levels))` in [-1, 1].

  >>> fsq_lookup(jnp.array([0, 7]), (3, 4)).tolist()
  [[-1.0, -1.0], [0.0, 0.0]]
  """
  levels = _levels(levels)
  digits = (codes[..., None].astype(jnp.int32) // _basis(levels).astype(np.int32)) % levels.astype(
      np.int32
  )
  half_width = (levels // 2).astype(np.float32)
  return ((digits.astype(jnp.float32) - half_width) / half_width).astype(dtype)


def finite_scalar_quantize(z: jax.Array, levels: Sequence[int], *,
                           mask: jax.Array | None = None) -> QuantizerOutput:
  """FSQ: bounds each dimension with tanh, rounds it to one of levels[i] values (straight-through).

  Dimension i takes values (k - levels[i] // 2) / (levels[i] // 2), k = 0 .. levels[i]-1 (for
  even levels the grid is not symmetric: e.g. 4 levels give -1, -0.5, 0, 0.5). There are no
  codebooks, hence no codebook or commitment loss (both are zero).

  Args:
    z: `(..., len(levels))`.
    levels: number of values per dimension, each >= 2, prod(levels) < 2**31.
    mask: optional bool `(...)`, one per vector: masked vectors add nothing to the statistics
      and their codes are 0.

  Returns:
    QuantizerOutput with quantized like z (values on the grid, gradient of the tanh bound with
    a straight-through round), codes `(...)` int32 in [0, prod(levels)), perplexity and usage
    `(1,)` over the prod(levels) codes.

  >>> out = finite_scalar_quantize(jnp.array([[-3.0, 0.1], [0.0, 0.0]]), (3, 4))
  >>> out.codes.tolist(), out.quantized.tolist()
  ([6, 7], [[-1.0, 0.0], [0.0, 0.0]])
  """
  levels = _levels(levels)
  _check_z(z, levels)
  half_width = (levels // 2).astype(np.float32)
  quantized = _round_straight_through(_bound(z.astype(jnp.float32), levels)) / half_width
  weights = position_weights(mask, z.shape[:-1])
  codes = zero_masked(fsq_codes(jax.lax.stop_gradient(quantized), levels).reshape(-1), weights)
  perplexity, usage = code_statistics(codes[:, None], int(np.prod(levels)), weights)
  zero = jnp.zeros((), jnp.float32)
  return QuantizerOutput(
      quantized=quantized.astype(z.dtype),
      codes=codes.reshape(z.shape[:-1]),
      loss=zero,
      codebook_loss=zero,
      commitment_loss=zero,
      perplexity=perplexity,
      usage=usage,
  )
