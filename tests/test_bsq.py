"""BSQ against a numpy reference: codes, quantized points, the exact and grouped entropy penalty,
gradients, masks, bfloat16 input and the blocked batch entropy."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dvq_jax import quantizers as q


def _entropy(p):
  return -np.sum(p * np.log(np.maximum(p, 1e-300)), -1)


def _bsq_reference(z, beta, entropy_weight, diversity, t, group_size):
  """Codes, quantized and loss of BSQ by brute force over every code, in float64."""
  z = np.asarray(z, np.float64).reshape(-1, z.shape[-1])
  dim = z.shape[-1]
  u = z / np.linalg.norm(z, axis=-1, keepdims=True)
  hard = np.where(u > 0, 1.0, -1.0) / np.sqrt(dim)
  codes = ((u > 0).astype(np.int64) << np.arange(dim)).sum(-1)
  commit = np.mean(np.sum((u - hard) ** 2, -1))
  codebook = np.array(list(itertools.product([-1.0, 1.0], repeat=dim)))[:, ::-1] / np.sqrt(dim)
  logits = 2 * t * u @ codebook.T
  probs = np.exp(logits - logits.max(-1, keepdims=True))
  probs /= probs.sum(-1, keepdims=True)
  sample = np.mean(_entropy(probs))
  batch = 0.0
  for g in range(dim // group_size):  # marginal of each group of dimensions
    sub = ((codebook[:, g * group_size:(g + 1) * group_size] > 0) << np.arange(group_size)).sum(-1)
    marginal = np.stack([probs[:, sub == s].sum(-1) for s in range(2**group_size)], -1)
    batch += _entropy(marginal.mean(0))
  return codes, hard, beta * commit + entropy_weight * (sample - diversity * batch)


@pytest.mark.parametrize("group_size", [None, 2])
def test_bsq_matches_brute_force(group_size):
  rng = np.random.default_rng(0)
  z = rng.normal(size=(3, 7, 6)).astype(np.float32)
  kwargs = dict(beta=0.5, entropy_weight=0.3, diversity_weight=0.7, inverse_temperature=2.0,
                group_size=group_size)
  out = jax.jit(lambda z: q.binary_spherical_quantize(z, **kwargs))(z)
  codes, hard, loss = _bsq_reference(z, 0.5, 0.3, 0.7, 2.0, group_size or 6)
  np.testing.assert_array_equal(out.codes.reshape(-1), codes)
  np.testing.assert_allclose(out.quantized.reshape(-1, 6), hard, rtol=1e-6)
  np.testing.assert_allclose(q.bsq_lookup(out.codes, 6), out.quantized, rtol=1e-6)
  np.testing.assert_allclose(out.loss, loss, rtol=1e-4)
  counts = np.bincount(codes, minlength=64) / len(codes)
  np.testing.assert_allclose(out.usage, [np.count_nonzero(counts) / 64])
  np.testing.assert_allclose(out.perplexity, [np.exp(_entropy(counts))], rtol=1e-5)
  # The gradient against the same formula written with a full softmax over the 64 codes.
  codebook = q.bsq_lookup(jnp.arange(64), 6)

  def brute_loss(z):
    u = z.reshape(-1, 6) / jnp.linalg.norm(z.reshape(-1, 6), axis=-1, keepdims=True)
    probs = jax.nn.softmax(4.0 * u @ codebook.T, axis=-1)
    ent = lambda p: -jnp.sum(p * jnp.log(p), -1)
    commit = jnp.mean(jnp.sum((u - jnp.where(u > 0, 1.0, -1.0) / np.sqrt(6)) ** 2, -1))
    batch = probs.mean(0)
    if group_size:
      groups = batch.reshape(2, 2, 2, 2, 2, 2)  # axis 5 - i is dimension i
      batch = sum(ent(jnp.sum(groups, axis=tuple(a for a in range(6) if a not in (5 - 2 * g,
                                                                          4 - 2 * g))).reshape(-1))
                  for g in range(3))
    else:
      batch = ent(batch)
    return 0.5 * commit + 0.3 * (jnp.mean(ent(probs)) - 0.7 * batch)

  np.testing.assert_allclose(brute_loss(z), loss, rtol=1e-4)
  grad = jax.jit(jax.grad(lambda z: q.binary_spherical_quantize(z, **kwargs).loss))(z)
  np.testing.assert_allclose(grad, jax.grad(brute_loss)(z), rtol=1e-3, atol=1e-6)


def test_bsq_mask_equals_the_unmasked_subset_and_bfloat16():
  rng = np.random.default_rng(1)
  z = rng.normal(size=(5, 4, 4)).astype(np.float32)
  mask = rng.random((5, 4)) < 0.6
  loss = lambda z, m=None: q.binary_spherical_quantize(z, inverse_temperature=3.0, mask=m).loss
  masked = q.binary_spherical_quantize(z, inverse_temperature=3.0, mask=mask)
  subset = q.binary_spherical_quantize(z[mask], inverse_temperature=3.0)
  np.testing.assert_array_equal(masked.codes[mask], subset.codes)
  assert not np.any(masked.codes[~mask])
  for field in ("loss", "commitment_loss", "perplexity", "usage"):
    np.testing.assert_allclose(getattr(masked, field), getattr(subset, field), rtol=1e-5)
  grad = jax.grad(loss)(z, mask)
  assert not np.any(grad[~mask])
  np.testing.assert_allclose(grad[mask], jax.grad(loss)(z[mask]), rtol=1e-4, atol=1e-7)
  half = q.binary_spherical_quantize(jnp.asarray(z, jnp.bfloat16))
  assert half.quantized.dtype == jnp.bfloat16
  np.testing.assert_array_equal(
      half.codes, q.binary_spherical_quantize(jnp.asarray(z, jnp.bfloat16).astype(jnp.float32)).codes)


def test_bsq_blocked_batch_entropy_equals_one_block(monkeypatch):
  z = np.random.default_rng(2).normal(size=(37, 5)).astype(np.float32)
  value = lambda: jax.jit(jax.value_and_grad(lambda z: q.binary_spherical_quantize(z).loss))(z)
  whole = value()
  monkeypatch.setattr(q._lfq, "_TILE_BYTES", 4 * 32 * 8)  # 8 rows per block: 5 blocks, padded
  monkeypatch.setattr(q._lfq, "_MIN_ROWS", 1)
  blocked = value()
  np.testing.assert_allclose(blocked[0], whole[0], rtol=1e-5)
  np.testing.assert_allclose(blocked[1], whole[1], rtol=1e-4, atol=1e-7)


def test_bsq_bad_input():
  with pytest.raises(ValueError, match="group_size = 4 must divide D = 6"):
    q.binary_spherical_quantize(jnp.ones((2, 6)), group_size=4)
  with pytest.raises(ValueError, match="must divide D = 20"):
    q.binary_spherical_quantize(jnp.ones((2, 20)))  # exact entropy over 2^20 codes: refused
  with pytest.raises(ValueError, match="mask shape"):
    q.binary_spherical_quantize(jnp.ones((2, 6)), mask=jnp.ones((3,), bool))
