"""A stand-in for `dvq_jax.prior.load(P)` with a deterministic toy tokenizer: codec tests that
need no trained model (the real-model tests live in tests/test_codec.py)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from dvq_jax import flat_random
from dvq_jax.vqvae import likelihoods


class FakeTokenizer:
  """8x8x3 images, a 2x2 grid of L=2 codes from K=8, a fixed random head per code."""

  codebook_size = 8
  num_codebooks = 2
  grid = (2, 2)
  image_shape = (8, 8, 3)

  def __init__(self, likelihood: str = "logistic_mixture", seed: int = 0, digest: str = "a" * 64):
    self.likelihood = likelihood
    self.checkpoint_digest = digest
    channels = likelihoods.num_head_channels(likelihood, 3, 3)
    scale = 0.3 if likelihood == "mse" else 1.0
    self._table = scale * flat_random.normal(jax.random.PRNGKey(seed), (2, 8, channels))

  def encode(self, images):
    blocks = np.asarray(images, np.float64).reshape(-1, 2, 4, 2, 4, 3)
    level = blocks.mean(axis=(2, 4, 5)).astype(np.int32) // 4  # in [0, 64)
    return np.stack([level % 8, (level // 8) % 8], axis=-1).astype(np.int32)

  @functools.partial(jax.jit, static_argnums=0)
  def decode_head(self, codes):
    head = self._table[0][codes[..., 0]] + self._table[1][codes[..., 1]]  # (B, 2, 2, C_out)
    if self.likelihood == "mse":  # the fixed scale is sharp: centre the mean on the block's level
      level = (codes[..., :1] + 8 * codes[..., 1:]).astype(jnp.float32)
      head = 0.1 * head + (4 * level + 2) / 127.5 - 1
    return jnp.repeat(jnp.repeat(head, 4, axis=1), 4, axis=2)

  def decode(self, codes):
    mean = likelihoods.mean_image(self.likelihood, self.decode_head(jnp.asarray(codes)), 3)
    return np.asarray(jnp.round(mean)).astype(np.uint8)


class FakePrior:
  """A first-order Markov chain over the T = 8 tokens (position-major order)."""

  num_tokens = 8

  def __init__(self, tokenizer, digest: str = "b" * 64):
    self.tokenizer = tokenizer
    self.checkpoint_digest = digest
    self._logits = flat_random.normal(jax.random.PRNGKey(7), (8, 8, 8))

  def to_sequence(self, codes):
    return np.asarray(codes).reshape(len(codes), -1)

  def from_sequence(self, tokens):
    return jnp.asarray(tokens).reshape(-1, 2, 2, 2)

  def init_cache(self, batch_size):
    return jnp.zeros((batch_size,), jnp.int32)

  @functools.partial(jax.jit, static_argnums=0)
  def step(self, cache, previous, t):
    previous = jnp.where(t == 0, 0, previous)
    return jax.nn.log_softmax(self._logits[t][previous], axis=-1), cache + previous
