"""The toolbox in the VQ-VAE by config: cosine codes, the rotation trick, and the rvq, fsq and
lfq quantizers (layouts, gradients, rates in eval.json, learning, bad values, the tokenizer)."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import tensorflow_datasets as tfds

from dvq_jax import metrics
from dvq_jax import quantizers as q
from dvq_jax import tokenizer as tokenizer_lib
from dvq_jax import vqvae
from dvq_jax.errors import ConfigError
from dvq_jax.vqvae import evaluate
from dvq_jax.vqvae import objective
from dvq_jax.vqvae import train
from tests.conftest import rotation_matrix
from tests.vqvae_fixtures import IMAGE_SHAPE
from tests.vqvae_fixtures import adam_steps
from tests.vqvae_fixtures import smooth_images
from tests.vqvae_fixtures import tiny_config
from tests.vqvae_fixtures import small

# tiny_config: L = 2, K = 16, D = 4; rvq M = 2 stages; fsq levels (8, 5, 5, 5); 2x2 latents.
FAMILIES = {
    "rvq": {"codes": (3, 2, 2, 4), "alphabet": 16, "channels": 8},
    "fsq": {"codes": (3, 2, 2, 2), "alphabet": 1000, "channels": 8},
    "lfq": {"codes": (3, 2, 2, 2), "alphabet": 16, "channels": 8},
}


def _images(batch=3, seed=0):
  rng = np.random.default_rng(seed)
  return jnp.asarray(rng.integers(0, 256, (batch, *IMAGE_SHAPE)), jnp.uint8)


def _model(quantizer, **fields):
  config = tiny_config(quantizer, "mse")
  for key, value in fields.items():
    config[key] = value
  model = vqvae.build_model(config, IMAGE_SHAPE)
  params = model.init(jax.random.key(0, impl="rbg"), _images())["params"]
  return config, model, params


@pytest.mark.parametrize("quantizer", sorted(FAMILIES))
def test_family_codes_lookup_and_gradients(quantizer):
  _, model, params = _model(quantizer)
  images = _images()
  z = model.apply({"params": params}, images, method=model.latents)
  out = model.apply({"params": params}, images)
  spec = FAMILIES[quantizer]
  assert z.shape[-1] == spec["channels"]
  assert out.quant.codes.shape == spec["codes"]
  assert model.alphabet_size == spec["alphabet"]
  codes = np.asarray(out.quant.codes)
  assert codes.min() >= 0 and codes.max() < spec["alphabet"]
  # The codes against the pure functions on the same latents, slice by slice.
  slices = np.asarray(z).reshape(3, 2, 2, 2, -1)
  for l in range(2):
    if quantizer == "rvq":
      ref = q.residual_quantize(jnp.asarray(slices[..., l, :]),
                                params["quantize"]["codebooks"][l]).codes
      np.testing.assert_array_equal(codes[..., 2 * l:2 * l + 2], ref)
    elif quantizer == "fsq":
      ref = q.finite_scalar_quantize(jnp.asarray(slices[..., l, :]), (8, 5, 5, 5)).codes
      np.testing.assert_array_equal(codes[..., l], ref)
    else:  # lfq: bit i of the code is the sign of dimension i
      bits = (slices[..., l, :] > 0).astype(np.int64)
      np.testing.assert_array_equal(codes[..., l], (bits << np.arange(4)).sum(-1))
  # decode(encode(x)) is the forward head: lookup returns the forward pass's quantized vectors.
  head = model.apply({"params": params}, out.quant.codes, method=model.decode)
  np.testing.assert_allclose(head, out.head, atol=1e-5)
  grads = jax.grad(lambda p: objective.loss_fn(p, model, images)[0])(params)
  assert np.any(grads["encoder"]["Conv_0"]["kernel"] != 0)
  if quantizer == "rvq":
    assert params["quantize"]["codebooks"].shape == (2, 2, 16, 4)
    assert np.all(np.abs(grads["quantize"]["codebooks"]).sum(axis=(2, 3)) > 0)
  else:
    assert "quantize" not in params  # fixed implicit codebooks


@pytest.mark.parametrize("quantizer", ["dvq", "mvq", "vq", "svq"])
def test_cosine_decodes_to_unit_vectors(quantizer):
  _, model, params = _model(quantizer, cosine=True)
  out = model.apply({"params": params}, _images())
  vectors = np.asarray(out.quant.quantized).reshape(-1, 4)
  np.testing.assert_allclose(np.linalg.norm(vectors, axis=-1), 1.0, rtol=1e-5)
  looked_up = model.apply({"params": params}, out.quant.codes,
                          method=lambda m, c: m.quantize.lookup(c))
  np.testing.assert_allclose(looked_up, out.quant.quantized, atol=1e-6)


def test_rotation_turns_each_slices_latent_gradient_and_keeps_the_forward_pass():
  _, st, params = _model("dvq")
  _, rot, _ = _model("dvq", gradient_estimator="rotation")
  images = _images()
  np.testing.assert_allclose(rot.apply({"params": params}, images).head,
                             st.apply({"params": params}, images).head, atol=1e-5)
  apply = lambda model, method, *args: model.apply({"params": params}, *args, method=method)
  latents = apply(st, st.latents, images)  # (3, 2, 2, L*D), L = 2 slices of D = 4
  quantized = apply(st, lambda m, z: m.quantize(z).quantized, latents)
  cotangent = jax.random.normal(jax.random.key(1), st.apply({"params": params}, images).head.shape)
  read_out = lambda m, e: jnp.sum(m.decoder(e) * cotangent)  # any function of the decoder's output
  # What reaches the latents: the read-out's gradient through the estimator, plus the
  # quantizer loss's own (commitment) gradient, which no estimator changes.
  downstream = lambda m, z: read_out(m, m.quantize(z).quantized) + m.quantize(z).loss
  grad = lambda model: np.asarray(
      jax.grad(lambda z: apply(model, downstream, z))(latents), np.float64).reshape(-1, 4)
  g_code = np.asarray(jax.grad(lambda e: apply(st, read_out, e))(quantized),
                      np.float64).reshape(-1, 4)
  g_loss = np.asarray(jax.grad(lambda z: apply(st, lambda m, z: m.quantize(z).loss, z))(latents),
                      np.float64).reshape(-1, 4)
  np.testing.assert_allclose(grad(st), g_code + g_loss, rtol=1e-4, atol=1e-7)  # identity
  z = np.asarray(latents, np.float64).reshape(-1, 4)
  e = np.asarray(quantized, np.float64).reshape(-1, 4)
  expected = np.stack([rotation_matrix(z_n, e_n).T @ g_n for z_n, e_n, g_n in zip(z, e, g_code)])
  np.testing.assert_allclose(grad(rot), expected + g_loss, rtol=1e-4, atol=1e-7)
  assert np.abs(expected - g_code).max() > 0.1 * np.abs(g_code).max()  # a real turn, not identity


@pytest.mark.parametrize("quantizer", ["rvq", "fsq", "lfq"])
def test_eval_json_rates_of_the_families(tmp_path, quantizer):
  config = small(quantizer=quantizer, num_train_steps=1, eval_every_steps=1,
                  checkpoint_every_steps=1, num_recon_images=0)
  with tfds.testing.mock_data(num_examples=20):
    result = train.train_and_evaluate(config, str(tmp_path))
  saved = json.loads((tmp_path / "eval.json").read_text())
  # 32x32 images, 8x8 positions; L = 2; rvq M = 2 stages of K = 16; fsq 1000 codes; lfq 2^4.
  codes, alphabet = {"rvq": (64 * 2 * 2, 16), "fsq": (64 * 2, 1000), "lfq": (64 * 2, 16)}[
      quantizer]
  np.testing.assert_allclose(saved["rate_bits_per_dim"], codes * np.log2(alphabet) / 3072,
                             rtol=1e-9)
  assert len(saved["usage"]) == len(saved["perplexity"]) == (4 if quantizer == "rvq" else 2)
  # Add-1/2 smoothing over the right alphabet: an unseen code of A values costs
  # log2(N + A/2) - log2(1/2) bits; with no more codes per slice than 32 train images, the
  # unigram rate must exceed log2(A/2 / (N + 1/2)) per code, far from K = 16 when A = 1000.
  assert 0 < saved["rate_unigram_bits_per_dim"] < 2 * saved["rate_bits_per_dim"] + 1
  np.testing.assert_allclose(saved["elbo_unigram_bits_per_dim"],
                             saved["recon_bits_per_dim"] + saved["rate_unigram_bits_per_dim"])
  np.testing.assert_allclose(result["rate_bits_per_dim"], saved["rate_bits_per_dim"])


@pytest.mark.parametrize("quantizer", ["fsq", "lfq", "rvq"])
def test_unigram_rate_uses_the_code_alphabet(quantizer):
  config, model, params = _model(quantizer)
  images = _images(batch=4)
  mask = jnp.ones(4, bool)
  counts = np.asarray(objective.encode_code_counts(params, model, images, mask))
  codes = np.asarray(model.apply({"params": params}, images, method=model.encode))
  columns = codes.reshape(-1, codes.shape[-1])
  alphabet = FAMILIES[quantizer]["alphabet"]
  assert counts.shape == (columns.shape[1], alphabet)
  sums = {"count": 4.0, "nll_nats": 1.0, "sq_error": 1.0, "ssim": 3.0, "code_counts": counts}
  result = evaluate.finalize(sums, config, IMAGE_SHAPE, counts)
  assert result["ssim"] == 0.75  # the mean over the 4 images
  # numpy: -sum over columns and codes of n log2((n + 1/2) / (N + A/2)).
  n = np.stack([np.bincount(c, minlength=alphabet) for c in columns.T]).astype(np.float64)
  bits = -np.sum(n * np.log2((n + 0.5) / (n.sum(-1, keepdims=True) + alphabet / 2)))
  np.testing.assert_allclose(result["rate_unigram_bits_per_dim"], bits / (4 * 192), rtol=1e-9)
  np.testing.assert_allclose(result["rate_bits_per_dim"],
                             columns.size / 4 * np.log2(alphabet) / 192, rtol=1e-9)


@pytest.mark.parametrize("quantizer,fields", [
    ("rvq", {}), ("fsq", {}), ("lfq", {}), ("dvq", {"cosine": True}),
    ("dvq", {"gradient_estimator": "rotation"}), ("rvq", {"gradient_estimator": "rotation"})])
def test_a_few_adam_steps_lower_the_loss(quantizer, fields):
  config = tiny_config(quantizer, "categorical256")
  for key, value in fields.items():
    config[key] = value
  model = vqvae.build_model(config, IMAGE_SHAPE)
  images = smooth_images()
  params = model.init(jax.random.key(1, impl="rbg"), images)["params"]
  # fsq's tanh-bounded grid starts slowest (~0.06 bits/dim in 24 steps), hence 48.
  _, bits = adam_steps(model, params, images, 48)
  assert bits[-1] < bits[0] - 0.1, bits


@pytest.mark.parametrize("fields,match", [
    ({"quantizer": "fsq", "fsq_levels": (4, 1)}, "fsq_levels = \\(4, 1\\); set it to a tuple"),
    ({"quantizer": "fsq", "fsq_levels": ()}, "fsq_levels = \\(\\)"),
    ({"gradient_estimator": "sgd"}, "gradient_estimator = 'sgd' is unknown"),
    ({"quantizer": "lfq", "gradient_estimator": "rotation"}, "lfq uses straight_through"),
    ({"quantizer": "rvq", "cosine": True}, "cosine = True applies to quantizers"),
    ({"quantizer": "rvq", "num_stages": 0}, "num_stages = 0"),
    ({"quantizer": "lfq", "codebook_dim": 17}, "at most 16"),
    ({"quantizer": "lfq", "lfq_entropy_weight": -1.0}, "lfq_entropy_weight = -1.0"),
    ({"quantizer": "fsq", "num_codebooks": 300, "fsq_levels": (256, 256, 2)},
     "code histogram"),
])
def test_bad_toolbox_fields_fail_in_one_line(fields, match):
  config = tiny_config()
  for key, value in fields.items():
    config[key] = value
  with pytest.raises(ConfigError, match=match) as error:
    vqvae.build_model(config, IMAGE_SHAPE)
  assert "\n" not in str(error.value)


@pytest.mark.parametrize("quantizer", ["rvq", "fsq", "lfq"])
def test_tokenizer_names_the_quantizers_it_reads(quantizer):
  config, _, params = _model(quantizer)
  with pytest.raises(ConfigError, match="reads codes of quantizers dvq, mvq, vq, svq") as error:
    tokenizer_lib.Tokenizer(config, params, IMAGE_SHAPE, checkpoint_step=0)
  assert "\n" not in str(error.value)


def test_metrics_rate_of_a_non_power_of_two_alphabet():
  # FSQ's (8, 5, 5, 5) grid: 1000 values, log2(1000) bits a code.
  np.testing.assert_allclose(metrics.rate_bits_per_dim(10, 1000, 30), np.log2(1000) / 3)
