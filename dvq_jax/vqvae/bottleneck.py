"""The VQ-VAE bottleneck as a linen module around the pure quantizers of `dvq_jax.quantizers`.

The codebooks are one ordinary float32 param, `codebooks` `(L, K, D)` (`(1, K, D)` for vq,
`(L, M, K, D)` for rvq), drawn by `init_codebooks` and trained by gradient through the codebook
loss; with `codebook_parameterization = "simvq"` that param is a frozen basis and a second one,
`simvq_projection` `(L, D, D)`, is the learned map (codebooks = basis @ W). fsq, lfq, bsq, rfsq
and rlfq have fixed implicit codebooks and no param. Distances, codes and losses are computed
in float32 whatever the compute dtype of the encoder.
"""

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from dvq_jax import quantizers as q

QUANTIZERS = ("dvq", "mvq", "vq", "svq", "rvq", "fsq", "lfq", "bsq", "rfsq", "rlfq")
# The families that quantize L feature slices of D channels each, like dvq.
DEPTHWISE = ("dvq", "rvq", "fsq", "lfq", "bsq", "rfsq", "rlfq")
# The families with M residual stages a slice: L*M codes a position.
RESIDUAL = ("rvq", "rfsq", "rlfq")
# The fixed-grid families (no codebook param), each run on the L slices by `q.depthwise`.
FIXED_GRID = ("fsq", "lfq", "bsq", "rfsq", "rlfq")
# How the codebooks are parameterized (dvq, mvq, vq, svq): direct (the codebooks are the param)
# or simvq (a frozen random basis times a learned (D, D) map a codebook, Zhu et al. 2024).
CODEBOOK_PARAMETERIZATIONS = ("direct", "simvq")
# Quantizers that can sample their codes (code_temperature > 0) while training.
STOCHASTIC_QUANTIZERS = ("dvq", "vq")
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
  """Channels of the encoder output: L*D (or sum(slice_sizes)) for the depthwise families
  (dvq, rvq, fsq, lfq, bsq, rfsq, rlfq), D for mvq, vq and svq.

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
  """Codes stored per latent position: L for dvq, mvq, fsq, lfq and bsq, L*M for rvq, rfsq and
  rlfq, 1 for vq and svq.

  >>> codes_per_position("rvq", 2, 3), codes_per_position("svq", 4)
  (6, 1)
  """
  if kind in RESIDUAL:
    return num_codebooks * num_stages
  return 1 if kind in ("vq", "svq") else num_codebooks


def alphabet_size(kind: str, codebook_size: int, codebook_dim: int,
                  fsq_levels: tuple[int, ...] = ()) -> int:
  """Values one code can take: K, prod(fsq_levels) for fsq and rfsq, 2^D for lfq, bsq and rlfq
  (D bits a slice).

  >>> alphabet_size("dvq", 16, 4), alphabet_size("fsq", 16, 2, (4, 5)), alphabet_size("lfq", 16, 3)
  (16, 20, 8)
  """
  if kind in ("fsq", "rfsq"):
    return math.prod(fsq_levels)
  if kind in ("lfq", "bsq", "rlfq"):
    return 2**codebook_dim
  return codebook_size


def codes_by_codebook(kind: str, codes: jax.Array, num_codebooks: int) -> jax.Array:
  """The model's codes regrouped as `(batch, codes per codebook, L)`: column l holds codebook l's.

  Args:
    kind: one of QUANTIZERS.
    codes: `(batch, h, w, L)` for dvq/mvq/fsq/lfq/bsq, `(batch, h, w, L*M)` for rvq/rfsq/rlfq
      (slice-major: column l*M + m is slice l's stage m), `(batch, h, w)` for vq and svq. For svq the h*w
      positions, in row-major order, fall into L contiguous groups; group l uses codebook l.
    num_codebooks: the columns: L (1 for vq, L*M for rvq).

  >>> import jax.numpy as jnp
  >>> codes_by_codebook("svq", jnp.arange(4).reshape(1, 2, 2), 2)[0].tolist()
  [[0, 2], [1, 3]]
  """
  batch = codes.shape[0]
  if kind not in ("vq", "svq"):
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
    bsq: C = L*D; each slice is l2-normalised and quantized to its signs / sqrt(D)
      (`binary_spherical_quantize`, entropy penalty per slice over groups of `bsq_group_size`
      dimensions, 0 = D); codes `(B, h, w, L)` in [0, 2^D); no params.
    rfsq, rlfq: C = L*D; each slice an M-stage residual FSQ (D = len(fsq_levels)) or residual
      LFQ (`residual_finite_scalar_quantize`, `residual_lookup_free_quantize`); codes
      `(B, h, w, L*M)`, slice-major; no params.

  `cosine` (l2-normalised slices and codebooks) applies to dvq, mvq, vq and svq;
  `gradient_estimator` (straight_through | rotation) to those and rvq;
  `codebook_parameterization = "simvq"` to those and rvq. With `code_temperature > 0`, dvq and
  vq sample their codes (`stochastic_quantize`, relaxation `code_relaxation`) whenever the
  module is applied with a `"codes"` rng (training); without one (evaluation, encoding) they
  take the nearest codes.
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
  num_stages: int = 1  # rvq, rfsq, rlfq: M
  fsq_levels: tuple[int, ...] = ()  # fsq, rfsq: grid values per dimension, len = D
  lfq_entropy_weight: float = 0.1  # lfq, bsq, rlfq: weight of the entropy penalty
  bsq_group_size: int = 0  # bsq: dimensions per batch-entropy group; 0 = D (exact)
  codebook_parameterization: str = "direct"  # see CODEBOOK_PARAMETERIZATIONS
  code_temperature: float = 0.0  # dvq, vq: > 0 samples codes in training (needs a "codes" rng)
  code_relaxation: str = "straight_through"  # or gumbel_softmax, see q.stochastic_quantize

  def setup(self):
    if self.kind in FIXED_GRID:
      return
    num = 1 if self.kind == "vq" else self.num_codebooks
    shape = (num, self.num_stages) if self.kind == "rvq" else (num,)
    scale = self.codebook_init_scale or None
    # With simvq this draw is the frozen basis (`simvq_codebook` stops its gradient).
    self.codebooks = self.param(
        "codebooks",
        lambda key: q.init_codebooks(
            key, math.prod(shape), self.codebook_size, self.codebook_dim,
            scheme=self.codebook_init, scale=scale,
        ).reshape(*shape, self.codebook_size, self.codebook_dim),
    )
    if self.codebook_parameterization == "simvq":
      # W starts at the identity: training starts from the drawn codebooks.
      eye = jnp.eye(self.codebook_dim, dtype=jnp.float32)
      self.simvq_projection = self.param(
          "simvq_projection", lambda key: jnp.broadcast_to(eye, (*shape, *eye.shape)))

  def _codebooks(self) -> jax.Array:
    """The codebooks the search uses: the param, or basis @ W for simvq."""
    if self.codebook_parameterization == "simvq":
      return q.simvq_codebook(self.codebooks, self.simvq_projection)
    return self.codebooks

  def _options(self) -> dict:
    if self.kind == "rvq":
      return {"gradient_estimator": self.gradient_estimator}
    return {"cosine": self.cosine, "gradient_estimator": self.gradient_estimator}

  def _fixed_grid(self, z32: jax.Array, mask: jax.Array | None) -> q.QuantizerOutput:
    """fsq, lfq, bsq, rfsq, rlfq on the L slices (`q.depthwise`); codes `(..., L)` or
    `(..., L*M)`, perplexity and usage `(L,)` or `(L*M,)`."""
    entropy = {"entropy_weight": self.lfq_entropy_weight, "beta": self.beta}
    quantize = {
        "fsq": functools.partial(q.finite_scalar_quantize, levels=self.fsq_levels),
        "lfq": functools.partial(q.lookup_free_quantize, **entropy),
        "bsq": functools.partial(q.binary_spherical_quantize,
                                 group_size=self.bsq_group_size or None, **entropy),
        "rfsq": functools.partial(q.residual_finite_scalar_quantize, levels=self.fsq_levels,
                                  num_stages=self.num_stages),
        "rlfq": functools.partial(q.residual_lookup_free_quantize, num_stages=self.num_stages,
                                  **entropy),
    }[self.kind]
    out = q.depthwise(quantize, self.num_codebooks)(z32, mask=mask)
    return out._replace(codes=out.codes.reshape(*z32.shape[:-1], -1),
                        perplexity=out.perplexity.reshape(-1), usage=out.usage.reshape(-1))

  def __call__(self, z: jax.Array, mask: jax.Array | None = None) -> q.QuantizerOutput:
    """`z` `(batch, h, w, C)` -> QuantizerOutput; quantized `(batch, h, w, C_q)` in z's dtype.

    `mask` (optional bool `(batch,)`, e.g. the padding mask of an evaluation batch) leaves the
    masked examples out of the losses and statistics; their codes are 0.
    """
    z32 = z.astype(jnp.float32)
    if mask is not None:
      mask = jnp.broadcast_to(jnp.asarray(mask, bool).reshape(-1, 1, 1), z.shape[:-1])
    if self.code_temperature > 0 and self.has_rng("codes"):
      stochastic = functools.partial(
          q.stochastic_quantize, temperature=self.code_temperature,
          relaxation=self.code_relaxation, beta=self.beta, mask=mask)
      key = self.make_rng("codes")
      if self.kind == "vq":
        out = stochastic(z32, self._codebooks()[0], key=key)
      else:  # one key a slice
        out = q.depthwise(stochastic, self.num_codebooks)(z32, self._codebooks(), key=key)
    elif self.kind == "dvq":
      out = q.depthwise_quantize(z32, self._codebooks(), beta=self.beta,
                                 slice_sizes=self.slice_sizes or None, mask=mask,
                                 **self._options())
    elif self.kind == "mvq":
      out = q.multi_codebook_quantize(z32, self._codebooks(), beta=self.beta, mask=mask,
                                      **self._options())
    elif self.kind == "vq":
      out = q.vector_quantize(z32, self._codebooks()[0], beta=self.beta, mask=mask,
                              **self._options())
    elif self.kind == "svq":
      batch, height, width, channels = z.shape
      out = q.spatial_quantize(z32.reshape(batch, height * width, channels), self._codebooks(),
                               beta=self.beta,
                               mask=None if mask is None else mask.reshape(batch, -1),
                               **self._options())
      out = out._replace(quantized=out.quantized.reshape(z.shape),
                         codes=out.codes.reshape(batch, height, width))
    elif self.kind == "rvq":
      out = q.depthwise_residual_quantize(z32, self._codebooks(), beta=self.beta, mask=mask,
                                          **self._options())
      out = out._replace(codes=out.codes.reshape(*z.shape[:-1], -1),
                         perplexity=out.perplexity.reshape(-1), usage=out.usage.reshape(-1))
    elif self.kind in FIXED_GRID:
      out = self._fixed_grid(z32, mask)
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
    if self.kind in FIXED_GRID:
      if self.kind in RESIDUAL:  # (..., L*M) -> (..., L, M)
        codes = codes.reshape(*codes.shape[:-1], self.num_codebooks, self.num_stages)
      lookup = {
          "fsq": lambda c: q.fsq_lookup(c, self.fsq_levels),
          "lfq": lambda c: q.lfq_lookup(c, self.codebook_dim),
          "bsq": lambda c: q.bsq_lookup(c, self.codebook_dim),
          "rfsq": lambda c: q.rfsq_lookup(c, self.fsq_levels),
          "rlfq": lambda c: q.rlfq_lookup(c, self.codebook_dim),
      }[self.kind]
      vectors = lookup(codes)  # (..., L, D)
      return vectors.reshape(*vectors.shape[:-2], -1)
    codebooks = self._codebooks()
    if self.kind in COSINE_QUANTIZERS and self.cosine:
      # Cosine codes quantize to the l2-normalised codebook vectors.
      codebooks = q.l2_normalize(codebooks)
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
      vectors = codebooks[jnp.arange(self.num_codebooks)[:, None],
                          jnp.arange(self.num_stages), stages]
      return jnp.sum(vectors, axis=-2).reshape(*codes.shape[:-1], -1)
    raise ValueError(f"quantizer {self.kind!r} is unknown; use one of {QUANTIZERS}")
