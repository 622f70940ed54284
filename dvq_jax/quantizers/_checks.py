"""Input validation shared by the quantizers: one-line errors that name shapes and the fix."""

from collections.abc import Sequence

import jax


def check_beta(beta) -> None:
  """A negative (or NaN) beta would reward moving the encoder away from its codes."""
  try:
    value = float(beta)
  except (TypeError, jax.errors.ConcretizationTypeError):  # traced under jit: cannot be checked
    return
  if not value >= 0:
    raise ValueError(f"beta = {beta!r}; set it to a number >= 0")


def check_codebook(codebook: jax.Array) -> None:
  if codebook.ndim != 2:
    raise ValueError(f"codebook must have rank 2 (K, D), got shape {codebook.shape}")
  if codebook.shape[0] < 1:
    raise ValueError(f"codebook size K must be >= 1, got codebook shape {codebook.shape}")


def check_codebooks(codebooks: jax.Array) -> None:
  if codebooks.ndim != 3:
    raise ValueError(f"codebooks must have rank 3 (L, K, D), got shape {codebooks.shape}")
  if codebooks.shape[0] < 1:
    raise ValueError(f"number of codebooks L must be >= 1, got codebooks shape {codebooks.shape}")
  if codebooks.shape[1] < 1:
    raise ValueError(f"codebook size K must be >= 1, got codebooks shape {codebooks.shape}")


def check_dtypes(z: jax.Array, codebooks: jax.Array) -> None:
  if z.dtype != codebooks.dtype:
    raise ValueError(
        f"z dtype {z.dtype} != codebook dtype {codebooks.dtype}; cast one to the other"
    )


def check_min_rank(z: jax.Array, rank: int, layout: str) -> None:
  if z.ndim < rank:
    raise ValueError(f"z must have rank >= {rank} {layout}, got shape {z.shape}")


def check_feature_size(z: jax.Array, expected: int, what: str) -> None:
  if z.shape[-1] != expected:
    raise ValueError(f"z feature size {z.shape[-1]} (shape {z.shape}) != {what} = {expected}")


def check_slice_sizes(slice_sizes: Sequence[int], feature_size: int, codebooks_shape) -> None:
  num_codebooks, _, dim = codebooks_shape
  if len(slice_sizes) != num_codebooks:
    raise ValueError(
        f"slice_sizes has {len(slice_sizes)} entries but codebooks shape {codebooks_shape} has"
        f" L = {num_codebooks}; give one size per codebook"
    )
  if any(s < 1 for s in slice_sizes):
    raise ValueError(f"slice_sizes must all be >= 1, got {tuple(slice_sizes)}")
  if sum(slice_sizes) != feature_size:
    raise ValueError(
        f"slice_sizes {tuple(slice_sizes)} sum to {sum(slice_sizes)} but z has feature size"
        f" {feature_size}; make them sum to {feature_size}"
    )
  if max(slice_sizes) != dim:
    raise ValueError(
        f"codebook dim D = {dim} (codebooks shape {codebooks_shape}) must equal"
        f" max(slice_sizes) = {max(slice_sizes)}; pad codebooks to the largest slice"
    )
