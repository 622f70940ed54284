"""The Depthwise Quantization options of the VQ-VAE: learned slice projections
(`config.slice_projection`) and two levels (`config.levels`): shapes, gradients, the rate of both
levels against numpy, learning, and bad values."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds

from dvq_jax import metrics
from dvq_jax import tokenizer as tokenizer_lib
from dvq_jax import vqvae
from dvq_jax.errors import ConfigError
from dvq_jax.vqvae import objective
from dvq_jax.vqvae import train
from dvq_jax.vqvae.model import VQVAE
from tests.vqvae_fixtures import IMAGE_SHAPE
from tests.vqvae_fixtures import adam_steps
from tests.vqvae_fixtures import small
from tests.vqvae_fixtures import smooth_images
from tests.vqvae_fixtures import tiny_config


def _model(**fields):
  """tiny_config (L = 2, K = 16, D = 4, 8x8 images -> 2x2 latents) with `fields` set."""
  config = tiny_config("dvq", "mse")
  for key, value in fields.items():
    config[key] = value
  model = vqvae.build_model(config, IMAGE_SHAPE)
  images = smooth_images()
  params = model.init(jax.random.key(0, impl="rbg"), images)["params"]
  return model, params, images


def test_defaults_build_the_plain_model():
  model = vqvae.build_model(tiny_config("dvq", "mse"), IMAGE_SHAPE)
  assert type(model) is VQVAE
  shapes = jax.eval_shape(model.init, jax.random.key(0, impl="rbg"), smooth_images())
  assert set(shapes["params"]) == {"encoder", "quantize", "decoder"}


def test_learned_projection_against_numpy_and_gradients_reach_every_codebook():
  model, params, images = _model(slice_projection="learned")
  encoded = np.asarray(model.apply({"params": params}, images, method=VQVAE.latents), np.float64)
  kernel = np.asarray(params["projection"]["kernel"], np.float64)  # (L, C, D)
  bias = np.asarray(params["projection"]["bias"], np.float64)  # (L, D)
  assert kernel.shape == (2, 8, 4) and bias.shape == (2, 4)
  expected = np.concatenate([encoded @ kernel[l] + bias[l] for l in range(2)], axis=-1)
  latents = model.apply({"params": params}, images, method=model.latents)
  np.testing.assert_allclose(latents, expected, rtol=1e-5, atol=1e-5)
  out = model.apply({"params": params}, images)
  assert out.quant.codes.shape == (4, 2, 2, 2) and out.head.shape == (4, *IMAGE_SHAPE)
  # The quantizer sees the projections: its codes are those of the projected latents.
  np.testing.assert_array_equal(
      out.quant.codes, model.apply({"params": params}, latents, method=lambda m, z: m.quantize(z).codes))
  grads = jax.grad(lambda p: objective.loss_fn(p, model, images)[0])(params)
  norms = np.linalg.norm(np.asarray(grads["projection"]["kernel"]).reshape(2, -1), axis=1)
  assert np.all(norms > 0), norms


def test_two_levels_shapes_codes_and_gradients():
  model, params, images = _model(levels=2)
  assert {"top_encoder", "top_quantize", "top_decoder"} <= set(params)
  out = model.apply({"params": params}, images)
  # 2x2 bottom positions, then the 1x1 top, L = 2 columns.
  assert out.quant.codes.shape == (4, 5, 2)
  assert out.quant.perplexity.shape == out.quant.usage.shape == (4,)
  assert out.head.shape == (4, *IMAGE_SHAPE)
  np.testing.assert_array_equal(model.apply({"params": params}, images, method=model.encode),
                                out.quant.codes)
  grads = jax.grad(lambda p: objective.loss_fn(p, model, images)[0])(params)
  for name in ("top_encoder", "top_quantize", "top_decoder", "encoder", "quantize"):
    total = sum(float(jnp.sum(jnp.abs(g))) for g in jax.tree.leaves(grads[name]))
    assert total > 0, name
  with pytest.raises(ValueError, match="2-level"):
    model.apply({"params": params}, out.quant.codes, method=model.decode)


def test_two_level_rate_and_code_counts_against_numpy():
  config = tiny_config("dvq", "mse")
  config.levels = 2
  # 32x32x3 images, 2 downsamples: 8x8 bottom and 4x4 top positions, L = 2 codes of K = 16.
  codes_per_image = vqvae.codes_per_image(config, (32, 32, 3))
  assert codes_per_image == (64 + 16) * 2
  rate = metrics.rate_bits_per_dim(codes_per_image, vqvae.code_alphabet_size(config), 3072)
  np.testing.assert_allclose(rate, (64 + 16) * 2 * 4 / 3072, rtol=1e-12)
  model = vqvae.build_model(config, (32, 32, 3))
  rng = np.random.default_rng(0)
  codes = rng.integers(0, 16, (3, 80, 2))
  mask = np.array([1, 1, 0])
  counts = np.asarray(objective.code_counts(model, jnp.asarray(codes), jnp.asarray(mask)))
  expected = np.zeros((4, 16))
  for b in range(2):  # the masked third image counts nowhere
    for l in range(2):
      expected[l] += np.bincount(codes[b, :64, l], minlength=16)  # bottom codebook l
      expected[2 + l] += np.bincount(codes[b, 64:, l], minlength=16)  # top codebook l
  np.testing.assert_array_equal(counts, expected)


@pytest.mark.parametrize("fields", [{"slice_projection": "learned"}, {"levels": 2},
                                    {"slice_projection": "learned", "levels": 2}])
def test_a_few_adam_steps_lower_the_loss(fields):
  model, params, images = _model(**fields)
  _, bits = adam_steps(model, params, images, 32)
  assert bits[-1] < bits[0] - 0.1, bits


@pytest.mark.slow
def test_two_learned_levels_train_and_evaluate_with_both_levels_rate(tmp_path):
  config = small(num_train_steps=1, eval_every_steps=1, checkpoint_every_steps=1,
                  num_recon_images=0, slice_projection="learned", levels=2)
  with tfds.testing.mock_data(num_examples=20):
    train.train_and_evaluate(config, str(tmp_path))
  saved = json.loads((tmp_path / "eval.json").read_text())
  # 32x32 images: 8x8 bottom + 4x4 top positions, L codes of K values each.
  bits = (64 + 16) * config.num_codebooks * np.log2(config.codebook_size)
  np.testing.assert_allclose(saved["rate_bits_per_dim"], bits / 3072, rtol=1e-9)
  assert len(saved["usage"]) == len(saved["perplexity"]) == 2 * config.num_codebooks


@pytest.mark.parametrize("fields,match", [
    ({"slice_projection": "learn"}, "config.slice_projection = 'learn' is unknown"),
    ({"slice_projection": "learned", "quantizer": "vq"}, "needs a sliced quantizer"),
    ({"slice_projection": "learned", "slice_sizes": (4, 3)}, "set slice_sizes = \\(\\)"),
    ({"levels": 3}, "config.levels = 3; set it to 1 or 2"),
    ({"levels": 2, "quantizer": "svq"}, "config.levels = 2 needs quantizer"),
    ({"levels": 2, "codebook_update": "ema"}, "gradient only"),
])
def test_bad_values_raise_one_line(fields, match):
  config = tiny_config("dvq", "mse")
  for key, value in fields.items():
    config[key] = value
  with pytest.raises(ConfigError, match=match) as error:
    vqvae.build_model(config, IMAGE_SHAPE)
  assert "\n" not in str(error.value)


def test_two_level_latent_sides_must_be_even():
  config = tiny_config("dvq", "mse")
  config.levels = 2
  with pytest.raises(ConfigError, match="halves the 3x3 latent grid"):
    vqvae.codes_per_image(config, (12, 12, 3))


def test_the_tokenizer_refuses_two_levels():
  config = tiny_config("dvq", "mse")
  config.levels = 2
  with pytest.raises(ConfigError, match="reads one latent grid"):
    tokenizer_lib.Tokenizer(config, None, IMAGE_SHAPE, checkpoint_step=0)
