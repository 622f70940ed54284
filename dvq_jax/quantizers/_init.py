"""Codebook initialisation schemes (drawn flat: `dvq_jax.flat_random`)."""

import math

import jax
import jax.numpy as jnp

from dvq_jax import flat_random

SCHEMES = ("truncated_normal", "normal", "uniform", "uniform_unit_variance")


def init_codebooks(
    key: jax.Array,
    num_codebooks: int,
    codebook_size: int,
    dim: int,
    *,
    scheme: str = "truncated_normal",
    scale: float | None = None,
    dtype: jnp.dtype = jnp.float32,
) -> jax.Array:
  """Draws L codebooks of K vectors of D features, `(num_codebooks, codebook_size, dim)`.

  Schemes (`scale` overrides the default spread)::

    truncated_normal: normal with std `scale` (default 0.1), cut at 2 std -- the official DVQ
      code's initialiser;
    normal: normal with std `scale` (default 1.0) -- the paper's static-prior study;
    uniform: uniform in [-scale, scale] (default 1/K, as in common VQ-VAE code);
    uniform_unit_variance: uniform with mean 0 and std `scale` (default 1.0), i.e. in
      [-sqrt(3) scale, sqrt(3) scale] -- the paper's static-prior init, "uniform random with
      mu = 0 and sigma = 1".

  >>> import jax
  >>> init_codebooks(jax.random.key(0), 8, 512, 32).shape
  (8, 512, 32)
  """
  for name, value in (("num_codebooks", num_codebooks), ("codebook_size", codebook_size),
                      ("dim", dim)):
    if int(value) < 1:
      raise ValueError(f"{name} must be >= 1, got {value}")
  shape = (num_codebooks, codebook_size, dim)
  if scheme == "truncated_normal":
    std = 0.1 if scale is None else scale
    return std * flat_random.truncated_normal(key, -2.0, 2.0, shape, dtype)
  if scheme == "normal":
    std = 1.0 if scale is None else scale
    return std * flat_random.normal(key, shape, dtype)
  if scheme == "uniform":
    limit = 1.0 / codebook_size if scale is None else scale
    return flat_random.uniform(key, shape, dtype, -limit, limit)
  if scheme == "uniform_unit_variance":
    limit = math.sqrt(3.0) * (1.0 if scale is None else scale)
    return flat_random.uniform(key, shape, dtype, -limit, limit)
  raise ValueError(f"unknown codebook init scheme {scheme!r}; choose one of {SCHEMES}")
