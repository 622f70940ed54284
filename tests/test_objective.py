"""Training loss, masked evaluation sums, rate and bits/dim helpers; a few Adam steps must learn."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from skimage.metrics import structural_similarity

from dvq_jax import backends
from dvq_jax.vqvae import defaults
from dvq_jax.vqvae import likelihoods
from dvq_jax import metrics
from dvq_jax import vqvae
from dvq_jax.vqvae import model_fields
from dvq_jax.vqvae import objective
from dvq_jax.vqvae import train
from dvq_jax.errors import ConfigError
from tests.vqvae_fixtures import IMAGE_SHAPE
from tests.vqvae_fixtures import adam_steps
from tests.vqvae_fixtures import smooth_images
from tests.vqvae_fixtures import tiny_config


def setup(quantizer="dvq", likelihood="categorical256", batch=4, seed=0):
  model = vqvae.build_model(tiny_config(quantizer, likelihood), IMAGE_SHAPE)
  rng = np.random.default_rng(seed)
  images = jnp.asarray(rng.integers(0, 256, (batch, *IMAGE_SHAPE)), jnp.uint8)
  # rbg keys: XLA:CPU compiles a threefry init in ~15 s, rbg in ~2 s.
  params = model.init(jax.random.key(seed, impl="rbg"), images)["params"]
  return model, params, images


def test_bits_per_dim_helpers_on_known_values():
  assert metrics.recon_bits_per_dim(3072 * math.log(256), 3072) == pytest.approx(8.0)
  assert metrics.recon_bits_per_dim(math.log(2), 1) == pytest.approx(1.0)
  # CIFAR-10, L=8 codes of K=512 per position of the 8x8 grid (dvq, mvq): 1.5 bits/dim.
  assert metrics.rate_bits_per_dim(512, 512, 3072) == pytest.approx(1.5)
  assert metrics.rate_bits_per_dim(64, 512, 3072) == pytest.approx(0.1875)  # vq, svq
  assert float(metrics.psnr_from_mse(1.0)) == pytest.approx(20 * math.log10(255), rel=1e-6)
  recon = jnp.full((2, 2, 2, 3), 100.0)
  images = jnp.full((2, 2, 2, 3), 110, jnp.uint8)
  assert float(metrics.psnr(recon, images)) == pytest.approx(10 * math.log10(255**2 / 100),
                                                             rel=1e-6)
  counts = np.array([[3.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
  np.testing.assert_allclose(metrics.usage_from_counts(counts), [0.5, 1.0])
  entropy = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
  np.testing.assert_allclose(metrics.perplexity_from_counts(counts), [math.exp(entropy), 4.0],
                             rtol=1e-6)


def _ssim_reference(a, b, window: int) -> np.ndarray:
  """SSIM (Wang et al. 2004) of `(n, H, W, C)` images in [0, 255], float64: a `window`-tap
  Gaussian (sigma 1.5) over the valid positions, averaged over positions and channels."""
  taps = np.exp(-0.5 * ((np.arange(window) - window // 2) / 1.5) ** 2)
  taps /= taps.sum()
  blur = lambda v: np.apply_along_axis(np.convolve, 2, np.apply_along_axis(
      np.convolve, 1, v, taps, "valid"), taps, "valid")
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  mu_a, mu_b = blur(a), blur(b)
  var_a, var_b = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2
  cov = blur(a * b) - mu_a * mu_b
  c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
  ssim = (((2 * mu_a * mu_b + c1) * (2 * cov + c2))
          / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)))
  return ssim.mean(axis=(1, 2, 3))


@pytest.mark.parametrize("size", [8, 16, 32])
def test_ssim_against_skimage_and_a_numpy_reference(size):
  rng = np.random.default_rng(size)
  images = rng.integers(0, 256, (3, size, size, 3)).astype(np.uint8)
  recon = np.clip(images + rng.normal(0.0, 40.0, images.shape), 0, 255).astype(np.float32)
  recon[0] = images[0]
  ours = np.asarray(metrics.ssim(recon, images))
  assert ours.shape == (3,) and ours[0] == pytest.approx(1.0, abs=1e-6)
  assert np.all(ours[1:] < 0.95)
  # Images under 11 pixels a side: the largest odd window that fits (7 for 8x8).
  np.testing.assert_allclose(ours, _ssim_reference(recon, images, min(11, size - 1 + size % 2)),
                             rtol=1e-4)
  if size >= 11:  # skimage's Gaussian SSIM has an 11-tap window only
    expected = [structural_similarity(
        r.astype(np.float64), x.astype(np.float64), data_range=255, channel_axis=-1,
        gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
        for r, x in zip(recon, images)]
    np.testing.assert_allclose(ours, expected, rtol=1e-4)


@pytest.mark.parametrize("quantizer,expected", [("dvq", 8 * 8 * 8), ("mvq", 8 * 8 * 8),
                                                ("vq", 64), ("svq", 64),
                                                ("rvq", 8 * 8 * 8 * 2),  # M = 2 stages
                                                ("fsq", 8 * 8 * 8), ("lfq", 8 * 8 * 8)])
def test_codes_per_image(quantizer, expected):
  config = defaults.learned_prior()  # L = 8, 2 downsamples
  config.quantizer = quantizer
  assert model_fields.codes_per_image(config, (32, 32, 3)) == expected


def test_codes_per_image_errors():
  config = defaults.learned_prior()
  with pytest.raises(ConfigError, match="do not divide by 2"):
    model_fields.codes_per_image(config, (30, 32, 3))
  config.quantizer = "svq"
  config.num_codebooks = 3
  with pytest.raises(ConfigError, match="num_codebooks = 3"):
    model_fields.codes_per_image(config, (32, 32, 3))


@pytest.mark.parametrize("likelihood", ["categorical256", "mse"])
def test_loss_is_train_loss_per_dim_plus_quantizer_loss(likelihood):
  model, params, images = setup("mvq", likelihood)
  loss, aux = objective.loss_fn(params, model, images)
  out = model.apply({"params": params}, images)
  dims = 8 * 8 * 3
  train = likelihoods.train_loss(likelihood, out.head, images)
  np.testing.assert_allclose(loss, np.mean(train) / dims + out.quant.loss, rtol=1e-5)
  nll = likelihoods.nll(likelihood, out.head, images)
  np.testing.assert_allclose(aux["recon_bits_per_dim"], np.mean(nll) / (dims * math.log(2)),
                             rtol=1e-5)
  assert set(aux) == {"recon_bits_per_dim", "vq_loss", "codebook_loss", "commitment_loss",
                      "perplexity", "usage"}
  assert all(v.dtype == jnp.float32 for v in aux.values())
  assert aux["perplexity"].shape == aux["usage"].shape == (2,)
  np.testing.assert_allclose(aux["vq_loss"], aux["codebook_loss"] + 0.25 * aux["commitment_loss"],
                             rtol=1e-6)


@pytest.mark.parametrize("quantizer", vqvae.QUANTIZERS)
def test_eval_stats_count_only_masked_examples(quantizer):
  model, params, images = setup(quantizer, "logistic_mixture", batch=5)
  real = images[:3]
  padded = images.at[3:].set(0)
  mask = jnp.array([True, True, True, False, False])
  stats = jax.jit(lambda p, x, m: objective.eval_stats(p, model, x, m))(params, padded, mask)
  out = model.apply({"params": params}, real)
  nll = np.asarray(likelihoods.nll("logistic_mixture", out.head, real), np.float64)
  recon = np.asarray(likelihoods.mean_image("logistic_mixture", out.head))
  sq_error = np.square(recon - np.asarray(real, np.float64)).sum()
  np.testing.assert_allclose(stats["nll_nats"], nll.sum(), rtol=1e-5)
  np.testing.assert_allclose(stats["sq_error"], sq_error, rtol=1e-4)
  np.testing.assert_allclose(stats["ssim"], _ssim_reference(recon, real, 7).sum(), rtol=1e-4)
  assert float(stats["count"]) == 3.0
  # Histogram of each codebook's codes, from encode() by the layout documented per quantizer.
  codes = np.asarray(model.apply({"params": params}, real, method=model.encode))
  if quantizer not in ("vq", "svq"):  # rvq, rfsq, rlfq: L*M = 4 columns (slice, stage)
    per_codebook = [codes[..., l].ravel() for l in range(codes.shape[-1])]
  elif quantizer == "vq":
    per_codebook = [codes.ravel()]
  else:  # svq: positions in row-major order, first half codebook 0, second half codebook 1
    flat = codes.reshape(3, 4)
    per_codebook = [flat[:, :2].ravel(), flat[:, 2:].ravel()]
  # The alphabet: K = 16, fsq and rfsq prod(8, 5, 5, 5) = 1000, lfq, bsq and rlfq 2^D = 16.
  alphabet = 1000 if quantizer in ("fsq", "rfsq") else 16
  expected = np.stack([np.bincount(c, minlength=alphabet) for c in per_codebook])
  np.testing.assert_array_equal(stats["code_counts"], expected)
  per_position = {"vq": 1, "svq": 1, "rvq": 4, "rfsq": 4, "rlfq": 4}.get(quantizer, 2)
  assert stats["code_counts"].sum() == 3 * 4 * per_position


def test_a_few_adam_steps_lower_the_loss():
  """Adam on `smooth_images`: loss and bits/dim fall.

  The step count and learning rate stay below the point where, on so few vectors, the encoder
  outruns the codebooks and the quantizer loss spikes (it recovers later; not tested here).
  The transposed-conv decoder (the default) starts slower than subpixel, hence 24 steps.
  """
  model, params, _ = setup("dvq", "categorical256", batch=4, seed=1)
  losses, bits = adam_steps(model, params, smooth_images(), 24)
  assert losses[-1] < losses[0] - 0.05, losses
  assert bits[-1] < bits[0] - 0.1, bits


def test_bfloat16_train_steps_learn_with_float32_params_and_adam_state():
  """`model.dtype = "bfloat16"`: the real train step (`vqvae.train.train_step`) computes its
  convolutions and GEMMs in bfloat16, keeps params and Adam moments float32, and learns."""
  config = tiny_config()
  config.model.dtype = "bfloat16"
  model = vqvae.build_model(config, IMAGE_SHAPE)
  images = smooth_images()
  params = model.init(jax.random.key(1, impl="rbg"), images)["params"]
  tx = optax.adam(1e-3)
  state = {"step": jnp.int32(0), "params": params, "opt_state": tx.init(params)}
  step = jax.jit(functools.partial(train.train_step, model=model, tx=tx))
  hlo = step.lower(state, images).as_text()
  convs = [line for line in hlo.splitlines() if "stablehlo.convolution" in line]
  assert convs and all("bf16" in line for line in convs), convs
  losses = []
  for _ in range(24):
    state, step_metrics = step(state, images)
    losses.append(float(step_metrics["loss"]))
  assert losses[-1] < losses[0] - 0.05, losses
  floats = [leaf for leaf in jax.tree.leaves((state["params"], state["opt_state"]))
            if jnp.issubdtype(leaf.dtype, jnp.floating)]
  assert floats and all(leaf.dtype == jnp.float32 for leaf in floats)


def test_auto_dtype_is_float32_on_cpu_and_bfloat16_on_accelerators():
  """The default `model.dtype = "auto"` leaves a CPU step all-float32."""
  config = tiny_config()
  assert config.model.dtype == "auto"
  model = vqvae.build_model(config, IMAGE_SHAPE)
  assert model.dtype == "float32"
  hlo = jax.jit(objective.loss_fn, static_argnums=1).lower(
      model.init(jax.random.key(0, impl="rbg"), smooth_images())["params"], model,
      smooth_images()).as_text()
  assert "bf16" not in hlo
  for platform in ("tpu", "gpu"):
    with backends.compiling_for(platform):
      assert vqvae.build_model(config, IMAGE_SHAPE).dtype == "bfloat16"


# dvq; svq's codes group positions; rvq's L*M statistics. (`code_counts` of every layout is
# checked against numpy in test_eval_stats_count_only_masked_examples.)
@pytest.mark.parametrize("quantizer", ["dvq", "svq", "rvq"])
def test_microbatched_gradient_is_the_full_batch_gradient(quantizer):
  config = tiny_config(quantizer)
  config.lfq_entropy_weight = 0.0  # its batch-entropy term is not a mean over images
  model = vqvae.build_model(config, IMAGE_SHAPE)
  images = jnp.asarray(np.random.default_rng(0).integers(0, 256, (6, *IMAGE_SHAPE)), jnp.uint8)
  params = model.init(jax.random.key(0, impl="rbg"), images)["params"]
  (loss, aux), grads = jax.jit(jax.value_and_grad(
      lambda p, x: objective.loss_fn(p, model, x), has_aux=True))(params, images)
  out = model.apply({"params": params}, images)
  (mb_loss, mb_aux), mb_grads, (latents, codes) = jax.jit(
      lambda p, x: objective.loss_and_gradient(p, model, x, microbatches=2))(params, images)
  np.testing.assert_allclose(mb_loss, loss, rtol=1e-5)
  assert set(mb_aux) == set(aux)
  for name in aux:  # perplexity and usage: the whole batch's histogram, not a mean of two
    np.testing.assert_allclose(mb_aux[name], aux[name], rtol=1e-5, atol=1e-7, err_msg=name)
  for a, b in zip(jax.tree.leaves(mb_grads), jax.tree.leaves(grads), strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6 * float(np.max(np.abs(b))))
  np.testing.assert_allclose(latents, out.latents, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(codes, out.quant.codes)
  with pytest.raises(ValueError, match="batch 6 is not divisible by microbatches = 4"):
    objective.loss_and_gradient(params, model, images, microbatches=4)
