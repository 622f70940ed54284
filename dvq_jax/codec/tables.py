"""Probability tables for the entropy coder, computed identically by the encoder and the decoder.

Both ends call the same jitted functions on the same inputs (same shapes, same padding) and
turn the float32 log-probabilities into the coder's integer form in one place, `quantize`.
A float difference between the ends would desynchronise the coder; the CRC of the decoded
images in the file header turns that into an error instead of a wrong image.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from dvq_jax.vqvae import context
from dvq_jax.vqvae import likelihoods

# Every table sums to 2**PRECISION_BITS and gives each value at least one unit, so any symbol
# is encodable. Integers below 2**24 are exact in float32, the form constriction receives.
PRECISION_BITS = 20


def quantize(log_probs: np.ndarray) -> np.ndarray:
  """Float log-probabilities `(n, A)` -> integer counts `(n, A)` (float32), each row summing to
  2**PRECISION_BITS, every entry >= 1.

  Deterministic numpy float64 arithmetic: floor(p * (2**P - A)) + 1, and the rounding remainder
  added to each row's most probable value (the first one on ties). NaN entries count as
  probability 0; a row with no finite entry becomes uniform.

  >>> quantize(np.array([[0.0, 0.0, -np.inf]])).astype(int).tolist()
  [[524288, 524287, 1]]
  """
  log_probs = np.asarray(log_probs, np.float64)
  num_values = log_probs.shape[-1]
  log_probs = np.where(np.isnan(log_probs), -np.inf, log_probs)
  top_log = np.max(log_probs, axis=-1, keepdims=True)
  log_probs = np.where(np.isfinite(top_log), log_probs, 0.0)
  probs = np.exp(log_probs - np.where(np.isfinite(top_log), top_log, 0.0))
  probs /= np.sum(probs, axis=-1, keepdims=True)
  counts = np.floor(probs * float(2**PRECISION_BITS - num_values)) + 1.0
  top = np.argmax(counts, axis=-1)
  rows = np.arange(len(counts))
  counts[rows, top] += 2.0**PRECISION_BITS - np.sum(counts, axis=-1)
  return counts.astype(np.float32)


@functools.partial(jax.jit, static_argnames=("likelihood", "channel"))
def channel_log_pmf(likelihood: str, head: jax.Array, images: jax.Array, channel: int) -> jax.Array:
  """Jitted `likelihoods.channel_log_pmf`: `(batch, H, W, 256)` log-probabilities of channel c."""
  return likelihoods.channel_log_pmf(likelihood, head, images, channel)


def subpixel_counts(likelihood: str, head: jax.Array, images: np.ndarray, channel: int,
                    count: int) -> np.ndarray:
  """Coder tables `(count * H * W, 256)` for channel `channel` of the first `count` images.

  `images` uint8 `(batch, H, W, C)`: channels >= `channel` are zeroed here, so the encoder
  (which knows them) and the decoder (which does not yet) pass identical arrays.
  """
  known = np.array(images, np.uint8, copy=True)
  known[..., channel:] = 0
  log_pmf = channel_log_pmf(likelihood, head, jnp.asarray(known), channel)
  return quantize(np.asarray(log_pmf[:count]).reshape(-1, 256))


def known_pixels(images: np.ndarray, group: int) -> np.ndarray:
  """A copy of uint8 `(batch, H, W, C)` with the pixels of groups >= `group` zeroed, so the
  encoder (which knows them) and the decoder (which does not yet) pass identical arrays."""
  known = np.asarray(context.known_before(jnp.asarray(images), group))
  return np.array(known, np.uint8, copy=True)
