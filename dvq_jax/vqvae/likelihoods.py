"""Likelihood heads p(x | z) over 8-bit images: the decoder output -> NLL, training loss, mean.

A head is the float32 decoder output `(batch, height, width, C_out)`; images are uint8
`(batch, height, width, C)`. Every `nll` is a proper discrete NLL in nats -- the probabilities
of the 256 values of each subpixel sum to 1 -- summed over the H*W*C subpixels of each image,
so `metrics.recon_bits_per_dim` of it is a bits/dim figure.

Heads (`C_out` for C image channels, M mixture components):
  categorical256: `C*256` logits; channel `c*256 + v` is the logit of value v of channel c.
    The paper's bits/dim head. NLL = logsumexp(logits) - logits[target], no log-softmax tensor
    and no one-hot, in each backend's form (`dvq_jax.categorical.log_probs`).
  logistic_mixture: `M*(1 + 2C + C(C-1)/2)` channels laid out as
    [mixture logits (M) | means (C, M) | log scales (C, M) | coefficients (C(C-1)/2, M)],
    PixelCNN++'s discretized logistic mixture (Salimans et al. 2017): channel c's mean is
    shifted by tanh(coeff) * x_j for every earlier channel j < c (pairs (c, j) in the order
    (1,0), (2,0), (2,1), ...), log scales are floored at -7, values 0 and 255 take the whole
    tails. Bin masses sigmoid(b) - sigmoid(a) are computed exactly in log space, as
    log sigmoid(b) + log sigmoid(-a) + log(1 - e^(a-b)); PixelCNN++ instead switches to a
    midpoint-density approximation below a mass of 1e-5 (elsewhere the two agree).
  context_logistic_mixture: the logistic_mixture layout; the decoder's output is group 0's
    parameters and `vqvae.context.ContextHead` conditions the other pixel groups on the earlier
    groups' pixels. Every function here takes the conditioned parameters (`VQVAE.__call__`'s
    `head`, or `ContextHead.group`'s at one group's pixels) and treats them as logistic_mixture
    does. Its NLL is a context quantity (neighbours known), not comparable with the
    per-subpixel heads' (`vqvae.context`).
  mse: `C` channels, the mean mu in [-1, 1]. `nll` is that of a discretized Gaussian with FIXED
    scale `GAUSSIAN_SCALE` (0.1 in [-1, 1] units, 12.75 intensity levels) and tails to 0 and 255
    -- a proper likelihood, but the scale is not learned, so its bits/dim is above what a
    fitted scale would give and only ranks mse models among themselves. The model trains on
    the squared error instead (`train_loss`), as the official DVQ code's mse option does.
"""

import jax
import jax.numpy as jnp
from jax.scipy.special import log_ndtr

from dvq_jax import categorical

NAMES = ("categorical256", "logistic_mixture", "mse", "context_logistic_mixture")
# Heads whose parameters at a pixel also depend on other pixels of the image (`vqvae.context`).
CONTEXT_NAMES = ("context_logistic_mixture",)
GAUSSIAN_SCALE = 0.1
_LOG_SCALE_MIN = -7.0


def _check_name(name: str) -> str:
  """`name`, with a context head's mapped to the per-pixel form its parameters take."""
  if name not in NAMES:
    raise ValueError(f"likelihood {name!r} is unknown; use one of {NAMES}")
  return "logistic_mixture" if name in CONTEXT_NAMES else name


def _num_coeffs(image_channels: int) -> int:
  return image_channels * (image_channels - 1) // 2


def num_head_channels(name: str, image_channels: int, num_mixtures: int) -> int:
  """Channels C_out of the decoder output for this head.

  >>> num_head_channels("categorical256", 3, 10), num_head_channels("logistic_mixture", 3, 10)
  (768, 100)
  """
  name = _check_name(name)
  if name == "categorical256":
    return 256 * image_channels
  if name == "logistic_mixture":
    return num_mixtures * (1 + 2 * image_channels + _num_coeffs(image_channels))
  return image_channels


def to_unit(images: jax.Array) -> jax.Array:
  """uint8 values -> float32 in [-1, 1], x/127.5 - 1."""
  return images.astype(jnp.float32) / 127.5 - 1.0


def _bin_edges(images: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Lower and upper edges of each value's bin in [-1, 1] units, x -/+ 1/255.

  Formed from the integer as (2v - 256)/255 and (2v - 254)/255 -- one rounding -- so that at
  the smallest scales (e^-7) edge errors do not move probability between bins.
  """
  twice = 2.0 * images.astype(jnp.float32)
  return (twice - 256.0) / 255.0, (twice - 254.0) / 255.0


def _check(head: jax.Array, images: jax.Array) -> None:
  if images.dtype != jnp.uint8:
    raise ValueError(f"images must be uint8 (batch, height, width, C), got {images.dtype}")
  if head.shape[:-1] != images.shape[:-1]:
    raise ValueError(f"head shape {head.shape} and images shape {images.shape} differ before"
                     " the channel axis")


def _categorical_logits(head: jax.Array, image_channels: int) -> jax.Array:
  return head.astype(jnp.float32).reshape(*head.shape[:-1], image_channels, 256)


def _mixture_params(head: jax.Array, image_channels: int):
  """Head -> logits `(..., M)`, means, log scales `(..., C, M)`, tanh coefficients `(..., C(C-1)/2, M)`."""
  head = head.astype(jnp.float32)
  per_mixture = 1 + 2 * image_channels + _num_coeffs(image_channels)
  num_mixtures = head.shape[-1] // per_mixture
  if num_mixtures * per_mixture != head.shape[-1]:
    raise ValueError(f"logistic_mixture head has {head.shape[-1]} channels, not a multiple of"
                     f" 1 + 2C + C(C-1)/2 = {per_mixture} for C = {image_channels}")
  m, c = num_mixtures, image_channels
  split = head.reshape(*head.shape[:-1], per_mixture, m)
  logits = split[..., 0, :]
  means = split[..., 1:1 + c, :]
  log_scales = jnp.maximum(split[..., 1 + c:1 + 2 * c, :], _LOG_SCALE_MIN)
  coeffs = jnp.tanh(split[..., 1 + 2 * c:, :])
  return logits, means, log_scales, coeffs


def _autoregressive_means(means: jax.Array, coeffs: jax.Array,
                          previous: jax.Array | None = None) -> jax.Array:
  """Means `(..., C, M)` with channel c shifted by sum_{j<c} coeff_(c,j) * previous_j.

  `previous` `(..., C, M)` or `(..., C, 1)` holds the earlier channels' values. None gives each
  component's expected values instead: every mean is clipped to [-1, 1] -- a component centred
  outside the range puts its mass on the edge bin -- and then shifts the later channels.
  """
  shifted = []
  pair = 0
  for c in range(means.shape[-2]):
    mean = means[..., c, :]
    for j in range(c):
      earlier = shifted[j] if previous is None else previous[..., j, :]
      mean = mean + coeffs[..., pair, :] * earlier
      pair += 1
    shifted.append(mean if previous is not None else jnp.clip(mean, -1.0, 1.0))
  return jnp.stack(shifted, axis=-2)


def _component_log_probs(values: jax.Array, means: jax.Array, log_scales: jax.Array) -> jax.Array:
  """log P(value) under each logistic component discretized to the 256 bins.

  `values` (integers in [0, 255]) broadcasts against `means` and `log_scales`; 0 and 255 take
  the whole tails.
  """
  lower, upper = _bin_edges(values)
  inv_scale = jnp.exp(-log_scales)
  plus_in = inv_scale * (upper - means)
  min_in = inv_scale * (lower - means)
  log_cdf_plus = -jax.nn.softplus(-plus_in)  # value 0: log sigmoid(plus_in)
  log_one_minus_cdf_min = -jax.nn.softplus(min_in)  # value 255: log(1 - sigmoid(min_in))
  # sigmoid(b) - sigmoid(a) = sigmoid(b) * sigmoid(-a) * (1 - exp(a - b)) for a < b: exact
  # in log space, with no cancellation however far the bin is from the mean.
  gap = jnp.minimum(min_in - plus_in, -1e-30)
  log_bin = log_cdf_plus + log_one_minus_cdf_min + jnp.log(-jnp.expm1(gap))
  return jnp.where(values == 0, log_cdf_plus,
                   jnp.where(values == 255, log_one_minus_cdf_min, log_bin))


def _logistic_mixture_log_probs(head: jax.Array, images: jax.Array) -> jax.Array:
  logits, means, log_scales, coeffs = _mixture_params(head, images.shape[-1])
  means = _autoregressive_means(means, coeffs, to_unit(images)[..., None])
  log_probs = _component_log_probs(images[..., None], means, log_scales)  # (..., C, M)
  joint = jnp.sum(log_probs, axis=-2) + jax.nn.log_softmax(logits, axis=-1)  # (..., M)
  return jax.nn.logsumexp(joint, axis=-1)


def _gaussian_log_probs(head: jax.Array, images: jax.Array) -> jax.Array:
  mean = head.astype(jnp.float32)
  lower, upper = _bin_edges(images)
  lo = (lower - mean) / GAUSSIAN_SCALE
  hi = (upper - mean) / GAUSSIAN_SCALE
  # Phi(hi) - Phi(lo) in log space on the side of the mean where both tails are small:
  # log Phi(b) + log(1 - Phi(a)/Phi(b)) with (a, b) = (lo, hi) or (-hi, -lo).
  flip = lo + hi > 0
  a = jnp.where(flip, -hi, lo)
  b = jnp.where(flip, -lo, hi)
  log_b = log_ndtr(b)
  log_bin = log_b + jnp.log(-jnp.expm1(log_ndtr(a) - log_b))
  return jnp.where(images == 0, log_ndtr(hi), jnp.where(images == 255, log_ndtr(-lo), log_bin))


def nll(name: str, head: jax.Array, images: jax.Array) -> jax.Array:
  """Per-image negative log-likelihood in nats, summed over the H*W*C subpixels: `(batch,)`.

  Args:
    name: categorical256 | logistic_mixture | mse.
    head: float32 `(batch, height, width, C_out)`, `C_out = num_head_channels(name, C, M)`.
    images: uint8 `(batch, height, width, C)`.

  >>> import math
  >>> import jax.numpy as jnp
  >>> images = jnp.zeros((2, 4, 4, 3), jnp.uint8)
  >>> nll("categorical256", jnp.zeros((2, 4, 4, 768)), images) / (48 * math.log(256))
  Array([1., 1.], dtype=float32)
  """
  name = _check_name(name)
  _check(head, images)
  if name == "categorical256":
    log_probs = jnp.sum(categorical.log_probs(head, images), axis=-1)
  elif name == "logistic_mixture":
    log_probs = _logistic_mixture_log_probs(head, images)
  else:
    log_probs = jnp.sum(_gaussian_log_probs(head, images), axis=-1)
  return -jnp.sum(log_probs, axis=(1, 2))


def channel_log_pmf(name: str, head: jax.Array, images: jax.Array, channel: int) -> jax.Array:
  """log p(x_c = v | z, x_<c) for all 256 values v of channel c of every pixel: `(batch, H, W, 256)`.

  The conditionals whose product is the joint that `nll` scores, so coding channel 0, then 1,
  ... of each pixel costs exactly `nll`. categorical256 and mse model the channels of a pixel
  independently given z; logistic_mixture conditions channel c on the earlier channels' values,
  both through the shifted means and through the posterior weight of each component,
  w_m ∝ pi_m prod_{j<c} p_m(x_j). Values of channels >= c in `images` are never read.

  Args:
    name: categorical256 | logistic_mixture | mse.
    head: float32 `(batch, height, width, C_out)`.
    images: uint8 `(batch, height, width, C)`; only channels < `channel` are used.
    channel: c, a Python int in [0, C).

  >>> import jax.numpy as jnp
  >>> head, images = jnp.zeros((1, 1, 1, 768)), jnp.zeros((1, 1, 1, 3), jnp.uint8)
  >>> float(jnp.exp(channel_log_pmf("categorical256", head, images, 1)).sum())
  1.0
  """
  name = _check_name(name)
  _check(head, images)
  image_channels = images.shape[-1]
  if not 0 <= channel < image_channels:
    raise ValueError(f"channel {channel} is outside [0, {image_channels})")
  values = jnp.arange(256, dtype=jnp.int32)
  if name == "categorical256":
    return jax.nn.log_softmax(_categorical_logits(head, image_channels)[..., channel, :], axis=-1)
  if name == "mse":
    return _gaussian_log_probs(head[..., channel:channel + 1], values)
  earlier = images[..., :channel]
  logits, means, log_scales, coeffs = _mixture_params(head, image_channels)
  known = jnp.concatenate(  # later channels zeroed: they cannot leak into channel c's table
      [earlier, jnp.zeros(images.shape[:-1] + (image_channels - channel,), images.dtype)], axis=-1)
  means = _autoregressive_means(means, coeffs, to_unit(known)[..., None])
  log_weights = jax.nn.log_softmax(logits, axis=-1)  # (..., M)
  if channel:
    seen = _component_log_probs(earlier[..., None], means[..., :channel, :],
                                log_scales[..., :channel, :])
    log_weights = log_weights + jnp.sum(seen, axis=-2)
  log_weights = log_weights - jax.nn.logsumexp(log_weights, axis=-1, keepdims=True)
  per_value = _component_log_probs(values[:, None], means[..., None, channel, :],
                                   log_scales[..., None, channel, :])  # (..., 256, M)
  return jax.nn.logsumexp(per_value + log_weights[..., None, :], axis=-1)


def train_loss(name: str, head: jax.Array, images: jax.Array) -> jax.Array:
  """Per-image training loss `(batch,)`: `nll` for categorical256 and logistic_mixture; for mse
  the squared error summed over subpixels in [-1, 1] units (so loss / (H*W*C) is the MSE).

  >>> import jax.numpy as jnp
  >>> train_loss("mse", jnp.zeros((1, 1, 1, 2)), jnp.array([[[[255, 0]]]], jnp.uint8)).tolist()
  [2.0]
  """
  if _check_name(name) != "mse":
    return nll(name, head, images)
  _check(head, images)
  return jnp.sum(jnp.square(head.astype(jnp.float32) - to_unit(images)), axis=(1, 2, 3))


def mean_image(name: str, head: jax.Array, image_channels: int = 3) -> jax.Array:
  """The reconstruction shown in figures and scored by PSNR: float32 `(batch, H, W, C)` in [0, 255].

  categorical256: the expected value sum_v p(v) * v (smoother and higher PSNR than the argmax).

  logistic_mixture: the mixture-weighted mean of the components, each component's channel
  mean clipped to the data range and then shifting the later channels by its coefficients.
  Exact for components well inside the range; the clip keeps a rarely chosen component whose
  mean has drifted far outside (free to do so: the NLL barely sees it) from dragging the
  image.

  mse: the mean mu mapped from [-1, 1], clipped to [0, 255].

  Args:
    name: categorical256 | logistic_mixture | mse.
    head: `(batch, height, width, C_out)`.
    image_channels: C; only logistic_mixture needs it (the other heads' C follows from C_out).

  >>> import jax.numpy as jnp
  >>> mean_image("mse", jnp.array([[[[-1.0, 0.0, 2.0]]]])).tolist()
  [[[[0.0, 127.5, 255.0]]]]
  """
  name = _check_name(name)
  if name == "categorical256":
    probs = jax.nn.softmax(_categorical_logits(head, head.shape[-1] // 256), axis=-1)
    return jnp.sum(probs * jnp.arange(256, dtype=jnp.float32), axis=-1)
  if name == "logistic_mixture":
    logits, means, _, coeffs = _mixture_params(head, image_channels)
    weights = jax.nn.softmax(logits, axis=-1)[..., None, :]
    unit = jnp.sum(weights * _autoregressive_means(means, coeffs), axis=-1)
  else:
    unit = head.astype(jnp.float32)
  return jnp.clip((unit + 1.0) * 127.5, 0.0, 255.0)
