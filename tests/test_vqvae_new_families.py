"""The new families and options in the VQ-VAE by config: bsq, rfsq, rlfq and simvq train and
evaluate on the demo data, the tokenizer reads their codes, the eval padding mask reaches the
quantizer, and bad values fail in one line."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dvq_jax import quantizers as q
from dvq_jax import tokenizer as tokenizer_lib
from dvq_jax import vqvae
from dvq_jax.errors import ConfigError
from dvq_jax.vqvae import objective
from dvq_jax.vqvae import train
from tests import config_files
from tests.test_objective import IMAGE_SHAPE
from tests.test_objective import tiny_config

# demo:small: L = 2, D = 4, K = 16, num_stages = 2, fsq_levels = (8, 5, 5, 5).
_RUNS = {
    "bsq": ({}, 2, 16),
    "rfsq": ({}, 4, 1000),
    "rlfq": ({}, 4, 16),
    "simvq": ({"quantizer": "dvq", "codebook_parameterization": "simvq"}, 2, 16),
}


@pytest.mark.parametrize("name", sorted(_RUNS))
def test_demo_trains_evaluates_and_tokenizes(tmp_path, name):
  fields, columns, alphabet = _RUNS[name]
  config = config_files.load("configs/demo.py:small")
  with config.unlocked():
    config.quantizer = name
    config.update(fields)
    config.num_train_steps = 1
    config.eval_every_steps = 1
    config.checkpoint_every_steps = 1
    config.num_recon_images = 0
  result = train.train_and_evaluate(config, str(tmp_path))
  assert np.isfinite(result["recon_bits_per_dim"])
  np.testing.assert_allclose(result["rate_bits_per_dim"],
                             64 * columns * np.log2(alphabet) / (32 * 32 * 3), rtol=1e-6)
  tok = tokenizer_lib.Tokenizer.from_workdir(str(tmp_path), batch_size=4)
  assert (tok.num_codebooks, tok.codebook_size) == (columns, alphabet)
  images = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
  codes = tok.encode(images)
  assert codes.shape == (3, 8, 8, columns) and 0 <= codes.min() and codes.max() < alphabet
  assert tok.decode(codes).shape == images.shape


def test_simvq_trains_the_map_not_the_basis_and_lookup_matches():
  config = tiny_config("dvq", "mse")
  config.codebook_parameterization = "simvq"
  model = vqvae.build_model(config, IMAGE_SHAPE)
  images = jnp.asarray(np.random.default_rng(1).integers(0, 256, (3, *IMAGE_SHAPE)), jnp.uint8)
  params = model.init(jax.random.key(0, impl="rbg"), images)["params"]
  basis, w = params["quantize"]["codebooks"], params["quantize"]["simvq_projection"]
  assert w.shape == (2, 4, 4)
  grads = jax.grad(lambda p: model.apply({"params": p}, images).quant.loss)(params)["quantize"]
  assert not np.any(grads["codebooks"]) and np.any(grads["simvq_projection"])
  params["quantize"]["simvq_projection"] = w * 1.5
  out = model.apply({"params": params}, images)
  z = model.apply({"params": params}, images, method=model.latents)
  ref = q.depthwise_quantize(z.astype(jnp.float32), basis @ (w * 1.5))
  np.testing.assert_array_equal(out.quant.codes, ref.codes)
  decoded = model.apply({"params": params}, out.quant.codes, 
                          method=lambda m, c: m.quantize.lookup(c))
  np.testing.assert_allclose(decoded, ref.quantized, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("quantizer", ["dvq", "bsq", "svq"])
def test_eval_padding_mask_reaches_the_quantizer(quantizer):
  config = tiny_config(quantizer, "mse")
  model = vqvae.build_model(config, IMAGE_SHAPE)
  images = jnp.asarray(np.random.default_rng(2).integers(0, 256, (4, *IMAGE_SHAPE)), jnp.uint8)
  params = model.init(jax.random.key(0, impl="rbg"), images)["params"]
  mask = jnp.array([True, False, True, False])
  masked = model.apply({"params": params}, images, mask).quant
  alone = model.apply({"params": params}, images[::2]).quant
  np.testing.assert_array_equal(masked.codes[::2], alone.codes)
  assert not np.any(masked.codes[1::2])
  for field in ("loss", "perplexity", "usage"):
    np.testing.assert_allclose(getattr(masked, field), getattr(alone, field), rtol=1e-5)


@pytest.mark.parametrize("fields,match", [
    ({"quantizer": "bsq", "bsq_group_size": 3}, "bsq_group_size = 3 with codebook_dim = 4"),
    ({"quantizer": "bsq", "bsq_group_size": -1}, "bsq_group_size = -1"),
    ({"quantizer": "bsq", "codebook_dim": 20}, "bsq_group_size = 0 with codebook_dim = 20"),
    ({"quantizer": "rlfq", "codebook_dim": 17}, "at most 16"),
    ({"quantizer": "rfsq", "fsq_levels": ()}, "fsq_levels = \\(\\)"),
    ({"codebook_parameterization": "lora"}, "codebook_parameterization = 'lora' is unknown"),
    ({"quantizer": "bsq", "codebook_parameterization": "simvq"}, "bsq has none"),
    ({"quantizer": "fsq", "code_temperature": 1.0}, "applies to quantizers dvq, vq"),
    ({"code_temperature": -1.0}, "code_temperature = -1.0"),
    ({"code_relaxation": "soft"}, "code_relaxation = 'soft' is unknown"),
    ({"code_temperature": 1.0, "cosine": True}, "works with plain codebooks only"),
])
def test_bad_new_fields_fail_in_one_line(fields, match):
  config = tiny_config()
  config.update(fields)
  with pytest.raises(ConfigError, match=match) as error:
    vqvae.build_model(config, IMAGE_SHAPE)
  assert "\n" not in str(error.value)


@pytest.mark.parametrize("relaxation", ["straight_through", "gumbel_softmax"])
def test_sampled_codes_in_training_nearest_codes_in_evaluation(relaxation):
  config = tiny_config("dvq", "mse")
  config.code_temperature, config.code_relaxation = 2.0, relaxation
  model = vqvae.build_model(config, IMAGE_SHAPE)
  images = jnp.asarray(np.random.default_rng(3).integers(0, 256, (8, *IMAGE_SHAPE)), jnp.uint8)
  params = model.init(jax.random.key(0, impl="rbg"), images)["params"]
  nearest = model.apply({"params": params}, images).quant  # no "codes" rng: nearest codes
  z = model.apply({"params": params}, images, method=model.latents).astype(jnp.float32)
  np.testing.assert_array_equal(nearest.codes,
                                q.depthwise_quantize(z, params["quantize"]["codebooks"]).codes)
  key = jax.random.key(5)
  (loss, _), grads, (_, codes) = objective.loss_and_gradient(params, model, images, key=key)
  # The key the bottleneck draws from the "codes" rng, one per slice as in `q.depthwise`.
  drawn = model.apply({"params": params}, images, rngs={"codes": key},
                      method=lambda m, _: m.quantize.make_rng("codes"))
  sampled = q.depthwise(q.stochastic_quantize, 2)(z, params["quantize"]["codebooks"], key=drawn,
                                                  temperature=2.0, relaxation=relaxation)
  np.testing.assert_array_equal(codes, sampled.codes)
  assert np.any(np.asarray(codes) != np.asarray(nearest.codes))
  assert np.isfinite(loss) and np.any(grads["quantize"]["codebooks"])
