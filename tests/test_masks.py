"""Position masks: every quantizer and toolbox statistic equals its value on the unmasked
subset alone; masked codes are 0."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dvq_jax import quantizers as q

_FIELDS = ("loss", "codebook_loss", "commitment_loss", "perplexity", "usage")


def _assert_subset(masked, subset, mask, batch_rank):
  codes = np.asarray(masked.codes)
  np.testing.assert_array_equal(codes[mask], subset.codes)
  assert not np.any(codes[~mask])
  for field in _FIELDS:
    np.testing.assert_allclose(getattr(masked, field), getattr(subset, field), rtol=1e-5,
                               atol=1e-7, err_msg=field)


_RNG = np.random.default_rng(0)
_L, _K, _D = 2, 5, 3
_CODEBOOKS = _RNG.normal(size=(_L, _K, _D)).astype(np.float32)
_STAGES = _RNG.normal(size=(_L, 2, _K, _D)).astype(np.float32)
_PROJECTION = _RNG.normal(size=(_D, _D)).astype(np.float32)
_QUANTIZERS = {
    "vq": (lambda z, **kw: q.vector_quantize(z, _CODEBOOKS[0], **kw), _D),
    "dvq": (lambda z, **kw: q.depthwise_quantize(z, _CODEBOOKS, **kw), _L * _D),
    "dvq_cosine_rotation": (lambda z, **kw: q.depthwise_quantize(
        z, _CODEBOOKS, cosine=True, gradient_estimator="rotation", **kw), _L * _D),
    "mvq": (lambda z, **kw: q.multi_codebook_quantize(z, _CODEBOOKS, **kw), _D),
    "rvq": (lambda z, **kw: q.depthwise_residual_quantize(z, _STAGES, **kw), _L * _D),
    "fsq": (lambda z, **kw: q.finite_scalar_quantize(z, (4, 3, 3), **kw), _D),
    "lfq": (lambda z, **kw: q.lookup_free_quantize(z, inverse_temperature=2.0, **kw), _D),
    "bsq": (lambda z, **kw: q.binary_spherical_quantize(z, inverse_temperature=2.0, **kw), _D),
    "depthwise_bsq": (lambda z, **kw: q.depthwise(q.binary_spherical_quantize, _L)(
        z, inverse_temperature=2.0, **kw), _L * _D),
    "rfsq": (lambda z, **kw: q.residual_finite_scalar_quantize(z, (4, 3, 3), 2, **kw), _D),
    "rlfq": (lambda z, **kw: q.residual_lookup_free_quantize(z, 2, inverse_temperature=2.0,
                                                             **kw), _D),
    "simvq": (lambda z, **kw: q.simvq_quantize(z, _CODEBOOKS[0], _PROJECTION, **kw), _D),
}


@pytest.mark.parametrize("name", sorted(_QUANTIZERS))
def test_masked_quantizer_equals_the_unmasked_subset(name):
  fn, features = _QUANTIZERS[name]
  rng = np.random.default_rng(1)
  z = rng.normal(size=(6, 5, features)).astype(np.float32)
  mask = rng.random((6, 5)) < 0.6
  masked = jax.jit(functools.partial(fn, mask=mask))(z)
  _assert_subset(masked, fn(z[mask]), mask, 2)
  grad = jax.grad(lambda z, m=None: fn(z, mask=m).loss)
  if name not in ("fsq", "rfsq"):  # the scalar quantizers have no loss
    np.testing.assert_allclose(grad(z, mask)[mask], grad(z[mask]), rtol=1e-4, atol=1e-6)
    assert not np.any(grad(z, mask)[~mask])


def test_masked_spatial_quantize_equals_its_positions_alone():
  rng = np.random.default_rng(2)
  z = rng.normal(size=(1, 8, _D)).astype(np.float32)
  mask = np.array([[True, False, True, True, False, True, True, True]])
  out = q.spatial_quantize(z, _CODEBOOKS, mask=mask)
  # Group l (positions 4l .. 4l+3) uses codebook l: each group's unmasked vectors, quantized
  # on their own, give the same codes and their squared errors the same mean.
  for l in range(_L):
    part = slice(4 * l, 4 * l + 4)
    alone = q.vector_quantize(z[0, part][mask[0, part]], _CODEBOOKS[l])
    np.testing.assert_array_equal(out.codes[0, part][mask[0, part]], alone.codes)
    np.testing.assert_allclose(out.perplexity[l], alone.perplexity[0], rtol=1e-6)
  sq = np.sum((z[0] - out.quantized[0]) ** 2, -1)
  np.testing.assert_allclose(out.commitment_loss, sq[mask[0]].mean(), rtol=1e-5)
  assert not np.any(np.asarray(out.codes)[~mask])


def test_masked_toolbox_statistics_equal_the_unmasked_subset():
  rng = np.random.default_rng(3)
  slices = rng.normal(size=(7, 4, _L, _D)).astype(np.float32)
  mask = rng.random((7, 4)) < 0.5
  codes = q.depthwise_quantize(slices.reshape(7, 4, -1), _CODEBOOKS).codes
  ema = q.ema_codebooks(decay=0.5)
  state = ema.init(_CODEBOOKS)
  masked = ema.update(slices, codes, state, mask=mask)
  subset = ema.update(slices[mask], codes[mask], state)
  jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=1e-6), masked, subset)
  np.testing.assert_allclose(q.kmeans_step(slices, _CODEBOOKS, mask=mask),
                             q.kmeans_step(slices[mask], _CODEBOOKS), rtol=1e-6)
  # Random draws: only unmasked vectors are ever chosen, by k-means++ and by the restart.
  allowed = {tuple(v) for v in slices[mask][:, 0].round(5)}
  centres = q.kmeans_init(jax.random.key(0), slices, 4, num_iters=0, mask=mask)
  assert {tuple(v) for v in np.asarray(centres[0]).round(5)} <= allowed
  for k in (3, 20):  # fewer and more codes than unmasked vectors
    out = q.restart_dead_codes(jax.random.key(k), np.zeros((_L, k, _D), np.float32),
                               np.zeros((_L, k)), slices, threshold=1.0, mask=mask)
    picked = [tuple(v) for v in np.asarray(out.codebooks[0]).round(5)]
    assert set(picked) <= allowed
    assert len(set(picked)) == min(k, len(allowed))  # without replacement while it can


def test_bad_mask_shape():
  with pytest.raises(ValueError, match=r"mask shape \(3,\) must be z's shape"):
    q.depthwise_quantize(jnp.zeros((4, 6)), jnp.zeros((2, 5, 3)), mask=jnp.ones(3, bool))
