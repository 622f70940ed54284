"""Likelihood heads against float64 numpy references, and normalisation over all 256 values."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special

from dvq_jax import backends
from dvq_jax import flat_random
from dvq_jax.vqvae import likelihoods
from tests import likelihood_reference


def _images(rng, shape):
  images = rng.integers(0, 256, shape)
  flat = images.reshape(-1)
  flat[:5] = 0  # the edge bins must be exercised
  flat[5:10] = 255
  return images.astype(np.uint8)


def test_categorical_nll_and_mean_match_numpy():
  rng = np.random.default_rng(0)
  head = rng.normal(0, 3, (2, 3, 4, 3 * 256)).astype(np.float32)
  images = _images(rng, (2, 3, 4, 3))
  logits = head.astype(np.float64).reshape(2, 3, 4, 3, 256)
  log_probs = special.log_softmax(logits, axis=-1)
  picked = np.take_along_axis(log_probs, images[..., None].astype(int), axis=-1)[..., 0]
  expected = -picked.sum(axis=(1, 2, 3))
  np.testing.assert_allclose(likelihoods.nll("categorical256", head, images), expected, rtol=1e-5)
  mean = (np.exp(log_probs) * np.arange(256)).sum(-1)
  np.testing.assert_allclose(likelihoods.mean_image("categorical256", head), mean, rtol=1e-4,
                             atol=1e-3)
  np.testing.assert_allclose(likelihoods.train_loss("categorical256", head, images), expected,
                             rtol=1e-5)


@pytest.mark.parametrize("platform", ["cpu", "tpu"])  # the gather and the select-sum forms
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_categorical_nll_gradient_is_onehot_minus_softmax(platform, dtype):
  """Value and gradient of the 256-way NLL against float64 numpy, in each backend's form; a
  bfloat16 head gets a bfloat16 gradient of its own logits, reduced in float32."""
  rng = np.random.default_rng(3)
  head = jnp.asarray(rng.normal(0, 3, (2, 2, 3, 3 * 256)), dtype)
  images = _images(rng, (2, 2, 3, 3))
  logits = np.asarray(head, np.float64).reshape(2, 2, 3, 3, 256)
  log_probs = special.log_softmax(logits, axis=-1)
  weights = np.array([1.0, -2.0])  # per image, so the cotangent is not uniform
  picked = np.take_along_axis(log_probs, images[..., None].astype(int), -1)
  expected = -np.sum(weights[:, None, None, None, None] * picked)
  onehot = np.arange(256) == images[..., None]
  expected_grad = (weights[:, None, None, None, None] * (np.exp(log_probs) - onehot))
  with backends.compiling_for(platform):
    value, grad = jax.value_and_grad(
        lambda h: jnp.sum(weights * likelihoods.nll("categorical256", h, images)))(head)
  tolerance = 1e-5 if dtype == jnp.float32 else 1e-2
  assert grad.dtype == dtype
  np.testing.assert_allclose(value, expected, rtol=tolerance)
  np.testing.assert_allclose(np.asarray(grad, np.float64).reshape(expected_grad.shape),
                             expected_grad, atol=tolerance)


def test_logistic_mixture_nll_matches_pixelcnnpp_formula():
  rng = np.random.default_rng(1)
  num_mixtures = 3
  batch, height, width = 3, 4, 4
  split = np.concatenate([
      rng.normal(0, 1, (batch, height, width, 1, num_mixtures)),  # mixture logits
      rng.uniform(-1.2, 1.2, (batch, height, width, 3, num_mixtures)),  # means
      rng.uniform(-9.0, 0.0, (batch, height, width, 3, num_mixtures)),  # log scales (< -7 too)
      rng.normal(0, 1, (batch, height, width, 3, num_mixtures)),  # coefficients
  ], axis=-2)
  head = split.reshape(batch, height, width, -1).astype(np.float32)
  images = _images(rng, (batch, height, width, 3))
  expected, branches = likelihood_reference.logistic_mixture_nll(head, images, num_mixtures)
  assert {0, 1, 2, 3} <= set(np.unique(branches))  # edges, bins and masses below 1e-5
  got = likelihoods.nll("logistic_mixture", head, images)
  np.testing.assert_allclose(got, expected, rtol=2e-5)
  assert likelihoods.num_head_channels("logistic_mixture", 3, num_mixtures) == head.shape[-1]


def _all_values(num_channels):
  values = np.array(list(itertools.product(range(256), repeat=num_channels)), np.uint8)
  return values.reshape(-1, 1, 1, num_channels)


@pytest.mark.parametrize("mean,log_scale", [(0.3, -3.0), (-0.99, -1.0), (1.4, 0.5), (0.0, -7.5)])
def test_logistic_probabilities_sum_to_one_single_channel(mean, log_scale):
  images = _all_values(1)
  head = np.broadcast_to(np.array([0.0, mean, log_scale], np.float32), (256, 1, 1, 3))
  probs = np.exp(-np.asarray(likelihoods.nll("logistic_mixture", head, images), np.float64))
  assert abs(probs.sum() - 1.0) < 1e-5


def test_logistic_mixture_joint_over_two_channels_is_normalised_and_has_the_documented_mean():
  """C=2, M=2 with channel coupling: sum over all 65536 (v0, v1) pairs, and E[v] = mean_image."""
  images = _all_values(2)
  # Layout per mixture [logit | means (2) | log scales (2) | coefficient (1)], M = 2 columns.
  split = np.array([[0.3, -0.2],
                    [0.2, -0.3], [-0.1, 0.25],
                    [-3.0, -2.5], [-2.8, -3.2],
                    [0.4, -0.6]], np.float32)
  head = np.broadcast_to(split.reshape(-1), (len(images), 1, 1, split.size))
  probs = np.exp(-np.asarray(likelihoods.nll("logistic_mixture", head, images), np.float64))
  assert abs(probs.sum() - 1.0) < 1e-5
  expected_mean = (probs[:, None] * images.reshape(-1, 2)).sum(0)
  mean = likelihoods.mean_image("logistic_mixture", head[:1], image_channels=2)
  np.testing.assert_allclose(mean.reshape(2), expected_mean, atol=0.05)


def test_logistic_mean_image_is_not_dragged_by_an_unlikely_far_component():
  """M=2, C=1: weight ~5e-5 on a component centred at 1e4 moves the exact mean by < 0.01."""
  images = _all_values(1)
  # Layout per mixture [logit | mean | log scale], M = 2 columns.
  split = np.array([[10.0, 0.0], [0.1, 1e4], [-3.0, -3.0]], np.float32)
  head = np.broadcast_to(split.reshape(-1), (256, 1, 1, 6))
  probs = np.exp(-np.asarray(likelihoods.nll("logistic_mixture", head, images), np.float64))
  expected = (probs * np.arange(256)).sum()
  mean = likelihoods.mean_image("logistic_mixture", head[:1], image_channels=1)
  np.testing.assert_allclose(mean.reshape(()), expected, atol=0.05)


@pytest.mark.parametrize("mean", [0.2, -0.97, 1.3])
def test_mse_nll_is_a_normalised_discrete_gaussian(mean):
  images = _all_values(1)
  head = np.full((256, 1, 1, 1), mean, np.float32)
  log_probs = -np.asarray(likelihoods.nll("mse", head, images), np.float64)
  assert abs(np.exp(log_probs).sum() - 1.0) < 1e-5
  # Interior bins: the exact Gaussian mass of the bin, from scipy in float64.
  sigma = likelihoods.GAUSSIAN_SCALE
  centers = np.arange(1, 255) / 127.5 - 1.0
  hi, lo = (centers + 1 / 255 - mean) / sigma, (centers - 1 / 255 - mean) / sigma
  mass = np.where(centers > mean, special.ndtr(-lo) - special.ndtr(-hi),
                  special.ndtr(hi) - special.ndtr(lo))
  big = mass > 1e-30
  np.testing.assert_allclose(log_probs[1:255][big], np.log(mass[big]), rtol=1e-4, atol=1e-4)
  if abs(mean) < 0.5:
    expected = (np.exp(log_probs) * np.arange(256)).sum()
    np.testing.assert_allclose(likelihoods.mean_image("mse", head[:1]).reshape(()), expected,
                               atol=0.01)


def test_mse_trains_on_squared_error():
  rng = np.random.default_rng(2)
  head = rng.uniform(-1, 1, (2, 3, 3, 3)).astype(np.float32)
  images = _images(rng, (2, 3, 3, 3))
  expected = np.square(head - (images / 127.5 - 1.0)).sum(axis=(1, 2, 3))
  np.testing.assert_allclose(likelihoods.train_loss("mse", head, images), expected, rtol=1e-5)


@pytest.mark.parametrize("name", likelihoods.NAMES)
def test_gradients_are_finite_at_extreme_parameters(name):
  channels = likelihoods.num_head_channels(name, 3, 2)
  images = jnp.array([0, 255, 128, 1, 254, 77], jnp.uint8).reshape(2, 1, 1, 3)
  for scale in (1.0, 100.0, 1e4):
    head = scale * flat_random.normal(jax.random.key(0), (2, 1, 1, channels))
    value, grad = jax.value_and_grad(lambda h: jnp.sum(likelihoods.nll(name, h, images)))(head)
    assert np.isfinite(value) and np.all(np.isfinite(grad)), (name, scale)


def test_uniform_categorical_is_eight_bits():
  images = jnp.zeros((1, 2, 2, 3), jnp.uint8)
  nats = likelihoods.nll("categorical256", jnp.zeros((1, 2, 2, 768)), images)
  assert float(nats[0]) == pytest.approx(12 * math.log(256), rel=1e-6)


def test_bad_name_raises():
  with pytest.raises(ValueError, match="likelihood 'gauss' is unknown"):
    likelihoods.num_head_channels("gauss", 3, 10)
  with pytest.raises(ValueError, match="images must be uint8"):
    likelihoods.nll("mse", jnp.zeros((1, 2, 2, 3)), jnp.zeros((1, 2, 2, 3)))
