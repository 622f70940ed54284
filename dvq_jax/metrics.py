"""Rate-distortion numbers of a VQ-VAE: bits/dim of the reconstruction and of the codes, PSNR,
SSIM, and codebook usage and perplexity from code histograms. Pure functions of arrays or floats."""

import math

import dm_pix as pix
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import xlogy


def recon_bits_per_dim(nll_nats_sum, num_dims):
  """Reconstruction bits/dim: a NLL in nats summed over `num_dims` subpixels, / (num_dims * ln 2).

  >>> recon_bits_per_dim(3072 * math.log(256), 3072)
  8.0
  """
  return nll_nats_sum / (num_dims * math.log(2))


def rate_bits_per_dim(codes_per_image: int, codebook_size: int, image_dims: int) -> float:
  """Bits/dim of the codes under a uniform prior: codes_per_image * log2 K / (H*W*C).

  >>> rate_bits_per_dim(8 * 8 * 8, 512, 32 * 32 * 3)  # CIFAR-10, dvq, L=8 codes per position
  1.5
  """
  return codes_per_image * math.log2(codebook_size) / image_dims


def psnr_from_mse(mse) -> jax.Array:
  """PSNR in dB of 8-bit images from a mean squared error in [0, 255] units: 10 log10(255^2/mse).

  >>> float(psnr_from_mse(65025.0 / 100))
  20.0
  """
  return 10.0 * jnp.log10(255.0**2 / jnp.asarray(mse, jnp.float32))


def psnr(mean_image: jax.typing.ArrayLike, images: jax.typing.ArrayLike) -> jax.Array:
  """PSNR in dB of reconstructions `(batch, H, W, C)` in [0, 255] against uint8 images, from the
  mean squared error over every subpixel of the batch.

  >>> import jax.numpy as jnp
  >>> round(float(psnr(jnp.full((1, 2, 2, 1), 10.0), jnp.zeros((1, 2, 2, 1), jnp.uint8))), 3)
  28.131
  """
  diff = jnp.asarray(mean_image, jnp.float32) - jnp.asarray(images).astype(jnp.float32)
  return psnr_from_mse(jnp.mean(jnp.square(diff)))


def ssim(mean_image: jax.typing.ArrayLike, images: jax.typing.ArrayLike) -> jax.Array:
  """Each image's structural similarity (dm-pix: 11x11 Gaussian window, sigma 1.5, averaged over
  pixels and channels) of reconstructions `(batch, H, W, C)` in [0, 255] against uint8 images.

  Images under 11 pixels a side use the largest odd window that fits.

  Returns:
    float32 `(batch,)`, 1 for identical images.

  >>> import jax.numpy as jnp
  >>> ssim(jnp.full((1, 16, 16, 3), 7.0), jnp.full((1, 16, 16, 3), 7, jnp.uint8)).tolist()
  [1.0]
  """
  a = jnp.asarray(mean_image, jnp.float32)
  b = jnp.asarray(images).astype(jnp.float32)
  window = min(11, a.shape[-3], a.shape[-2])
  return pix.ssim(a, b, max_val=255.0, filter_size=window - (1 - window % 2))


def perplexity_from_counts(counts: jax.typing.ArrayLike) -> jax.Array:
  """exp(entropy) of each codebook's code distribution: counts `(L, K)` -> `(L,)`.

  >>> import jax.numpy as jnp
  >>> perplexity_from_counts(jnp.array([[5.0, 5.0, 0.0], [1.0, 0.0, 0.0]])).tolist()
  [2.0, 1.0]
  """
  counts = jnp.asarray(counts, jnp.float32)
  probs = counts / jnp.maximum(jnp.sum(counts, axis=-1, keepdims=True), 1.0)
  return jnp.exp(-jnp.sum(xlogy(probs, probs), axis=-1))


def usage_from_counts(counts: jax.typing.ArrayLike) -> jax.Array:
  """Fraction of each codebook's K codes used at least once: counts `(L, K)` -> `(L,)`.

  >>> import jax.numpy as jnp
  >>> usage_from_counts(jnp.array([[5.0, 5.0, 0.0, 0.0]])).tolist()
  [0.5]
  """
  return jnp.mean(jnp.asarray(counts) > 0, axis=-1)


def unigram_code_bits(train_counts: jax.typing.ArrayLike, test_counts: jax.typing.ArrayLike) -> float:
  """Code length in bits of test codes under each codebook's training histogram (add-1/2).

  Codebook l's code k costs -log2((n_lk + 1/2) / (N_l + K/2)), with n_lk its count among the
  training codes of codebook l and N_l their total (Krichevsky-Trofimov smoothing, so unseen
  codes keep a finite cost). Summed over every test code of every codebook; divide by
  (test images * H*W*C) for bits/dim. A real code length: an entropy coder with these
  frequencies (sent once, or fixed from the training split) spends this many bits, up to a
  few bits of rounding.

  Args:
    train_counts: `(L, K)` code counts over the training split.
    test_counts: `(L, K)` code counts over the test split.

  >>> round(unigram_code_bits([[3.0, 0.0]], [[2.0, 0.0]]), 4)  # p(code 0) = 3.5 / 4, twice
  0.3853
  """
  train = np.asarray(train_counts, np.float64)
  test = np.asarray(test_counts, np.float64)
  if train.ndim != 2 or train.shape != test.shape:
    raise ValueError(f"train_counts {train.shape} and test_counts {test.shape} must both be (L, K)")
  probs = (train + 0.5) / (train.sum(axis=-1, keepdims=True) + 0.5 * train.shape[-1])
  return float(-np.sum(test * np.log2(probs)))
