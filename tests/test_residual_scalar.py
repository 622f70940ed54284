"""Residual FSQ and residual LFQ against numpy references: codes, sums, scales, losses,
gradients and masks."""

import numpy as np
import jax
import jax.numpy as jnp
import pytest

from dvq_jax import quantizers as q


def _fsq_stage(x, levels):
  """One FSQ stage in float64: tanh bound, round, grid value in [-1, 1], code."""
  levels = np.asarray(levels)
  half_l = (levels - 1) * (1 + 1e-3) / 2
  offset = np.where(levels % 2 == 0, 0.5, 0.0)
  bounded = np.tanh(x + np.arctanh(offset / half_l)) * half_l - offset
  half_w = levels // 2
  digits = np.round(bounded) + half_w
  basis = np.concatenate([[1], np.cumprod(levels[:-1])])
  return (np.round(bounded) / half_w), (digits * basis).sum(-1).astype(np.int64)


def _lfq_stage(x):
  return np.where(x > 0, 1.0, -1.0), ((x > 0).astype(np.int64) << np.arange(x.shape[-1])).sum(-1)


def _residual_reference(z, stage, scales):
  residual, total, codes = np.asarray(z, np.float64), 0.0, []
  for scale in scales:
    values, c = stage(residual / scale)
    total = total + values * scale
    residual = residual - values * scale
    codes.append(c)
  return total, np.stack(codes, -1)


def test_residual_fsq_matches_reference_and_lookup():
  levels, stages = (5, 4, 3), 3
  z = np.random.default_rng(0).normal(size=(6, 7, 3)).astype(np.float32)
  out = jax.jit(lambda z: q.residual_finite_scalar_quantize(z, levels, stages))(z)
  scales = np.asarray(levels, np.float64) ** -np.arange(stages)[:, None]
  total, codes = _residual_reference(z, lambda x: _fsq_stage(x, levels), scales)
  np.testing.assert_array_equal(out.codes, codes)
  np.testing.assert_allclose(out.quantized, total, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(q.rfsq_lookup(out.codes, levels), out.quantized, atol=1e-6)
  # Each stage refines: the error after 3 stages is far below one stage's.
  one = q.finite_scalar_quantize(z, levels).quantized
  assert np.abs(total - z.clip(-0.9, 0.9)).mean() < np.abs(one - z.clip(-0.9, 0.9)).mean()
  for m in range(stages):
    counts = np.bincount(codes[..., m].ravel(), minlength=60) / codes[..., m].size
    np.testing.assert_allclose(out.usage[m], np.count_nonzero(counts) / 60)
  assert float(out.loss) == 0.0
  # The gradient: every stage's tanh bound, as in the reference's derivative.
  grad = jax.grad(lambda z: jnp.sum(q.residual_finite_scalar_quantize(z, levels, stages)
                                    .quantized * jnp.arange(3.0)))(z)
  eps = 1e-3
  numeric = (jnp.sum(_smooth(z + eps, levels, scales) * np.arange(3.0), -1)
             - jnp.sum(_smooth(z - eps, levels, scales) * np.arange(3.0), -1)) / (2 * eps)
  np.testing.assert_allclose(grad.sum(-1), numeric, rtol=1e-2, atol=1e-3)


def _smooth(z, levels, scales):
  """The straight-through surrogate: rounds replaced by the identity, residuals held fixed."""
  levels = np.asarray(levels)
  half_l = (levels - 1) * (1 + 1e-3) / 2
  offset = np.where(levels % 2 == 0, 0.5, 0.0)
  # d q_m / d z = d bound(r_m / s_m) / d r_m * s_m / half_w with r_m = z - (fixed) sum_{j<m} q_j.
  fixed, out = np.zeros_like(z, np.float64), 0.0
  base = np.asarray(z, np.float64)
  for scale in scales:
    r = base - fixed
    bounded = np.tanh(r / scale + np.arctanh(offset / half_l)) * half_l - offset
    out = out + bounded / (levels // 2) * scale
    stage_values, _ = _fsq_stage(r / scale, levels)
    fixed = fixed + stage_values * scale
  return out


def test_residual_lfq_matches_reference_loss_gradient_and_mask():
  z = np.random.default_rng(1).normal(size=(5, 6, 4)).astype(np.float32)
  kwargs = dict(entropy_weight=0.2, inverse_temperature=3.0, beta=0.5)
  out = q.residual_lookup_free_quantize(z, 3, **kwargs)
  total, codes = _residual_reference(z, _lfq_stage, 2.0 ** -np.arange(3))
  np.testing.assert_array_equal(out.codes, codes)
  np.testing.assert_allclose(out.quantized, total, rtol=1e-6)
  np.testing.assert_allclose(q.rlfq_lookup(out.codes, 4), out.quantized, rtol=1e-6)

  def stagewise(z):  # the loss as the sum of three LFQ losses on the scaled residuals
    residual, loss = z, 0.0
    for m in range(3):
      stage = q.lookup_free_quantize(residual / 2.0**-m, **kwargs)
      loss = loss + stage.loss
      residual = residual - jax.lax.stop_gradient(stage.quantized * 2.0**-m)
    return loss

  np.testing.assert_allclose(out.loss, stagewise(z), rtol=1e-5)
  grad = jax.grad(lambda z: q.residual_lookup_free_quantize(z, 3, **kwargs).loss)(z)
  np.testing.assert_allclose(grad, jax.grad(stagewise)(z), rtol=1e-4, atol=1e-7)
  mask = np.random.default_rng(2).random((5, 6)) < 0.5
  masked = q.residual_lookup_free_quantize(z, 3, mask=mask, **kwargs)
  subset = q.residual_lookup_free_quantize(z[mask], 3, **kwargs)
  np.testing.assert_array_equal(masked.codes[mask], subset.codes)
  assert not np.any(masked.codes[~mask])
  for field in ("loss", "commitment_loss", "perplexity", "usage"):
    np.testing.assert_allclose(getattr(masked, field), getattr(subset, field), rtol=1e-5)


def test_residual_scalar_bfloat16_and_bad_input():
  z = jnp.asarray(np.random.default_rng(3).normal(size=(4, 3)), jnp.bfloat16)
  out = q.residual_finite_scalar_quantize(z, (4, 4, 4), 2)
  assert out.quantized.dtype == jnp.bfloat16 and out.codes.shape == (4, 2)
  np.testing.assert_array_equal(
      out.codes, q.residual_finite_scalar_quantize(z.astype(jnp.float32), (4, 4, 4), 2).codes)
  with pytest.raises(ValueError, match="num_stages = 0"):
    q.residual_lookup_free_quantize(jnp.zeros((2, 3)), 0)


def test_residual_lfq_gradient_memory_is_a_few_copies_of_z_a_stage():
  # N = 65,536 vectors of D = 8 bits, M = 4 stages: one stage's (N, 2^D) soft assignment would
  # be 64 MiB. The batch entropy accumulates in row blocks recomputed in the backward pass, so
  # each stage keeps only a few (N, D) arrays (z is 2 MiB); with the per-vector entropy's (N, D)
  # intermediates kept for every stage it compiled to 42 copies of z.
  num, bits, stages = 65536, 8, 4
  z = jax.ShapeDtypeStruct((num, bits), jnp.float32)

  def objective(z):
    out = q.residual_lookup_free_quantize(z, stages)
    return jnp.sum(out.quantized) + out.loss, out  # the outputs kept, as a train step keeps them

  analysis = jax.jit(jax.grad(objective, has_aux=True)).lower(z).compile().memory_analysis()
  assert analysis.temp_size_in_bytes < 4 * stages * num * bits * 4, analysis
