"""`jax.random` draws made as one flat vector, and the Flax initializers built on them.

XLA:CPU (jax 0.10) compiles a threefry draw of a multi-dimensional shape far more slowly than
the same number of values as a vector: `jax.random.bits(key, (3, 3, 8, 9))` took 12.5 s to
compile on a Zen 3 core, shape `(648,)` 0.2 s, and a small VQ-VAE's eager `model.init` spent
most of its 20 s compiling its conv kernels' draws (benchmarks/RESULTS.md, "Random draws drawn
flat"). With threefry (partitionable or not) and rbg keys, the draw of shape `s` *is* the draw
of shape `(prod(s),)` reshaped, bit for bit (tests/test_flat_random.py), so these give exactly
the numbers of `jax.random` and of Flax's default initializers, only compiled sooner. Both
models' kernels and embeddings, the codebooks and the static-prior blobs are drawn here. Pure
JAX; an initializer is `(key, shape, dtype) -> array`.
"""

import math
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

Initializer = Callable[..., jax.Array]

# Flax's variance_scaling: the std of a standard normal truncated to [-2, 2].
_TRUNCATED_STD = .87962566103423978


def _flat(draw: Callable[[tuple[int]], jax.Array], shape: Sequence[int]) -> jax.Array:
  """`draw((n,))` reshaped to `shape`, n = prod(shape)."""
  shape = tuple(shape)
  return draw((math.prod(shape),)).reshape(shape)


def truncated_normal(key: jax.Array, lower: float, upper: float, shape: Sequence[int],
                     dtype=jnp.float32) -> jax.Array:
  """`jax.random.truncated_normal(key, lower, upper, shape, dtype)`, drawn flat.

  >>> import jax, numpy as np
  >>> key = jax.random.key(0)
  >>> np.array_equal(truncated_normal(key, -2.0, 2.0, (2, 3, 4)),
  ...                jax.random.truncated_normal(key, -2.0, 2.0, (2, 3, 4)))
  True
  """
  return _flat(lambda size: jax.random.truncated_normal(key, lower, upper, size, dtype), shape)


def normal(key: jax.Array, shape: Sequence[int], dtype=jnp.float32) -> jax.Array:
  """`jax.random.normal(key, shape, dtype)`, drawn flat."""
  return _flat(lambda size: jax.random.normal(key, size, dtype), shape)


def uniform(key: jax.Array, shape: Sequence[int], dtype=jnp.float32, minval: float = 0.0,
            maxval: float = 1.0) -> jax.Array:
  """`jax.random.uniform(key, shape, dtype, minval, maxval)`, drawn flat."""
  return _flat(lambda size: jax.random.uniform(key, size, dtype, minval, maxval), shape)


def lecun_normal() -> Initializer:
  """`flax.linen.initializers.lecun_normal()`, the default kernel init of `nn.Dense`, `nn.Conv`
  and `nn.ConvTranspose`, drawn flat: truncated normal with variance 1 / fan_in, fan_in = the
  product of all but the last (output) axis of the kernel."""
  def init(key: jax.Array, shape: Sequence[int], dtype=jnp.float32) -> jax.Array:
    shape = tuple(shape)
    fan_in = shape[-2] * (math.prod(shape) / shape[-2] / shape[-1])  # as jax computes it
    variance = jnp.array(1.0 / fan_in, dtype=dtype)
    stddev = jnp.sqrt(variance) / jnp.array(_TRUNCATED_STD, dtype)
    return truncated_normal(key, -2, 2, shape, dtype) * stddev
  return init


def normal_init(stddev: float) -> Initializer:
  """`flax.linen.initializers.normal(stddev)`, drawn flat."""
  def init(key: jax.Array, shape: Sequence[int], dtype=jnp.float32) -> jax.Array:
    return normal(key, shape, dtype) * jnp.array(stddev, dtype)
  return init
