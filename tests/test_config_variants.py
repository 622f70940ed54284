"""configs/{cifar10,imagenet32,imagenet64}.py:official and :paper build the models they claim.

Parameter counts derived by hand from the official TF2 code (`dvq_model.py`, master branch of
github.com/fostiropoulos/dvq; `DVQVAE(D=255, K=512, L=10)` as in its notebook), one Keras layer
at a time; a conv with kernel k, C_in -> C_out and a bias has k*k*C_in*C_out + C_out params:
  encoder_resnet.pre_res    Conv2D(255, 3, strides=2)   3x3, 3 -> 255:      9*3*255 + 255
  encoder_resnet.first_res  ResNet x2: Conv2D(64, 3) + Conv2D(255, 1):
                            2 * ((9*255*64 + 64) + (255*64 + 255))
  encoder_convblock         2x Conv2D(255, 4, strides=2), 255 -> 255:   2 * (16*255*255 + 255)
  pre_vq                    Conv2D(D*L = 2550, 3), 255 -> 2550:          9*255*2550 + 2550
  vq                        L = 10 VQs, embeddings (D, K) = (255, 512):  10*255*512 (no bias)
  decoder_resnet.pre_res    Conv2D(255, 3), 2550 -> 255:                 9*2550*255 + 255
  decoder_resnet ResNets    as in the encoder:                           2 * (146,944 + 16,575)
  decoder_convblock         2x Conv2DTranspose(127, 4, strides=2): 255 -> 127, 127 -> 127:
                            (16*255*127 + 127) + (16*127*127 + 127)
  last_conv                 Conv2DTranspose(3*256, 4, strides=2), 127 -> 768: 16*127*768 + 768
Grid: 32 -(3x3 stride 2)-> 16 -(4x4 s2)-> 8 -(4x4 s2)-> 4, so CIFAR-10 and ImageNet 32x32 codes
are (4, 4, L=10) per image, ImageNet 64x64 (8, 8, 10) (the layers are fixed, the code takes any
size). The same counts came out of Keras' `model.count_params()` for the official model
(benchmarks/RESULTS.md).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dvq_jax import flat_random
from dvq_jax import vqvae
from dvq_jax.vqvae import layers
from dvq_jax.vqvae import model as model_lib
from tests import config_files


def _conv(k, c_in, c_out):
  return k * k * c_in * c_out + c_out


_OFFICIAL_BLOCKS = 2 * (_conv(3, 255, 64) + _conv(1, 64, 255))
OFFICIAL = {
    "encoder": _conv(3, 3, 255) + _OFFICIAL_BLOCKS + 2 * _conv(4, 255, 255)
               + _conv(3, 255, 2550),
    "quantize": 10 * 255 * 512,
    "decoder": _conv(3, 2550, 255) + _OFFICIAL_BLOCKS + _conv(4, 255, 127) + _conv(4, 127, 127)
               + _conv(4, 127, 768),
}
# The project's VQ-VAE (hidden 256, residual 64, 2 downsamplings, 1x1 pre-quantizer conv) with
# the paper's latent width 250 = 2*32 + 6*31, codebooks stored (8, 512, 32).
_BLOCKS = 2 * (_conv(3, 256, 64) + _conv(1, 64, 256))
PAPER = {
    "encoder": _conv(4, 3, 128) + _conv(4, 128, 256) + _conv(3, 256, 256) + _BLOCKS
               + _conv(1, 256, 250),
    "quantize": 8 * 512 * 32,
    "decoder": _conv(3, 250, 256) + _BLOCKS + _conv(4, 256, 128) + _conv(4, 128, 768),
}


def _build(spec, image_shape):
  config = config_files.load(spec)
  model = vqvae.build_model(config, image_shape)
  images = jax.ShapeDtypeStruct((2, *image_shape), jnp.uint8)
  params = jax.eval_shape(model.init, jax.random.key(0), images)["params"]
  codes = jax.eval_shape(lambda p, x: model.apply({"params": p}, x, method=model.encode),
                         params, images)
  counts = {name: sum(int(np.prod(leaf.shape)) for leaf in jax.tree.leaves(tree))
            for name, tree in params.items()}
  return config, counts, codes.shape


def test_hand_derived_official_total():
  assert sum(OFFICIAL.values()) == 18_093_253


@pytest.mark.parametrize("name,image_shape,grid", [
    ("cifar10.py", (32, 32, 3), (4, 4)),
    ("imagenet32.py", (32, 32, 3), (4, 4)),
    ("imagenet64.py", (64, 64, 3), (8, 8)),
])
def test_official_variant_matches_the_official_code(name, image_shape, grid):
  config, counts, code_shape = _build(f"configs/{name}:official", image_shape)
  assert counts == OFFICIAL
  assert code_shape == (2, *grid, 10)
  assert (config.beta, config.quantizer_loss_reduction, config.learning_rate) == (
      1.0, "mean_elements", 2e-4)
  model = config.model
  assert (model.architecture, model.residual_style, model.input_scaling) == (
      "dvq_official", "post_activation", "official")
  assert (model.pre_quantizer_kernel, model.upsample) == (3, "transpose_phases")
  assert (model.codebook_init, model.codebook_init_scale) == ("normal", 0.1)


def test_official_cifar10_trains_the_notebooks_100_epochs():
  assert config_files.load("configs/cifar10.py:official").num_train_steps == 100 * 391


@pytest.mark.parametrize("name,image_shape", [
    ("cifar10.py", (32, 32, 3)), ("imagenet32.py", (32, 32, 3)), ("imagenet64.py", (64, 64, 3)),
])
def test_paper_variant_has_latent_width_250_in_8_slices(name, image_shape):
  config, counts, code_shape = _build(f"configs/{name}:paper", image_shape)
  assert sum(config.slice_sizes) == 250 and len(config.slice_sizes) == 8
  assert max(config.slice_sizes) - min(config.slice_sizes) == 1
  assert code_shape == (2, 8, 8, 8)
  if name != "imagenet64.py":  # 64x64 adds a third 4x4 stride-2 stage on each side
    assert counts == PAPER


@pytest.mark.parametrize("variant", ["official", "paper"])
def test_variants_shrink_and_run(variant):
  config = config_files.load(f"configs/cifar10.py:{variant},small")
  model = vqvae.build_model(config, (32, 32, 3))
  images = jnp.zeros((1, 32, 32, 3), jnp.uint8)
  params = model.init(jax.random.key(0, impl="rbg"), images)["params"]
  assert np.all(np.isfinite(model.apply({"params": params}, images).head))


def test_input_scalings():
  images = jnp.array([0, 51, 255], jnp.uint8)
  np.testing.assert_allclose(model_lib.scale_images(images, "official"), [-0.5, -0.3, 0.5],
                             atol=1e-7)
  np.testing.assert_allclose(model_lib.scale_images(images, "symmetric"), [-1.0, -0.6, 1.0],
                             atol=1e-7)


@pytest.mark.parametrize("style", layers.RESIDUAL_STYLES)
def test_residual_styles_against_numpy(style):
  x = flat_random.normal(jax.random.key(0), (1, 3, 3, 4))
  stack = layers.ResidualStack(4, 2, 1, style=style)
  params = stack.init(jax.random.key(1), x)["params"]
  w3, b3 = params["Conv_0"]["kernel"], params["Conv_0"]["bias"]
  w1, b1 = params["Conv_1"]["kernel"][0, 0], params["Conv_1"]["bias"]
  relu = lambda v: np.maximum(v, 0)
  xn = np.asarray(x)[0]
  inner = relu(xn) if style == "pre_activation" else xn
  padded = np.pad(inner, ((1, 1), (1, 1), (0, 0)))
  h = np.stack([[np.einsum("abc,abcd->d", padded[i:i + 3, j:j + 3], w3) for j in range(3)]
                for i in range(3)]) + b3
  h = relu(h) @ w1 + b1
  expected = relu(xn + (h if style == "pre_activation" else relu(h)))
  np.testing.assert_allclose(stack.apply({"params": params}, x)[0], expected, atol=1e-5)
