"""Float64 numpy references of the likelihood heads, shared by the head tests."""

import numpy as np
from scipy import special


def logistic_mixture_nll(head, images, num_mixtures):
  """PixelCNN++ discretized_mix_logistic_loss for C=3 in float64, with our channel layout.

  One documented departure: where PixelCNN++ replaces a bin mass below 1e-5 by the density at
  the bin centre times its width, the mass itself is used (as dvq_jax does), from sigmoid
  differences taken on the side of the mean where they do not cancel.
  """
  head = np.asarray(head, np.float64)
  split = head.reshape(*head.shape[:-1], 10, num_mixtures)
  logits, means, log_scales = split[..., 0, :], split[..., 1:4, :], split[..., 4:7, :]
  log_scales = np.maximum(log_scales, -7.0)
  coeffs = np.tanh(split[..., 7:10, :])
  x = (images.astype(np.float64) / 127.5 - 1.0)[..., None]  # (B, H, W, 3, 1)
  m2 = means[..., 1, :] + coeffs[..., 0, :] * x[..., 0, :]
  m3 = means[..., 2, :] + coeffs[..., 1, :] * x[..., 0, :] + coeffs[..., 2, :] * x[..., 1, :]
  means = np.stack([means[..., 0, :], m2, m3], axis=-2)
  centered = x - means
  inv_stdv = np.exp(-log_scales)
  plus_in = inv_stdv * (centered + 1.0 / 255.0)
  min_in = inv_stdv * (centered - 1.0 / 255.0)
  cdf_delta = special.expit(plus_in) - special.expit(min_in)
  branches = np.select(
      [x < -0.999, x > 0.999, cdf_delta > 1e-5], [0, 1, 2], 3)
  with np.errstate(divide="ignore"):  # the side not selected may round to log(0)
    # log(expit(b) - expit(a)) from the two log-tails, on the side of the mean where they are small.
    log_diff = lambda p, q: p + np.log1p(-np.exp(q - p))  # log(e^p - e^q), q < p
    exact_log_delta = np.where(
        centered > 0, log_diff(special.log_expit(-min_in), special.log_expit(-plus_in)),
        log_diff(special.log_expit(plus_in), special.log_expit(min_in)))
    log_cdf_plus = plus_in - np.logaddexp(0.0, plus_in)
    log_one_minus_cdf_min = -np.logaddexp(0.0, min_in)
    log_probs = np.select(
        [branches == 0, branches == 1, branches == 2],
        [log_cdf_plus, log_one_minus_cdf_min, np.log(np.maximum(cdf_delta, 1e-12))],
        exact_log_delta)
  joint = log_probs.sum(axis=-2) + special.log_softmax(logits, axis=-1)
  return -special.logsumexp(joint, axis=-1).sum(axis=(1, 2)), branches
