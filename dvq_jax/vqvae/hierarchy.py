"""The Depthwise Quantization options of the VQ-VAE: learned slice projections and two levels.

`build_model` returns a `HierarchicalVQVAE` when `config.slice_projection` = "learned" or
`config.levels` = 2 (`vqvae.level_fields` checks both), and the plain `VQVAE` otherwise.

slice_projection = "learned" (Fostiropoulos & Boehm, "Implicit Feature Decoupling with
  Depthwise Quantization", CVPR 2022): codebook l quantizes its own learned 1x1 projection
  `z @ W_l + b_l` (C -> D) of the whole encoder output instead of the fixed channel slice l
  (`SliceProjection`, one grouped einsum). The encoder keeps its L*D output channels, so only
  the quantizer's input projection changes. The decoder side maps the L quantized D-wide
  slices back through its first 3x3 convolution (L*D -> hidden), exactly as for "split":
  no separate output projection is added. The paper's code (`DQAE` in its `dq.py`) does the
  same on the decoder side (the L quantized slices concatenated into the decoder's first
  conv); on the encoder side its L 1x1 convs read the encoder's hidden features directly,
  where here they read the L*D-channel latents the encoder's last conv makes from them: the
  composed linear map is the same family of functions, as the latents have as many channels
  (L*D) as the L projections output together (with `pre_quantizer_kernel` 1).
levels = 2 (VQ-VAE-2, Razavi et al. 2019): a top encoder (a 4x4 stride-2 conv and a 3x3 conv)
  turns the bottom latents `(batch, h, w, C)` into top latents `(batch, h/2, w/2, C)`,
  quantized by a second quantizer of the same kind, L, K and D with its own codebooks; a top
  decoder (a 3x3 conv and a 2x upsampling stage) brings the top quantized latents back to
  `(batch, h, w, C_q)`, concatenated to the bottom quantized latents as the decoder's input.
  The codes of both levels are reported, bottom then top along the positions (`join_levels`),
  and the rate counts both (`model_fields.codes_per_image`); the quantizer losses add up.
  Only the decoder is conditioned on the top level: VQ-VAE-2 and the paper's code also feed
  the decoded top latents to the bottom level's quantizer input, which this model does not.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from dvq_jax import quantizers as q
from dvq_jax.vqvae import layers
from dvq_jax.vqvae.bottleneck import latent_channels
from dvq_jax.vqvae.bottleneck import quantized_channels
from dvq_jax.vqvae.model import ModelOutput
from dvq_jax.vqvae.model import VQVAE


class SliceProjection(nn.Module):
  """Latents `(batch, h, w, C)` -> L learned projections `(batch, h, w, L*D)`, slice-major."""

  num_codebooks: int  # L
  codebook_dim: int  # D
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    shape = (self.num_codebooks, z.shape[-1], self.codebook_dim)
    # Each codebook's (C, D) kernel is initialised as its own Dense layer would be.
    init = nn.initializers.lecun_normal(in_axis=-2, out_axis=-1, batch_axis=(0,))
    kernel = self.param("kernel", init, shape)
    bias = self.param("bias", nn.initializers.zeros_init(), shape[::2])
    out = jnp.einsum("...c,lcd->...ld", z, kernel.astype(self.dtype)) + bias.astype(self.dtype)
    return out.reshape(*z.shape[:-1], -1)


def join_levels(bottom: jax.Array, top: jax.Array) -> jax.Array:
  """Bottom codes `(batch, h, w, n)` and top `(batch, h/2, w/2, n)` -> `(batch, 5*h*w/4, n)`.

  >>> join_levels(jnp.zeros((1, 2, 2, 3), int), jnp.ones((1, 1, 1, 3), int))[0, :, 0].tolist()
  [0, 0, 0, 0, 1]
  """
  batch, columns = bottom.shape[0], bottom.shape[-1]
  return jnp.concatenate([bottom.reshape(batch, -1, columns), top.reshape(batch, -1, columns)],
                         axis=1)


def split_levels(codes: jax.Array) -> tuple[jax.Array, jax.Array]:
  """`join_levels`' output -> (bottom `(batch, 4N, n)`, top `(batch, N, n)`)."""
  top = codes.shape[1] // 5
  return codes[:, :4 * top], codes[:, 4 * top:]


class HierarchicalVQVAE(VQVAE):
  """The VQVAE with `slice_projection` and `levels` (module docstring).

  `encode` returns the codes of every level, `(batch, 5*h*w/4, L)` with levels = 2 (bottom
  positions row-major, then top); `decode` needs levels = 1.
  """

  slice_projection: str = "split"
  levels: int = 1

  def setup(self):
    super().setup()
    dtype = jnp.dtype(self.dtype)
    learned = self.slice_projection == "learned"
    if learned:
      self.projection = SliceProjection(self.num_codebooks, self.codebook_dim, dtype=dtype)
    if self.levels == 2:
      channels = latent_channels(self.quantizer, self.num_codebooks, self.codebook_dim,
                                 self.slice_sizes)
      self.top_encoder = nn.Sequential([
          layers.Downsample(self.hidden_channels, dtype=dtype), nn.relu,
          layers.Conv(channels, (3, 3), padding=((1, 1), (1, 1)), dtype=dtype)])
      self.top_quantize = self.quantize.clone(parent=None, name=None)
      if learned:
        self.top_projection = SliceProjection(self.num_codebooks, self.codebook_dim, dtype=dtype)
      self.top_decoder = nn.Sequential([
          layers.Conv(self.hidden_channels, (3, 3), padding=((1, 1), (1, 1)), dtype=dtype),
          nn.relu,
          layers.Upsample(quantized_channels(self.quantizer, self.num_codebooks,
                                             self.codebook_dim), self.upsample, dtype=dtype)])

  def _project(self, projection_name: str, z: jax.Array) -> jax.Array:
    return getattr(self, projection_name)(z) if self.slice_projection == "learned" else z

  def latents(self, images: jax.Array) -> jax.Array:
    """uint8 `(batch, H, W, C)` -> what the bottom quantizer sees, `(batch, h, w, L*D)`."""
    return self._project("projection", VQVAE.latents(self, images))

  def _levels(self, images: jax.Array):
    encoded = VQVAE.latents(self, images)
    latents = self._project("projection", encoded)
    quant = self.quantize(latents)
    if self.levels == 1:
      return latents, quant, quant.quantized
    top = self.top_quantize(self._project("top_projection", self.top_encoder(encoded)))
    conditioned = jnp.concatenate(
        [quant.quantized, self.top_decoder(top.quantized).astype(quant.quantized.dtype)], -1)
    joined = q.QuantizerOutput(
        quantized=quant.quantized, codes=join_levels(quant.codes, top.codes),
        loss=quant.loss + top.loss, codebook_loss=quant.codebook_loss + top.codebook_loss,
        commitment_loss=quant.commitment_loss + top.commitment_loss,
        perplexity=jnp.concatenate([quant.perplexity, top.perplexity]),
        usage=jnp.concatenate([quant.usage, top.usage]))
    return latents, joined, conditioned

  def __call__(self, images: jax.Array) -> ModelOutput:
    """uint8 `(batch, H, W, C)` -> ModelOutput; with levels = 2 quant holds both levels' codes,
    losses summed and perplexity/usage `(2L,)` (bottom codebooks, then top)."""
    latents, quant, decoder_input = self._levels(images)
    return ModelOutput(head=self.decoder(decoder_input), quant=quant, latents=latents)

  def encode(self, images: jax.Array) -> jax.Array:
    """uint8 images -> codes: `VQVAE.encode`'s layout, or `(batch, 5*h*w/4, L)` for 2 levels."""
    return self._levels(images)[1].codes

  def decode(self, codes: jax.Array) -> jax.Array:
    """Codes -> float32 head; levels = 1 only."""
    if self.levels != 1:
      raise ValueError("decode of a 2-level model is not supported: the tokenizer, prior and"
                       " codec read one latent grid; train with config.levels = 1")
    return VQVAE.decode(self, codes)
