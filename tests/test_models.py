"""The DVQ-VAE: every quantizer x head runs and trains, encode/decode, upsampling, config errors.

Params are drawn with rbg keys: XLA:CPU compiles the threefry bits of a model's init in ~15 s,
rbg in ~2 s; the forward/backward passes run eagerly, so the op compilations are shared
between the twelve quantizer x head models instead of one jit compile each.
"""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dvq_jax import backends
from dvq_jax import flat_random
from dvq_jax.vqvae import likelihoods
from dvq_jax import vqvae
from dvq_jax.vqvae import objective
from dvq_jax.errors import ConfigError
from dvq_jax.vqvae import layers
from tests.vqvae_fixtures import IMAGE_SHAPE
from tests.vqvae_fixtures import init
from tests.vqvae_fixtures import tiny_config
from tests.vqvae_fixtures import tiny_images

CODE_SHAPES = {"dvq": (2, 2, 2, 2), "mvq": (2, 2, 2, 2), "vq": (2, 2, 2), "svq": (2, 2, 2)}


@pytest.mark.parametrize("likelihood", likelihoods.NAMES)
@pytest.mark.parametrize("quantizer", vqvae.COSINE_QUANTIZERS)  # rvq/fsq/lfq: test_toolbox_vqvae
def test_every_quantizer_and_head_runs_and_gets_gradients(quantizer, likelihood):
  config = tiny_config(quantizer, likelihood)
  model = vqvae.build_model(config, IMAGE_SHAPE)
  images = tiny_images()
  params = init(model, images)
  num_codebooks = 1 if quantizer == "vq" else 2
  assert params["quantize"]["codebooks"].shape == (num_codebooks, 16, 4)

  out = jax.eval_shape(model.apply, {"params": params}, images)
  head_channels = likelihoods.num_head_channels(likelihood, 3, 2)
  assert out.head.shape == (2, 8, 8, head_channels) and out.head.dtype == jnp.float32
  assert out.quant.codes.shape == CODE_SHAPES[quantizer]
  assert out.quant.perplexity.shape == out.quant.usage.shape == (num_codebooks,)

  (loss, aux), grads = jax.value_and_grad(objective.loss_fn, has_aux=True)(params, model, images)
  assert np.isfinite(loss)
  assert all(np.all(np.isfinite(v)) for v in aux.values())
  codebook_grads = np.abs(grads["quantize"]["codebooks"]).sum(axis=(1, 2))
  assert np.all(codebook_grads > 0), codebook_grads  # every codebook gets a gradient
  for path, leaf in jax.tree_util.tree_leaves_with_path(grads["encoder"]):
    assert np.any(leaf != 0), jax.tree_util.keystr(path)
  assert np.any(grads["decoder"]["Upsample_1"]["ConvTranspose_0"]["kernel"] != 0)


@pytest.mark.parametrize("quantizer", vqvae.QUANTIZERS)
def test_encode_then_decode_gives_the_forward_head(quantizer):
  model = vqvae.build_model(tiny_config(quantizer, "mse"), IMAGE_SHAPE)
  images = tiny_images()
  variables = {"params": init(model, images)}
  out = model.apply(variables, images)
  codes = model.apply(variables, images, method=model.encode)
  np.testing.assert_array_equal(codes, out.quant.codes)
  head = model.apply(variables, codes, method=model.decode)
  # The forward pass decodes z + stop_gradient(e - z), equal to e up to float32 rounding.
  np.testing.assert_allclose(head, out.head, atol=1e-5)
  if quantizer in ("dvq", "mvq"):  # editing one codebook's codes changes the image
    edited = model.apply(variables, codes.at[..., 1].set((codes[..., 1] + 1) % 16),
                         method=model.decode)
    assert np.abs(edited - head).max() > 1e-4


def test_bfloat16_compute_keeps_float32_params_and_the_head_dtype_of_each_backend():
  """A bfloat16 model's head is bfloat16 on accelerators, float32 on CPU; a float32 model's is
  float32, also when its last layer alone runs in bfloat16 (`head_dtype`)."""
  images = tiny_images()
  f32 = vqvae.build_model(tiny_config(), IMAGE_SHAPE)
  bf16 = vqvae.build_model(tiny_config(dtype="bfloat16"), IMAGE_SHAPE)
  mixed = vqvae.build_model(tiny_config(head_dtype="bfloat16"), IMAGE_SHAPE)
  params = init(bf16, images)
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(params))
  assert bf16.apply({"params": params}, images).head.dtype == jnp.float32
  with backends.compiling_for("tpu"):
    assert bf16.apply({"params": params}, images).head.dtype == jnp.bfloat16
  assert mixed.apply({"params": params}, images).head.dtype == jnp.float32
  loss16, _ = objective.loss_fn(params, bf16, images)
  loss32, _ = objective.loss_fn(params, f32, images)
  np.testing.assert_allclose(loss16, loss32, rtol=2e-2)


def _influence(fn, x):
  """For every output pixel, the set of input pixels with a non-zero derivative."""
  jac = jax.jacfwd(lambda v: fn(v)[0])(x)  # (H_out, W_out, C_out, 1, H, W, C_in)
  mask = np.abs(np.asarray(jac)).sum(axis=(2, 3, 6)) > 0  # (H_out, W_out, H, W)
  return {(i, j): set(map(tuple, np.argwhere(mask[i, j]).tolist()))
          for i in range(mask.shape[0]) for j in range(mask.shape[1])}


def test_subpixel_and_transpose_upsampling_shapes_and_receptive_fields():
  """Both 2x stages give (B, 2h, 2w, F); output pixel (2m+a, 2n+b) of the subpixel stage sees
  the 3x3 input neighbourhood of (m, n), the transposed conv a 2x2 block inside it."""
  x = flat_random.normal(jax.random.key(0), (1, 4, 4, 3))
  fields = {}
  for method in layers.UPSAMPLES:
    layer = layers.Upsample(5, method)
    params = layer.init(jax.random.key(1, impl="rbg"), x)
    assert layer.apply(params, x).shape == (1, 8, 8, 5)
    fields[method] = _influence(lambda v, layer=layer, params=params: layer.apply(params, v), x)

  def clip(rows, cols):
    return {(r, c) for r in rows for c in cols if 0 <= r < 4 and 0 <= c < 4}

  for (i, j), sub in fields["subpixel"].items():
    m, n = i // 2, j // 2
    assert sub == clip(range(m - 1, m + 2), range(n - 1, n + 2))
    rows = (m - 1, m) if i % 2 == 0 else (m, m + 1)
    cols = (n - 1, n) if j % 2 == 0 else (n, n + 1)
    assert fields["transpose"][i, j] == clip(rows, cols)
    assert fields["transpose"][i, j] <= sub
    assert fields["transpose_phases"][i, j] == fields["transpose"][i, j]


@pytest.mark.parametrize("float32_output", [False, True])
def test_transpose_phases_is_conv_transpose_forward_and_gradients(float32_output):
  """Same params (names, shapes, init) and, to float32 rounding, the same function and
  gradients (w.r.t. kernel, bias and input) as the paper's 4x4 stride-2 nn.ConvTranspose."""
  x = flat_random.normal(jax.random.key(0), (2, 5, 6, 7))  # odd, non-square: every border
  reference = nn.ConvTranspose(9, (4, 4), strides=(2, 2), padding=((2, 2), (2, 2)))
  phases = layers.ConvTransposePhases(9, float32_output=float32_output)
  params = reference.init(jax.random.key(1), x)
  assert jax.tree.map(jnp.shape, phases.init(jax.random.key(1), x)) == jax.tree.map(
      jnp.shape, params)
  np.testing.assert_array_equal(phases.init(jax.random.key(1), x)["params"]["kernel"],
                                params["params"]["kernel"])  # same initializer and fan-in
  params = jax.tree.map(lambda p: p + flat_random.normal(jax.random.key(2), p.shape), params)
  cotangent = flat_random.normal(jax.random.key(3), (2, 10, 12, 9))

  def loss(module, p, v):
    return jnp.sum(module.apply(p, v) * cotangent)

  out_ref, out = reference.apply(params, x), phases.apply(params, x)
  assert out.shape == out_ref.shape == (2, 10, 12, 9) and out.dtype == jnp.float32
  np.testing.assert_allclose(out, out_ref, rtol=1e-5, atol=1e-5)
  grads_ref = jax.grad(loss, argnums=(1, 2))(reference, params, x)
  grads = jax.grad(loss, argnums=(1, 2))(phases, params, x)
  for g, g_ref in zip(jax.tree.leaves(grads), jax.tree.leaves(grads_ref)):
    np.testing.assert_allclose(g, g_ref, rtol=1e-5, atol=1e-4)


def test_bfloat16_head_gradient_gemms_run_in_bfloat16_and_match_float32():
  """The bfloat16 head (float32 logits) has bfloat16 gradient GEMMs, gradients close to the
  float32 layer's. Plain autodiff of the float32-output dot upcast both to float32."""
  x = flat_random.normal(jax.random.key(0), (2, 5, 6, 7))
  cotangent = flat_random.normal(jax.random.key(3), (2, 10, 12, 9))
  layer16 = layers.ConvTransposePhases(9, dtype=jnp.bfloat16, float32_output=True)
  layer32 = layers.ConvTransposePhases(9)
  params = layer32.init(jax.random.key(1), x)

  def loss(module, p, v):
    out = module.apply(p, v)
    assert out.dtype == jnp.float32
    return jnp.sum(out * cotangent)

  grad16 = jax.jit(jax.value_and_grad(functools.partial(loss, layer16), argnums=(0, 1)))
  dots = [line for line in grad16.lower(params, x).as_text().splitlines()
          if "stablehlo.dot_general" in line]
  assert len(dots) == 12, dots  # 4 phases x (forward, input gradient, kernel gradient)
  for line in dots:
    operands = line.rsplit(":", 1)[1].split("->")[0]
    assert operands.count("bf16") == 2 and "f32" not in operands, line
  _, grads16 = grad16(params, x)
  grads32 = jax.grad(functools.partial(loss, layer32), argnums=(0, 1))(params, x)
  for g16, g32 in zip(jax.tree.leaves(grads16), jax.tree.leaves(grads32)):
    assert g16.dtype == g32.dtype == jnp.float32
    np.testing.assert_allclose(g16, g32, rtol=0, atol=2e-2 * np.abs(g32).max())


def test_bfloat16_head_in_a_float32_model_runs_only_the_head_in_bfloat16():
  """`model.head_dtype = "bfloat16"`: the last layer's GEMMs take bfloat16 operands, every
  other dot and conv of the step float32; loss and gradients close to the float32 model's."""
  images = tiny_images()
  mixed = vqvae.build_model(tiny_config(head_dtype="bfloat16"), IMAGE_SHAPE)
  plain = vqvae.build_model(tiny_config(), IMAGE_SHAPE)
  params = init(plain, images)

  def grad(model):
    return jax.jit(jax.value_and_grad(lambda p: objective.loss_fn(p, model, images)[0]))

  ops = [line for line in grad(mixed).lower(params).as_text().splitlines()
         if "stablehlo.dot_general" in line or "stablehlo.convolution" in line]
  head, rest = [l for l in ops if "bf16" in l], [l for l in ops if "bf16" not in l]
  assert len(head) == 12, head  # 4 phases x (forward, input gradient, kernel gradient)
  assert all("dot_general" in line for line in head), head
  assert rest and all("f32" in line for line in rest), rest
  loss16, grads16 = grad(mixed)(params)
  loss32, grads32 = grad(plain)(params)
  np.testing.assert_allclose(loss16, loss32, rtol=2e-3)
  for g16, g32 in zip(jax.tree.leaves(grads16), jax.tree.leaves(grads32), strict=True):
    np.testing.assert_allclose(g16, g32, rtol=0, atol=3e-2 * np.abs(g32).max() + 1e-6)
  with pytest.raises(ConfigError, match="config.model.head_dtype = 'float16' is unknown"):
    vqvae.build_model(tiny_config(head_dtype="float16"), IMAGE_SHAPE)


def test_transpose_phases_matches_the_transpose_decoder_with_the_same_params():
  images = tiny_images()
  models = {m: vqvae.build_model(tiny_config(likelihood="mse", upsample=m), IMAGE_SHAPE)
            for m in ("transpose", "transpose_phases")}
  params = init(models["transpose"], images)
  heads = {m: model.apply({"params": params}, images).head for m, model in models.items()}
  np.testing.assert_allclose(heads["transpose_phases"], heads["transpose"], atol=1e-5)


def test_subpixel_decoder_sees_every_latent_the_transposed_decoder_sees():
  latents = flat_random.normal(jax.random.key(0), (1, 4, 4, 8))
  fields = {}
  for method in layers.UPSAMPLES:
    model = vqvae.build_model(tiny_config(likelihood="mse", upsample=method), (16, 16, 3))
    params = model.init(jax.random.key(1, impl="rbg"), jnp.zeros((1, 16, 16, 3), jnp.uint8))
    decode = lambda z, model=model, params=params: model.apply(
        params, z, method=lambda m, z: m.decoder(z))
    assert decode(latents).shape == (1, 16, 16, 3)
    # Influence of the latents on output rows/columns 6..9 (around the centre).
    window = lambda z, decode=decode: decode(z)[:, 6:10, 6:10]
    fields[method] = _influence(window, latents)
  for pixel, tr in fields["transpose"].items():
    assert tr <= fields["subpixel"][pixel], pixel


@pytest.mark.parametrize("field,value,message", [
    ("quantizer", "dq", "config.quantizer = 'dq' is unknown"),
    ("likelihood", "gaussian", "config.likelihood = 'gaussian' is unknown"),
    ("model.upsample", "nearest", "config.model.upsample = 'nearest' is unknown"),
    ("model.dtype", "float16", "config.model.dtype = 'float16' is unknown"),
    ("model.codebook_init", "zeros", "config.model.codebook_init = 'zeros' is unknown"),
    ("model.latent_channels", 4, r"latent_channels = 4 .* needs 8; set it to 8 or 0"),
    ("model.num_downsamples", 0, r"config.model.num_downsamples = 0; set it to an integer >= 1"),
    ("codebook_size", 0, r"config.codebook_size = 0; set it to an integer >= 1"),
])
def test_bad_config_raises_one_line_config_error(field, value, message):
  config = tiny_config()
  section, _, name = field.rpartition(".")
  (config.model if section else config)[name] = value
  with pytest.raises(ConfigError, match=message) as error:
    vqvae.build_model(config)
  assert "\n" not in str(error.value)


def test_image_shape_errors_name_the_fix():
  with pytest.raises(ConfigError, match=r"10x10 do not divide by 2\^config.model.num_downsamples"):
    vqvae.build_model(tiny_config(), (10, 10, 3))
  config = tiny_config("svq")
  config.num_codebooks = 3
  with pytest.raises(ConfigError, match="choose a num_codebooks that divides 4"):
    vqvae.build_model(config, IMAGE_SHAPE)


def test_latent_channels_set_to_the_derived_value_is_accepted():
  assert vqvae.build_model(tiny_config(latent_channels=8)).quantizer == "dvq"
  config = tiny_config("mvq", latent_channels=4)
  assert vqvae.build_model(config, (8, 8, 1)).image_channels == 1
