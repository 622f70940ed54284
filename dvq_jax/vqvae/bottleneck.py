"""The VQ-VAE bottleneck as a linen module around the pure quantizers of `dvq_jax.quantizers`.

The codebooks are one ordinary float32 param, `codebooks` `(L, K, D)` (`(1, K, D)` for vq,
`(L, M, K, D)` for rvq), drawn by `init_codebooks` and trained by gradient through the codebook
loss; fsq and lfq have fixed implicit codebooks and no param. Distances, codes and
losses are computed in float32 whatever the compute dtype of the encoder.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from dvq_jax import quantizers as q

QUANTIZERS = ("dvq", "mvq", "vq", "svq", "rvq", "fsq", "lfq")
# The families that quantize L feature slices of D channels each, like dvq.
DEPTHWISE = ("dvq", "rvq", "fsq", "lfq")
# Quantizers with a nearest-code search: cosine codes apply to these, the rotation trick to
# them and rvq (residual_quantize has no cosine option); fsq and lfq round, straight-through.
COSINE_QUANTIZERS = ("dvq", "mvq", "vq", "svq")
ESTIMATOR_QUANTIZERS = COSINE_QUANTIZERS + ("rvq",)
# How the codebook and commitment terms reduce over a latent position's features:
#   sum_features   sum of squares over the features of the quantized vector (van den Oord et al.);
#   mean_elements  each codebook's per-element mean, summed over codebooks, i.e. sum_features / D:
#                  the official DVQ code, whose L VQ layers each add tf.reduce_mean over (N, D).
LOSS_REDUCTIONS = ("sum_features", "mean_elements")


def latent_channels(kind: str, num_codebooks: int, codebook_dim: int,
                    slice_sizes: tuple[int, ...] = ()) -> int:
  """Channels of the encoder output: L*D (or sum(slice_sizes)) for dvq, rvq, fsq and lfq, D for
  mvq, vq and svq.

  >>> latent_channels("dvq", 8, 4), latent_channels("mvq", 8, 4)
  (32, 4)
  >>> latent_channels("dvq", 3, 4, (4, 3, 3))
  10
  """
  if kind in DEPTHWISE:
    return sum(slice_sizes) if slice_sizes else num_codebooks * codebook_dim
  return codebook_dim


def quantized_channels(kind: str, num_codebooks: int, codebook_dim: int) -> int:
  """Channels of the decoder input: L*D for mvq (L vectors concatenated) and the depthwise
  families, D for vq and svq.

  >>> quantized_channels("mvq", 8, 4), quantized_channels("svq", 8, 4)
  (32, 4)
  """
  return num_codebooks * codebook_dim if kind in DEPTHWISE + ("mvq",) else codebook_dim


def codes_per_position(kind: str, num_codebooks: int, num_stages: int = 1) -> int:
  """Codes stored per latent position: L for dvq, mvq, fsq and lfq, L*M for rvq, 1 for vq, svq.

  >>> codes_per_position("rvq", 2, 3), codes_per_position("svq", 4)
  (6, 1)
  """
  if kind == "rvq":
    return num_codebooks * num_stages
  return num_codebooks if kind in ("dvq", "mvq", "fsq", "lfq") else 1


def alphabet_size(kind: str, codebook_size: int, codebook_dim: int,
                  fsq_levels: tuple[int, ...] = ()) -> int:
  """Values one code can take: K, prod(fsq_levels) for fsq, 2^D for lfq (D bits a slice).

  >>> alphabet_size("dvq", 16, 4), alphabet_size("fsq", 16, 2, (4, 5)), alphabet_size("lfq", 16, 3)
  (16, 20, 8)
  """
  if kind == "fsq":
    return math.prod(fsq_levels)
  if kind == "lfq":
    return 2**codebook_dim
  return codebook_size


def codes_by_codebook(kind: str, codes: jax.Array, num_codebooks: int) -> jax.Array:
  """The model's codes regrouped as `(batch, codes per codebook, L)`: column l holds codebook l's.

  Args:
    kind: one of QUANTIZERS.
    codes: `(batch, h, w, L)` for dvq/mvq/fsq/lfq, `(batch, h, w, L*M)` for rvq (slice-major:
      column l*M + m is slice l's stage m), `(batch, h, w)` for vq and svq. For svq the h*w
      positions, in row-major order, fall into L contiguous groups; group l uses codebook l.
    num_codebooks: the columns: L (1 for vq, L*M for rvq).

  >>> import jax.numpy as jnp
  >>> codes_by_codebook("svq", jnp.arange(4).reshape(1, 2, 2), 2)[0].tolist()
  [[0, 2], [1, 3]]
  """
  batch = codes.shape[0]
  if kind in ("dvq", "mvq", "rvq", "fsq", "lfq"):
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
    rvq: C = L*D; slice l is an M-stage residual VQ with its own M codebooks of K vectors
      (`depthwise_residual_quantize`; L = 1 is plain RVQ); codes `(B, h, w, L*M)`, slice-major.
    fsq: C = L*D with D = len(fsq_levels); each slice is rounded to the fixed grid
      (`finite_scalar_quantize`): DVQ with a grid codebook of prod(fsq_levels) values;
      codes `(B, h, w, L)`; no params, no codebook or commitment loss.
    lfq: C = L*D; each slice of D dimensions is quantized to its signs (`lookup_free_quantize`,
      D <= 16 bits, entropy penalty per slice); codes `(B, h, w, L)` in [0, 2^D); no params.

  `cosine` (l2-normalised slices and codebooks) applies to dvq, mvq, vq and svq;
  `gradient_estimator` (straight_through | rotation) to those and rvq.
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
  cosine: bool = False
  gradient_estimator: str = "straight_through"
  num_stages: int = 1  # rvq: M
  fsq_levels: tuple[int, ...] = ()  # fsq: grid values per dimension, len = D
  lfq_entropy_weight: float = 0.1  # lfq: weight of the entropy penalty

  def setup(self):
    if self.kind in ("fsq", "lfq"):
      return
    num = 1 if self.kind == "vq" else self.num_codebooks
    shape = (num, self.num_stages) if self.kind == "rvq" else (num,)
    scale = self.codebook_init_scale or None
    self.codebooks = self.param(
        "codebooks",
        lambda key: q.init_codebooks(
            key, math.prod(shape), self.codebook_size, self.codebook_dim,
            scheme=self.codebook_init, scale=scale,
        ).reshape(*shape, self.codebook_size, self.codebook_dim),
    )

  def _options(self) -> dict:
    if self.kind == "rvq":
      return {"gradient_estimator": self.gradient_estimator}
    return {"cosine": self.cosine, "gradient_estimator": self.gradient_estimator}

  def _slices(self, z: jax.Array) -> jax.Array:
    return z.reshape(*z.shape[:-1], self.num_codebooks, self.codebook_dim)

  def _fixed_grid(self, z32: jax.Array) -> q.QuantizerOutput:
    """fsq / lfq, vmapped over the L slices; losses summed, perplexity and usage `(L,)`."""
    if self.kind == "fsq":
      quantize = lambda x: q.finite_scalar_quantize(x, self.fsq_levels)
    else:
      quantize = lambda x: q.lookup_free_quantize(x, entropy_weight=self.lfq_entropy_weight,
                                                  beta=self.beta)
    out = jax.vmap(quantize, in_axes=-2, out_axes=-1)(self._slices(z32))
    return q.QuantizerOutput(
        quantized=jnp.moveaxis(out.quantized, -1, -2).reshape(z32.shape), codes=out.codes,
        loss=jnp.sum(out.loss), codebook_loss=jnp.sum(out.codebook_loss),
        commitment_loss=jnp.sum(out.commitment_loss), perplexity=out.perplexity.reshape(-1),
        usage=out.usage.reshape(-1))

  def __call__(self, z: jax.Array) -> q.QuantizerOutput:
    """`z` `(batch, h, w, C)` -> QuantizerOutput; quantized `(batch, h, w, C_q)` in z's dtype."""
    z32 = z.astype(jnp.float32)
    if self.kind == "dvq":
      out = q.depthwise_quantize(z32, self.codebooks, beta=self.beta,
                                 slice_sizes=self.slice_sizes or None, **self._options())
    elif self.kind == "mvq":
      out = q.multi_codebook_quantize(z32, self.codebooks, beta=self.beta, **self._options())
    elif self.kind == "vq":
      out = q.vector_quantize(z32, self.codebooks[0], beta=self.beta, **self._options())
    elif self.kind == "svq":
      batch, height, width, channels = z.shape
      out = q.spatial_quantize(z32.reshape(batch, height * width, channels), self.codebooks,
                               beta=self.beta, **self._options())
      out = out._replace(quantized=out.quantized.reshape(z.shape),
                         codes=out.codes.reshape(batch, height, width))
    elif self.kind == "rvq":
      out = q.depthwise_residual_quantize(z32, self.codebooks, beta=self.beta, **self._options())
      out = out._replace(codes=out.codes.reshape(*z.shape[:-1], -1),
                         perplexity=out.perplexity.reshape(-1), usage=out.usage.reshape(-1))
    elif self.kind in ("fsq", "lfq"):
      out = self._fixed_grid(z32)
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
    if self.kind in COSINE_QUANTIZERS:
      # Cosine codes quantize to the l2-normalised codebook vectors.
      codebooks = q.l2_normalize(self.codebooks) if self.cosine else self.codebooks
    if self.kind == "dvq":
      return q.depthwise_lookup(codes, codebooks, slice_sizes=self.slice_sizes or None)
    if self.kind == "mvq":
      return q.multi_codebook_lookup(codes, codebooks)
    if self.kind == "vq":
      return q.vector_lookup(codes, codebooks[0])
    if self.kind == "svq":
      batch, height, width = codes.shape
      vectors = q.spatial_lookup(codes.reshape(batch, height * width), codebooks)
      return vectors.reshape(batch, height, width, -1)
    if self.kind == "rvq":
      stages = codes.reshape(*codes.shape[:-1], self.num_codebooks, self.num_stages)
      # Slice l's vector is the sum over stages m of codebooks[l, m, code].
      vectors = self.codebooks[jnp.arange(self.num_codebooks)[:, None],
                               jnp.arange(self.num_stages), stages]
      return jnp.sum(vectors, axis=-2).reshape(*codes.shape[:-1], -1)
    if self.kind == "fsq":
      return q.fsq_lookup(codes, self.fsq_levels).reshape(*codes.shape[:-1], -1)
    if self.kind == "lfq":
      return q.lfq_lookup(codes, self.codebook_dim).reshape(*codes.shape[:-1], -1)
    raise ValueError(f"quantizer {self.kind!r} is unknown; use one of {QUANTIZERS}")
