"""The DVQ-VAE: convolutional encoder, a quantizer bottleneck (dvq | mvq | vq | svq) and a
decoder that outputs the parameters of a likelihood head.

Architectures (`architecture`; hidden = `hidden_channels`, n = `num_downsamples`, k =
`pre_quantizer_kernel`, "resstack" = `num_residual_blocks` residual blocks of
`residual_style` and a ReLU):
  vqvae (van den Oord et al. 2017, the default):
    encoder: n 4x4 stride-2 convs, each followed by a ReLU, the first to hidden/2 channels and
      the rest to hidden (a single one goes to hidden); a 3x3 conv to hidden; resstack; a kxk
      conv to the latent channels.
    decoder (the mirror): a 3x3 conv from the quantized latents to hidden; resstack; n 2x
      upsampling stages with a ReLU between them -- the second-to-last to hidden/2, the last to
      the head's channels, the others to hidden.
  dvq_official (`DVQVAE` of the official TF2 code, fostiropoulos/dvq `dvq_model.py`):
    encoder: a 3x3 stride-2 conv to hidden (TF "same" padding: 0 before, 1 after, no ReLU);
      resstack; n-1 4x4 stride-2 convs to hidden, each followed by a ReLU; a kxk conv to the
      latent channels.
    decoder: a 3x3 conv to hidden; resstack; n-1 2x upsampling stages to hidden//2, each
      followed by a ReLU; a last 2x upsampling stage to the head's channels.
The images (uint8) are mapped to [-1, 1] (`input_scaling="symmetric"`) or, as the official
code does, to x/255 - 0.5 in [-0.5, 0.5] (`"official"`), in the compute dtype; the head is
float32 in a float32 model (`Decoder`).
"""

import functools
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from dvq_jax import backends
from dvq_jax import quantizers as q
from dvq_jax.vqvae import context
from dvq_jax.vqvae import layers
from dvq_jax.vqvae import likelihoods
from dvq_jax.vqvae.bottleneck import Quantizer
from dvq_jax.vqvae.bottleneck import alphabet_size
from dvq_jax.vqvae.bottleneck import codes_per_position
from dvq_jax.vqvae.bottleneck import latent_channels
from dvq_jax.vqvae.model_fields import ARCHITECTURES
from dvq_jax.vqvae.model_fields import DTYPES
from dvq_jax.vqvae.model_fields import INPUT_SCALINGS
from dvq_jax.vqvae.model_fields import MAX_HISTOGRAM_ENTRIES
from dvq_jax.vqvae.model_fields import check_model_fields
from dvq_jax.vqvae.model_fields import code_alphabet_size
from dvq_jax.vqvae.model_fields import codes_per_image
from dvq_jax.vqvae.model_fields import vector_dim

# The config-field names live in `model_fields`; they stay importable from here.
__all__ = ["ARCHITECTURES", "DTYPES", "INPUT_SCALINGS", "MAX_HISTOGRAM_ENTRIES", "VQVAE", "Decoder",
           "Encoder", "ModelOutput", "build_model", "code_alphabet_size", "codes_per_image",
           "scale_images", "vector_dim"]


class ModelOutput(NamedTuple):
  """What `VQVAE.__call__` returns.

  Attributes:
    head: `(batch, height, width, C_out)`, the likelihood head's parameters, in float32 (bfloat16
      in a bfloat16 model on an accelerator, see `Decoder`); a context head's are conditioned
      on the true pixels of the earlier groups (`vqvae.context`).
    quant: the bottleneck's QuantizerOutput; codes `(batch, h, w, L)` for dvq/mvq and
      `(batch, h, w)` for vq/svq, with h = height / 2^num_downsamples (w likewise).
    latents: the encoder output `(batch, h, w, C)` the quantizer saw (EMA codebooks and
      dead-code restart learn from it, `vqvae.codebook_learning`).
  """

  head: jax.Array
  quant: q.QuantizerOutput
  latents: jax.Array


def scale_images(images: jax.Array, input_scaling: str = "symmetric") -> jax.Array:
  """uint8 images -> float32 encoder inputs: symmetric x/127.5 - 1 or official x/255 - 0.5.

  >>> import jax.numpy as jnp
  >>> scale_images(jnp.array([0, 255], jnp.uint8), "official").tolist()
  [-0.5, 0.5]
  """
  x = images.astype(jnp.float32)
  if input_scaling == "official":
    return x / 255.0 - 0.5
  if input_scaling == "symmetric":
    return x / 127.5 - 1.0
  raise ValueError(f"input scaling {input_scaling!r} is unknown; use one of {INPUT_SCALINGS}")


class Encoder(nn.Module):
  """`(batch, H, W, C)` images in float -> latents `(batch, H/2^n, W/2^n, latent_channels)`."""

  hidden_channels: int
  residual_channels: int
  num_downsamples: int
  num_residual_blocks: int
  latent_channels: int
  architecture: str = "vqvae"
  residual_style: str = "pre_activation"
  pre_quantizer_kernel: int = 1
  dtype: jnp.dtype = jnp.float32

  def _residual_stack(self, x: jax.Array) -> jax.Array:
    return layers.ResidualStack(self.hidden_channels, self.residual_channels,
                                self.num_residual_blocks, style=self.residual_style,
                                dtype=self.dtype)(x)

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    hidden, n = self.hidden_channels, self.num_downsamples
    if self.architecture == "dvq_official":
      x = layers.Conv(hidden, (3, 3), strides=(2, 2), padding="SAME", dtype=self.dtype)(x)
      x = self._residual_stack(x)
      for _ in range(n - 1):
        x = nn.relu(layers.Downsample(hidden, dtype=self.dtype)(x))
    else:
      for i in range(n):
        features = hidden // 2 if i == 0 and n > 1 else hidden
        x = nn.relu(layers.Downsample(features, dtype=self.dtype)(x))
      x = layers.Conv(hidden, (3, 3), padding=((1, 1), (1, 1)), dtype=self.dtype)(x)
      x = self._residual_stack(x)
    k = self.pre_quantizer_kernel
    pad = ((k // 2, (k - 1) // 2),) * 2  # "same" as TF pads it (the extra row goes after)
    return layers.Conv(self.latent_channels, (k, k), padding=pad, dtype=self.dtype)(x)


class Decoder(nn.Module):
  """Quantized latents `(batch, h, w, C_q)` -> head `(batch, h*2^n, w*2^n, out_channels)`.

  The head is float32 in a float32 model (also with a bfloat16 `head_dtype`: its GEMMs
  accumulate and return float32) and, on CPU, in a bfloat16 one; a bfloat16 model on an
  accelerator returns it in bfloat16, where float32 logits would double the memory traffic of
  the step's largest tensor and of its gradient (`dvq_jax.backends.bfloat16_logits`,
  benchmarks/RESULTS.md). The likelihoods reduce it in float32.
  """

  hidden_channels: int
  residual_channels: int
  num_downsamples: int
  num_residual_blocks: int
  out_channels: int
  upsample: str = "transpose_phases"
  architecture: str = "vqvae"
  residual_style: str = "pre_activation"
  dtype: jnp.dtype = jnp.float32
  head_dtype: jnp.dtype | None = None  # the last upsampling layer's; None = dtype

  def _stage_features(self, j: int) -> int:
    n, hidden = self.num_downsamples, self.hidden_channels
    if j == n - 1:
      return self.out_channels
    if self.architecture == "dvq_official":
      return hidden // 2
    return hidden // 2 if j == n - 2 else hidden

  def _float32_head(self) -> bool:
    return self.dtype == jnp.float32 or not backends.bfloat16_logits()

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = layers.Conv(self.hidden_channels, (3, 3), padding=((1, 1), (1, 1)), dtype=self.dtype)(x)
    x = layers.ResidualStack(self.hidden_channels, self.residual_channels,
                             self.num_residual_blocks, style=self.residual_style,
                             dtype=self.dtype)(x)
    n = self.num_downsamples
    for j in range(n):
      last = j == n - 1
      dtype = (self.head_dtype or self.dtype) if last else self.dtype
      x = layers.Upsample(self._stage_features(j), self.upsample, dtype=dtype,
                          float32_output=last and self._float32_head())(x)
      if not last:
        x = nn.relu(x)
    return x


class VQVAE(nn.Module):
  """The DVQ-VAE. Build it from a config with `build_model`.

  `model.apply({"params": params}, images)` runs the whole model; `method=model.encode` and
  `method=model.decode` run either half, e.g. to edit one codebook's codes:

  >>> import jax, jax.numpy as jnp
  >>> model = VQVAE("dvq", num_codebooks=2, codebook_size=8, codebook_dim=2, beta=0.25,
  ...               likelihood="mse", hidden_channels=8, residual_channels=4)
  >>> images = jnp.zeros((1, 8, 8, 3), jnp.uint8)
  >>> params = model.init(jax.random.key(0), images)["params"]
  >>> codes = model.apply({"params": params}, images, method=model.encode)
  >>> codes.shape
  (1, 2, 2, 2)
  >>> model.apply({"params": params}, codes.at[..., 1].set(3), method=model.decode).shape
  (1, 8, 8, 3)

  Attributes:
    quantizer: dvq | mvq | vq | svq | rvq | fsq | lfq (see `Quantizer`).
    num_codebooks: L (vq uses one codebook whatever this says).
    codebook_size: K.
    codebook_dim: D, the features of each codebook vector (`build_model` passes L*D here for
      every quantizer but dvq when `config.equal_width` is True).
    slice_sizes: dvq only, the L slice widths D_l of paper Eq. 3 (max = D); () = L equal slices.
    beta: weight of the commitment (encoder) term ||z - sg(e)||^2, as in van den Oord et al.
      The DVQ paper gives no value (its Eq. 2/4 print beta on the codebook term
      d(sg(z), z_q)); the official DVQ code uses 1.0, this project defaults to 0.25.
    quantizer_loss_reduction: sum_features | mean_elements (see `bottleneck.LOSS_REDUCTIONS`).
    likelihood: categorical256 | logistic_mixture | mse | context_logistic_mixture (see
      `dvq_jax.vqvae.likelihoods`, `dvq_jax.vqvae.context`).
    image_channels: C of the images (the decoder's head size depends on it).
    architecture: vqvae | dvq_official (module docstring).
    residual_style: pre_activation | post_activation (`layers.ResidualStack`).
    input_scaling: symmetric (x/127.5 - 1) | official (x/255 - 0.5).
    pre_quantizer_kernel: k of the encoder's last (kxk) conv to the latent channels.
    upsample: transpose_phases | subpixel | transpose (`layers.Upsample`).
    codebook_init, codebook_init_scale: `quantizers.init_codebooks` scheme and scale (0 = the
      scheme's default).
    dtype: compute dtype name, float32 | bfloat16 (`build_model` resolves the config's "auto"
      by backend, `dvq_jax.backends.compute_dtype`); params are float32, the quantizer's
      distances float32, the head's output float32 in a float32 model (see `Decoder`).
    head_dtype: compute dtype of the decoder's last upsampling layer (the head, most of the
      step's FLOPs), float32 | bfloat16; "" = dtype. float32 with a bfloat16 head is the
      fastest mix measured on an XLA:CPU with AVX-512 BF16 (XLA:CPU runs bfloat16 convolutions
      in float32); without those instructions all-float32 is faster (docs/scaling.md,
      "CPU performance notes").
    cosine, gradient_estimator: cosine codes, straight_through | rotation (see `Quantizer`).
    num_stages: rvq's, rfsq's and rlfq's M; fsq_levels: fsq's and rfsq's grid (D = len);
      lfq_entropy_weight: the entropy penalty of lfq, bsq and rlfq; bsq_group_size: bsq's
      batch-entropy groups (0 = D); codebook_parameterization: direct | simvq;
      code_temperature, code_relaxation: sampled codes in training (see `Quantizer`).
  """

  quantizer: str
  num_codebooks: int
  codebook_size: int
  codebook_dim: int
  beta: float
  likelihood: str
  image_channels: int = 3
  hidden_channels: int = 256
  residual_channels: int = 64
  num_downsamples: int = 2
  num_residual_blocks: int = 2
  upsample: str = "transpose_phases"
  architecture: str = "vqvae"
  residual_style: str = "pre_activation"
  input_scaling: str = "symmetric"
  pre_quantizer_kernel: int = 1
  num_mixtures: int = 10
  codebook_init: str = "truncated_normal"
  codebook_init_scale: float = 0.0
  slice_sizes: tuple[int, ...] = ()
  dtype: str = "float32"
  head_dtype: str = ""
  quantizer_loss_reduction: str = "sum_features"
  cosine: bool = False
  gradient_estimator: str = "straight_through"
  num_stages: int = 1
  fsq_levels: tuple[int, ...] = ()
  lfq_entropy_weight: float = 0.1
  bsq_group_size: int = 0
  codebook_parameterization: str = "direct"
  code_temperature: float = 0.0
  code_relaxation: str = "straight_through"

  @property
  def codes_per_position(self) -> int:
    """Columns of the codes per latent position: L (1 for vq/svq, L*M for rvq)."""
    return codes_per_position(self.quantizer, self.num_codebooks, self.num_stages)

  @property
  def alphabet_size(self) -> int:
    """Values one code takes: K, prod(fsq_levels) for fsq, 2^D for lfq."""
    return alphabet_size(self.quantizer, self.codebook_size, self.codebook_dim, self.fsq_levels)

  def setup(self):
    dtype = jnp.dtype(self.dtype)
    self.encoder = Encoder(
        self.hidden_channels, self.residual_channels, self.num_downsamples,
        self.num_residual_blocks,
        latent_channels(self.quantizer, self.num_codebooks, self.codebook_dim, self.slice_sizes),
        architecture=self.architecture, residual_style=self.residual_style,
        pre_quantizer_kernel=self.pre_quantizer_kernel, dtype=dtype,
    )
    self.quantize = Quantizer(self.quantizer, self.num_codebooks, self.codebook_size,
                              self.codebook_dim, beta=self.beta,
                              codebook_init=self.codebook_init,
                              loss_reduction=self.quantizer_loss_reduction,
                              codebook_init_scale=self.codebook_init_scale,
                              slice_sizes=self.slice_sizes, cosine=self.cosine,
                              gradient_estimator=self.gradient_estimator,
                              num_stages=self.num_stages, fsq_levels=self.fsq_levels,
                              lfq_entropy_weight=self.lfq_entropy_weight,
                              bsq_group_size=self.bsq_group_size,
                              codebook_parameterization=self.codebook_parameterization,
                              code_temperature=self.code_temperature,
                              code_relaxation=self.code_relaxation)
    self.decoder = Decoder(
        self.hidden_channels, self.residual_channels, self.num_downsamples,
        self.num_residual_blocks,
        likelihoods.num_head_channels(self.likelihood, self.image_channels, self.num_mixtures),
        upsample=self.upsample, architecture=self.architecture,
        residual_style=self.residual_style, dtype=dtype,
        head_dtype=jnp.dtype(self.head_dtype) if self.head_dtype else None,
    )
    if self.likelihood in likelihoods.CONTEXT_NAMES:
      self.context = context.ContextHead(
          likelihoods.num_head_channels(self.likelihood, self.image_channels, self.num_mixtures))

  def conditioned_head(self, base: jax.Array, images: jax.Array) -> jax.Array:
    """The decoder's output -> the head the likelihood scores: for a context head, each pixel
    group's parameters given the true earlier groups (teacher forcing); else `base` itself."""
    if self.likelihood in likelihoods.CONTEXT_NAMES:
      return self.context(base, images)
    return base

  def group_head(self, base: jax.Array, images: jax.Array, group: int) -> jax.Array:
    """Context heads only: `ContextHead.group`, group `group`'s parameters at its pixels
    `(batch, H/2, W/2, C_out)` from the decoder's output and the earlier groups' pixels."""
    return self.context.group(base, images, group)

  def mean_image(self, base: jax.Array) -> jax.Array:
    """The decoder's output -> the image the codes decode to, float32 `(batch, H, W, C)` in
    [0, 255]: `likelihoods.mean_image`, or for a context head `ContextHead.mean_image` (group by
    group, from the codes alone)."""
    if self.likelihood in likelihoods.CONTEXT_NAMES:
      return self.context.mean_image(base, self.image_channels)
    return likelihoods.mean_image(self.likelihood, base, self.image_channels)

  def latents(self, images: jax.Array) -> jax.Array:
    """uint8 `(batch, H, W, C)` -> encoder output `(batch, h, w, latent channels)`, compute dtype."""
    if images.dtype != jnp.uint8 or images.ndim != 4:
      raise ValueError(f"images must be uint8 (batch, height, width, C), got {images.dtype}"
                       f" {images.shape}")
    _, height, width, channels = images.shape
    factor = 2**self.num_downsamples
    if channels != self.image_channels or height % factor or width % factor:
      raise ValueError(
          f"images shape {images.shape}: need C = image_channels = {self.image_channels} and"
          f" height, width divisible by 2^num_downsamples = {factor}"
      )
    return self.encoder(scale_images(images, self.input_scaling).astype(jnp.dtype(self.dtype)))

  def __call__(self, images: jax.Array, mask: jax.Array | None = None) -> ModelOutput:
    """uint8 `(batch, H, W, C)` -> ModelOutput(head `(batch, H, W, C_out)`, quant);
    `mask` (optional bool `(batch,)`) leaves padding images out of the quantizer's losses and
    statistics."""
    latents = self.latents(images)
    quant = self.quantize(latents, mask)
    head = self.conditioned_head(self.decoder(quant.quantized), images)
    return ModelOutput(head=head, quant=quant, latents=latents)

  def encode(self, images: jax.Array) -> jax.Array:
    """uint8 `(batch, H, W, C)` -> int32 codes, `(batch, h, w, L)` (dvq/mvq/fsq/lfq),
    `(batch, h, w, L*M)` (rvq) or `(batch, h, w)` (vq/svq)."""
    return self.quantize(self.latents(images)).codes

  def decode(self, codes: jax.Array) -> jax.Array:
    """Codes (the layout `encode` returns) -> the decoder's output `(batch, H, W, C_out)` (see
    `Decoder`): the head itself, or a context head's group-0 parameters (`group_head`)."""
    return self.decoder(self.quantize.lookup(codes).astype(jnp.dtype(self.dtype)))


def build_model(config, image_shape: tuple[int, int, int] | None = None) -> VQVAE:
  """The VQVAE a learned-prior config describes, after checking its fields.

  Args:
    config: a `dvq_jax.vqvae.defaults.learned_prior()`-style ConfigDict.
    image_shape: `(height, width, C)` of the data set; sets `image_channels` (default 3) and,
      when given, also checks that the latent grid fits (see `model_fields.codes_per_image`).

  Raises:
    ConfigError: a one-line message naming the bad field and the fix.

  >>> from dvq_jax.vqvae import defaults
  >>> config = defaults.learned_prior()
  >>> build_model(config, (32, 32, 3)).quantizer
  'dvq'
  >>> config.quantizer = "dq"
  >>> build_model(config)
  Traceback (most recent call last):
  ...
  dvq_jax.errors.ConfigError: config.quantizer = 'dq' is unknown; use one of dvq, mvq, vq, svq, rvq, fsq, lfq, bsq, rfsq, rlfq
  """
  dim, slice_sizes = check_model_fields(config, image_shape)
  model = config.model
  model_class = VQVAE
  projection, levels = config.get("slice_projection", "split"), config.get("levels", 1)
  if projection != "split" or levels != 1:
    # hierarchy subclasses VQVAE, so it is imported here, not at the top.
    from dvq_jax.vqvae import hierarchy  # pylint: disable=g-import-not-at-top
    model_class = functools.partial(hierarchy.HierarchicalVQVAE, slice_projection=projection,
                                    levels=levels)
  return model_class(
      quantizer=config.quantizer,
      num_codebooks=config.num_codebooks,
      codebook_size=config.codebook_size,
      codebook_dim=dim,
      slice_sizes=slice_sizes,
      beta=float(config.beta),
      likelihood=config.likelihood,
      image_channels=3 if image_shape is None else int(image_shape[-1]),
      hidden_channels=model.hidden_channels,
      residual_channels=model.residual_channels,
      num_downsamples=model.num_downsamples,
      num_residual_blocks=model.num_residual_blocks,
      upsample=model.upsample,
      architecture=model.architecture,
      residual_style=model.residual_style,
      input_scaling=model.input_scaling,
      pre_quantizer_kernel=model.pre_quantizer_kernel,
      num_mixtures=model.num_mixtures,
      codebook_init=model.codebook_init,
      codebook_init_scale=float(model.codebook_init_scale),
      dtype=backends.compute_dtype(model.dtype),
      head_dtype=backends.compute_dtype(model.get("head_dtype", "")),
      quantizer_loss_reduction=config.get("quantizer_loss_reduction", "sum_features"),
      cosine=config.get("cosine", False),
      gradient_estimator=config.get("gradient_estimator", "straight_through"),
      num_stages=config.get("num_stages", 1),
      fsq_levels=tuple(config.get("fsq_levels", ())),
      lfq_entropy_weight=float(config.get("lfq_entropy_weight", 0.1)),
      bsq_group_size=config.get("bsq_group_size", 0),
      codebook_parameterization=config.get("codebook_parameterization", "direct"),
      code_temperature=float(config.get("code_temperature", 0.0)),
      code_relaxation=config.get("code_relaxation", "straight_through"),
  )
