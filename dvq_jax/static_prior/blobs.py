"""Gaussian blobs with a known number of latent factors N_G (the paper's static prior data).

The paper drew them with scikit-learn's `make_blobs`; this is the same recipe in JAX, so it runs
under `jax.vmap` over seeds: N_G centres uniform in [-1, 1]^D, isotropic noise of std sigma,
the same number of points around every centre, and separate train and test draws around the
same centres.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from dvq_jax import flat_random


class Blobs(NamedTuple):
  """One draw of the data set.

  Attributes:
    centres: `(N_G, D)` blob centres, uniform in [-1, 1]^D.
    train: `(N_G * points_per_centre, D)` training points, ordered centre by centre.
    test: `(N_G * test_points_per_centre, D)` test points around the same centres.
  """

  centres: jax.Array
  train: jax.Array
  test: jax.Array


def make_blobs(
    key: jax.Array,
    num_factors: int,
    dim: int,
    *,
    points_per_centre: int,
    test_points_per_centre: int,
    sigma: float = 0.01,
) -> Blobs:
  """Draws N_G isotropic Gaussian blobs in D dimensions; fully determined by `key`.

  Args:
    key: a PRNG key; the same key gives the same centres and points.
    num_factors: N_G, the number of blobs (latent factors).
    dim: D, the number of features.
    points_per_centre: training points drawn around every centre.
    test_points_per_centre: test points drawn around every centre.
    sigma: standard deviation of every blob, the same in every direction.

  Returns:
    Blobs with float32 centres `(N_G, D)`, train `(N_G*points_per_centre, D)` and test
    `(N_G*test_points_per_centre, D)`.

  >>> import jax
  >>> blobs = make_blobs(jax.random.key(0), 3, 2, points_per_centre=4, test_points_per_centre=2)
  >>> blobs.centres.shape, blobs.train.shape, blobs.test.shape
  ((3, 2), (12, 2), (6, 2))
  """
  for name, value in (("num_factors", num_factors), ("dim", dim),
                      ("points_per_centre", points_per_centre),
                      ("test_points_per_centre", test_points_per_centre)):
    if int(value) < 1:
      raise ValueError(f"{name} must be >= 1, got {value}")
  centre_key, train_key, test_key = jax.random.split(key, 3)
  centres = flat_random.uniform(centre_key, (num_factors, dim), jnp.float32, -1.0, 1.0)

  def around_centres(noise_key: jax.Array, per_centre: int) -> jax.Array:
    noise = sigma * flat_random.normal(noise_key, (num_factors, per_centre, dim), jnp.float32)
    return (centres[:, None, :] + noise).reshape(num_factors * per_centre, dim)

  return Blobs(centres=centres,
               train=around_centres(train_key, points_per_centre),
               test=around_centres(test_key, test_points_per_centre))
