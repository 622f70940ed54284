"""Building blocks of the VQ-VAE: the residual stack and the 2x down/upsampling stages.

Every conv computes in `dtype` (float32 or bfloat16) and keeps float32 params. A bfloat16 stage
can accumulate and return float32 (`float32_output=True`): the head of a float32 model whose
last layer alone runs in bfloat16 (`model.head_dtype`) keeps float32 logits. Kernels start
from Flax's default (LeCun normal), drawn flat by `dvq_jax.flat_random` (same numbers, much
faster to compile on XLA:CPU): use `Conv` and `ConvTranspose` below rather than the `nn.` ones.
"""

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from dvq_jax import backends
from dvq_jax import flat_random

UPSAMPLES = ("transpose_phases", "subpixel", "transpose")
RESIDUAL_STYLES = ("pre_activation", "post_activation")

# One module-level object (not a fresh partial per call) so modules that hold it stay hashable
# and compare equal across builds.
_CONV_FLOAT32_OUTPUT = functools.partial(
    jax.lax.conv_general_dilated, preferred_element_type=jnp.float32
)
_KERNEL_INIT = flat_random.lecun_normal()
Conv = functools.partial(nn.Conv, kernel_init=_KERNEL_INIT)
ConvTranspose = functools.partial(nn.ConvTranspose, kernel_init=_KERNEL_INIT)


def depth_to_space(x: jax.Array, block: int) -> jax.Array:
  """`(batch, height, width, block*block*C)` -> `(batch, block*height, block*width, C)`.

  Channel `(i*block + j)*C + c` of input pixel (y, x) becomes channel c of output pixel
  (block*y + i, block*x + j).

  >>> import jax.numpy as jnp
  >>> depth_to_space(jnp.arange(4).reshape(1, 1, 1, 4), 2)[0, ..., 0].tolist()
  [[0, 1], [2, 3]]
  """
  batch, height, width, channels = x.shape
  if channels % (block * block):
    raise ValueError(f"channels {channels} (shape {x.shape}) must be divisible by {block}^2")
  out = channels // (block * block)
  x = x.reshape(batch, height, width, block, block, out)
  x = x.transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(batch, height * block, width * block, out)


@jax.custom_vjp
def float32_output_matmul(x: jax.Array, w: jax.Array) -> jax.Array:
  """`x @ w` accumulated and returned in float32, for x and w in a low-precision compute dtype.

  Forward as `jnp.matmul(x, w, preferred_element_type=jnp.float32)`. The backward pass casts
  the float32 cotangent to x's dtype before the two gradient GEMMs, so they run in the compute
  dtype as every other layer's do (accumulating in float32). Plain autodiff would instead
  upcast x and w to float32 for them: in the bfloat16 `:official` train step on this CPU,
  the head's input-gradient GEMMs then took 80 ms each against ~30 ms (benchmarks/RESULTS.md).
  Gradients are those of a bfloat16 layer (rounded like every other layer's), not float32's.

  >>> import jax.numpy as jnp
  >>> float32_output_matmul(jnp.ones((1, 2), jnp.bfloat16), jnp.ones((2, 1), jnp.bfloat16)).dtype
  dtype('float32')
  """
  return jnp.matmul(x, w, preferred_element_type=jnp.float32)


def _float32_output_matmul_fwd(x, w):
  return float32_output_matmul(x, w), (x, w)


def _float32_output_matmul_bwd(residuals, g):
  x, w = residuals
  g = g.astype(x.dtype)
  dx = jnp.matmul(g, jnp.swapaxes(w, -1, -2), preferred_element_type=jnp.float32)
  dw = jnp.matmul(x.reshape(-1, x.shape[-1]).T, g.reshape(-1, g.shape[-1]),
                  preferred_element_type=jnp.float32)
  return dx.astype(x.dtype), dw.astype(w.dtype)


float32_output_matmul.defvjp(_float32_output_matmul_fwd, _float32_output_matmul_bwd)


def conv_transpose_phases(x: jax.Array, kernel: jax.Array,
                          preferred_element_type=None) -> jax.Array:
  """`nn.ConvTranspose(C, (4, 4), strides=2, padding=2)` without bias, as sub-pixel phases.

  Output pixel (2t+a, 2u+b) of that transposed conv is a 2x2 convolution of the input
  around (t, u): rows (t-1, t) for a = 0 and (t, t+1) for a = 1 (columns likewise, with b),
  whose tap (i, j) is the kernel's tap (2i+a, 2j+b). Each of the four phases is computed as
  one GEMM of the 2x2 patches of the input (padded by 1) with its `(4*C_in, C)` slice of the
  kernel, then the phases interleave (depth-to-space). Same FLOPs as the transposed conv, no
  zero-dilated input. GEMMs and not a 2x2 `lax.conv`: XLA:CPU's kernel gradient of a 2x2 conv
  took 37 s where the GEMM form's whole backward took 0.6 s (batch 4, 16x16x128 -> 768).
  A low-precision x with a float32 `preferred_element_type` (the head) goes through
  `float32_output_matmul`, whose gradient GEMMs stay in x's dtype.

  Args:
    x: `(batch, h, w, C_in)`.
    kernel: `(4, 4, C_in, C)`, the `nn.ConvTranspose` kernel (not flipped).
    preferred_element_type: accumulation/output dtype (None: x's dtype).

  Returns:
    `(batch, 2h, 2w, C)`.
  """
  batch, height, width, c_in = x.shape
  if kernel.shape[:3] != (4, 4, c_in):
    raise ValueError(f"kernel shape {kernel.shape}: need (4, 4, {c_in}, C) for input {x.shape}")
  channels = kernel.shape[-1]
  padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
  taps = kernel.reshape(2, 2, 2, 2, c_in, channels)  # (i, a, j, b, C_in, C)
  rows = []
  for a in (0, 1):
    phases = []
    for b in (0, 1):
      patches = jnp.concatenate([padded[:, a + i:a + i + height, b + j:b + j + width]
                                 for i in (0, 1) for j in (0, 1)], axis=-1)
      weights = taps[:, a, :, b].reshape(4 * c_in, channels)
      if preferred_element_type == jnp.float32 and x.dtype != jnp.float32:
        phases.append(float32_output_matmul(patches, weights))
      else:
        phases.append(jnp.matmul(patches, weights, preferred_element_type=preferred_element_type))
    rows.append(jnp.stack(phases, axis=3))  # (B, h, w, 2(b), C)
  out = jnp.stack(rows, axis=2)  # (B, h, 2(a), w, 2(b), C)
  return out.reshape(batch, 2 * height, 2 * width, channels)


class ConvTransposePhases(nn.Module):
  """Drop-in for `nn.ConvTranspose(features, (4, 4), strides=(2, 2), padding=((2, 2), (2, 2)))`.

  Same params (`kernel` `(4, 4, C_in, features)`, `bias` `(features,)`, same initializers), same
  function, computed by `conv_transpose_phases`. `float32_output` accumulates and returns
  float32 (`preferred_element_type`), as for the head.
  """

  features: int
  dtype: Any = jnp.float32
  float32_output: bool = False
  kernel_init: Any = _KERNEL_INIT
  bias_init: Any = nn.initializers.zeros_init()

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param("kernel", self.kernel_init, (4, 4, x.shape[-1], self.features),
                        jnp.float32)
    bias = self.param("bias", self.bias_init, (self.features,), jnp.float32)
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    y = conv_transpose_phases(x, kernel,
                              preferred_element_type=jnp.float32 if self.float32_output else None)
    return y + bias


class Downsample(nn.Module):
  """A 4x4 stride-2 conv (padding 1, as the VQ-VAE reference): `(B, H, W, C)` -> `(B, H/2, W/2, features)`."""

  features: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    return Conv(self.features, (4, 4), strides=(2, 2), padding=((1, 1), (1, 1)),
                dtype=self.dtype)(x)


class Upsample(nn.Module):
  """A 2x upsampling stage: `(B, h, w, C)` -> `(B, 2h, 2w, features)`.

  method:
    transpose_phases (default): the paper's layer, exactly `transpose` below (same params, same
      function up to float32 rounding), in each backend's fastest form
      (`dvq_jax.backends.transposed_conv_as_phases`): on CPU as four 2x2 sub-pixel phases
      (`ConvTransposePhases`, faster than both others on XLA:CPU, benchmarks/RESULTS.md), on
      accelerators as `transpose`. Its params sit under the same name, `ConvTranspose_0`, in
      both forms, so checkpoints move between them and between backends.
    subpixel: a 3x3 conv to 4*features channels, then `depth_to_space` (sub-pixel conv).
      Output pixel (2m+a, 2n+b) sees the 3x3 input neighbourhood of (m, n).
    transpose: a 4x4 stride-2 `nn.ConvTranspose` with padding 2 on the dilated input -- the
      paper's layer, equal to PyTorch `ConvTranspose2d(k=4, s=2, p=1)`. Output pixel
      (2m+a, 2n+b) sees a 2x2 input block inside that 3x3 neighbourhood, so the subpixel field
      covers the transposed one (tests/test_models.py checks both). Its backward pass is
      pathologically slow on XLA:CPU (31.7 s of a 33.1 s step at batch 32 vs 1.97 s for the
      whole step with subpixel).
  """

  features: int
  method: str = "transpose_phases"
  dtype: Any = jnp.float32
  float32_output: bool = False

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    if self.method == "transpose_phases" and backends.transposed_conv_as_phases():
      return ConvTransposePhases(self.features, dtype=self.dtype,
                                 float32_output=self.float32_output, name="ConvTranspose_0")(x)
    if self.method == "subpixel":
      conv = Conv(
          4 * self.features, (3, 3), padding=((1, 1), (1, 1)), dtype=self.dtype,
          conv_general_dilated=_CONV_FLOAT32_OUTPUT if self.float32_output else None,
      )
      return depth_to_space(conv(x), 2)
    if self.method in ("transpose", "transpose_phases"):
      return ConvTranspose(
          self.features, (4, 4), strides=(2, 2), padding=((2, 2), (2, 2)), dtype=self.dtype,
          preferred_element_type=jnp.float32 if self.float32_output else None,
      )(x)
    raise ValueError(f"upsample method {self.method!r} is unknown; use one of {UPSAMPLES}")


class ResidualStack(nn.Module):
  """`num_blocks` residual blocks then a ReLU, on `(B, h, w, hidden)` features (shape kept).

  style:
    pre_activation (VQ-VAE, van den Oord et al.):
      x + conv1x1_hidden(relu(conv3x3_residual(relu(x)))).
    post_activation (the official DVQ/Sonnet-TF2 code's `ResNet`):
      x + relu(conv1x1_hidden(relu(conv3x3_residual(x)))).
  """

  hidden_channels: int
  residual_channels: int
  num_blocks: int
  style: str = "pre_activation"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    if self.style not in RESIDUAL_STYLES:
      raise ValueError(f"residual style {self.style!r} is unknown; use one of {RESIDUAL_STYLES}")
    pre = self.style == "pre_activation"
    for _ in range(self.num_blocks):
      h = nn.relu(x) if pre else x
      h = Conv(self.residual_channels, (3, 3), padding=((1, 1), (1, 1)), dtype=self.dtype)(h)
      h = Conv(self.hidden_channels, (1, 1), dtype=self.dtype)(nn.relu(h))
      x = x + (h if pre else nn.relu(h))
    return nn.relu(x)
