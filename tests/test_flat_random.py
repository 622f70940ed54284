"""Flat draws are jax.random's and Flax's numbers exactly, for every key implementation."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dvq_jax import flat_random

# Multi-dimensional but small: the shaped references compile in well under a second each.
SHAPES = [(5, 7), (2, 3, 4), (1, 1, 6, 4)]


@pytest.mark.parametrize("impl, partitionable", [("threefry2x32", True),
                                                 ("threefry2x32", False), ("rbg", True)])
def test_flat_draws_equal_shaped_draws(impl, partitionable):
  key = jax.random.key(7, impl=impl)
  with jax.threefry_partitionable(partitionable):
    for shape in SHAPES[1:]:
      np.testing.assert_array_equal(flat_random.truncated_normal(key, -2.0, 2.0, shape),
                                    jax.random.truncated_normal(key, -2.0, 2.0, shape))
      np.testing.assert_array_equal(flat_random.normal(key, shape), jax.random.normal(key, shape))
      np.testing.assert_array_equal(flat_random.uniform(key, shape, jnp.float32, -3.0, 0.5),
                                    jax.random.uniform(key, shape, jnp.float32, -3.0, 0.5))
  assert flat_random.uniform(key, (4, 5), jnp.bfloat16).dtype == jnp.bfloat16


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_initializers_equal_flax_defaults(dtype):
  key = jax.random.key(3)
  for shape in SHAPES:
    np.testing.assert_array_equal(flat_random.lecun_normal()(key, shape, dtype),
                                  nn.initializers.lecun_normal()(key, shape, dtype))
    np.testing.assert_array_equal(flat_random.normal_init(0.02)(key, shape, dtype),
                                  nn.initializers.normal(0.02)(key, shape, dtype))


def test_lecun_normal_has_the_fan_in_variance():
  """Not only equal to Flax: right in itself (std 1/sqrt(fan_in), cut at 2 std)."""
  kernel = np.asarray(flat_random.lecun_normal()(jax.random.key(0), (3, 3, 64, 256)))
  std = 1.0 / np.sqrt(3 * 3 * 64)
  assert abs(kernel.std() / std - 1.0) < 0.01
  assert np.abs(kernel).max() <= 2.0 * std / 0.87962566103423978 + 1e-7
