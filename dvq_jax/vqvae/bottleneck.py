"""The VQ-VAE bottleneck as a linen module around the pure quantizers of `dvq_jax.quantizers`.

The codebooks are one ordinary float32 param, `codebooks` `(L, K, D)` (`(1, K, D)` for vq), drawn
by `init_codebooks` and trained by gradient through the codebook loss. Distances, codes and
losses are computed in float32 whatever the compute dtype of the encoder.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from dvq_jax import quantizers as q

QUANTIZERS = ("dvq", "mvq", "vq", "svq")
# How the codebook and commitment terms reduce over a latent position's features:
#   sum_features   sum of squares over the features of the quantized vector (van den Oord et al.);
#   mean_elements  each codebook's per-element mean, summed over codebooks, i.e. sum_features / D:
#                  the official DVQ code, whose L VQ layers each add tf.reduce_mean over (N, D).
LOSS_REDUCTIONS = ("sum_features", "mean_elements")


def latent_channels(kind: str, num_codebooks: int, codebook_dim: int,
                    slice_sizes: tuple[int, ...] = ()) -> int:
  """Channels of the encoder output: L*D (or sum(slice_sizes)) for dvq, D for mvq, vq and svq.

  >>> latent_channels("dvq", 8, 4), latent_channels("mvq", 8, 4)
  (32, 4)
  >>> latent_channels("dvq", 3, 4, (4, 3, 3))
  10
  """
  if kind == "dvq":
    return sum(slice_sizes) if slice_sizes else num_codebooks * codebook_dim
  return codebook_dim


def quantized_channels(kind: str, num_codebooks: int, codebook_dim: int) -> int:
  """Channels of the decoder input: L*D for dvq and mvq (L vectors concatenated), D for vq, svq.

  >>> quantized_channels("mvq", 8, 4), quantized_channels("svq", 8, 4)
  (32, 4)
  """
  return num_codebooks * codebook_dim if kind in ("dvq", "mvq") else codebook_dim


def codes_by_codebook(kind: str, codes: jax.Array, num_codebooks: int) -> jax.Array:
  """The model's codes regrouped as `(batch, codes per codebook, L)`: column l holds codebook l's.

  Args:
    kind: dvq | mvq | vq | svq.
    codes: `(batch, h, w, L)` for dvq/mvq, `(batch, h, w)` for vq and svq. For svq the h*w
      positions, in row-major order, fall into L contiguous groups; group l uses codebook l.
    num_codebooks: L (1 for vq).

  >>> import jax.numpy as jnp
  >>> codes_by_codebook("svq", jnp.arange(4).reshape(1, 2, 2), 2)[0].tolist()
  [[0, 2], [1, 3]]
  """
  batch = codes.shape[0]
  if kind in ("dvq", "mvq"):
    return codes.reshape(batch, -1, num_codebooks)
  if kind == "vq":
    return codes.reshape(batch, -1, 1)
  return codes.reshape(batch, num_codebooks, -1).transpose(0, 2, 1)


class Quantizer(nn.Module):
  """Quantizes encoder latents `(batch, h, w, C)` with L codebooks of K vectors of D features.

  The losses are those of `dvq_jax.quantizers` (means over latent positions of squared
  distances summed over a vector's features, beta on the commitment term) for
  `loss_reduction = "sum_features"`, and those divided by the D features of a codebook vector
  for `"mean_elements"` (the official DVQ code: each of its L VQ layers takes the per-element
  mean over its own D-wide slice, and the L terms add up); only the scale differs. With
  unequal `slice_sizes` the divisor is D = max(slice_sizes).

  kind:
    dvq: C = L*D; channel slice l uses codebook l (`depthwise_quantize`); codes `(B, h, w, L)`.
      With `slice_sizes` (paper Eq. 3) C = sum(slice_sizes) and slice l has D_l <= D features.
    mvq: C = D; every codebook quantizes the whole vector and the L results are concatenated
      to L*D channels (`multi_codebook_quantize`); codes `(B, h, w, L)`.
    vq: C = D; ONE codebook whatever `num_codebooks` says, so the rate is one code per
      position (`vector_quantize`); codes `(B, h, w)`.
    svq: C = D; the h*w positions, row-major, split into L contiguous groups and group l uses
      codebook l (`spatial_quantize`, h*w divisible by L); codes `(B, h, w)`.
  """

  kind: str
  num_codebooks: int  # L
  codebook_size: int  # K
  codebook_dim: int  # D
  beta: float = 0.25
  codebook_init: str = "truncated_normal"
  loss_reduction: str = "sum_features"  # see LOSS_REDUCTIONS
  codebook_init_scale: float = 0.0  # 0 = the scheme's default spread
  slice_sizes: tuple[int, ...] = ()  # dvq only: unequal D_l, max = D; () = L equal slices of D

  def setup(self):
    num = 1 if self.kind == "vq" else self.num_codebooks
    scale = self.codebook_init_scale or None
    self.codebooks = self.param(
        "codebooks",
        lambda key: q.init_codebooks(key, num, self.codebook_size, self.codebook_dim,
                                     scheme=self.codebook_init, scale=scale),
    )

  def __call__(self, z: jax.Array) -> q.QuantizerOutput:
    """`z` `(batch, h, w, C)` -> QuantizerOutput; quantized `(batch, h, w, C_q)` in z's dtype."""
    z32 = z.astype(jnp.float32)
    if self.kind == "dvq":
      out = q.depthwise_quantize(z32, self.codebooks, beta=self.beta,
                                 slice_sizes=self.slice_sizes or None)
    elif self.kind == "mvq":
      out = q.multi_codebook_quantize(z32, self.codebooks, beta=self.beta)
    elif self.kind == "vq":
      out = q.vector_quantize(z32, self.codebooks[0], beta=self.beta)
    elif self.kind == "svq":
      batch, height, width, channels = z.shape
      out = q.spatial_quantize(z32.reshape(batch, height * width, channels), self.codebooks,
                               beta=self.beta)
      out = out._replace(quantized=out.quantized.reshape(z.shape),
                         codes=out.codes.reshape(batch, height, width))
    else:
      raise ValueError(f"quantizer {self.kind!r} is unknown; use one of {QUANTIZERS}")
    if self.loss_reduction == "mean_elements":
      # The quantizers sum squares over a vector's features and add the L codebooks' terms;
      # the official code adds L per-element means, one per codebook over its D features.
      features = self.codebook_dim
      out = out._replace(loss=out.loss / features, codebook_loss=out.codebook_loss / features,
                         commitment_loss=out.commitment_loss / features)
    elif self.loss_reduction != "sum_features":
      raise ValueError(f"loss_reduction {self.loss_reduction!r} is unknown; use one of"
                       f" {LOSS_REDUCTIONS}")
    return out._replace(quantized=out.quantized.astype(z.dtype))

  def lookup(self, codes: jax.Array) -> jax.Array:
    """Codes (the layout of `__call__`) -> float32 quantized vectors `(batch, h, w, C_q)`."""
    if self.kind == "dvq":
      return q.depthwise_lookup(codes, self.codebooks, slice_sizes=self.slice_sizes or None)
    if self.kind == "mvq":
      return q.multi_codebook_lookup(codes, self.codebooks)
    if self.kind == "vq":
      return q.vector_lookup(codes, self.codebooks[0])
    if self.kind == "svq":
      batch, height, width = codes.shape
      vectors = q.spatial_lookup(codes.reshape(batch, height * width), self.codebooks)
      return vectors.reshape(batch, height, width, -1)
    raise ValueError(f"quantizer {self.kind!r} is unknown; use one of {QUANTIZERS}")
