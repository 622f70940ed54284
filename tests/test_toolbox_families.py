"""RVQ, depthwise RVQ, FSQ, LFQ and the rotation trick against numpy references, with and without jit."""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized

from dvq_jax import quantizers as q
from tests.conftest import brute_force_codes
from tests.conftest import rotation_matrix


def _rvq_reference(x, codebooks):
  """Greedy residual codes, total, summed per-stage loss and d commitment / d x, in float64."""
  x = np.asarray(x, np.float64).reshape(-1, codebooks.shape[-1])
  residual, codes, loss, grad = x.copy(), [], 0.0, np.zeros_like(x)
  for e in np.asarray(codebooks, np.float64):
    c = brute_force_codes(residual, e)
    codes.append(c)
    diff = residual - e[c]
    loss += np.mean(np.sum(diff**2, -1))
    grad += 2.0 / len(x) * diff
    residual = diff
  return np.stack(codes, -1), x - residual, loss, grad


def _fsq_reference(z, levels):
  levels = np.asarray(levels)
  half_l = (levels - 1) * (1 + 1e-3) / 2
  offset = np.where(levels % 2 == 0, 0.5, 0.0)
  rounded = np.round(np.tanh(z + np.arctanh(offset / half_l)) * half_l - offset)
  digits = rounded + levels // 2
  basis = np.cumprod([1, *levels[:-1]])
  return rounded / (levels // 2), (digits * basis).sum(-1).astype(np.int64)


class FamiliesTest(parameterized.TestCase):

  @chex.variants(with_jit=True, without_jit=True)
  def test_residual_quantize_matches_greedy_numpy(self):
    rng = np.random.default_rng(0)
    z = rng.normal(size=(3, 7, 4)).astype(np.float32)
    codebooks = (rng.normal(size=(3, 8, 4)) * np.array([1.0, 0.5, 0.25])[:, None, None]).astype(
        np.float32)
    codes, total, loss, grad_z = _rvq_reference(z, codebooks)
    out = self.variant(q.residual_quantize)(z, codebooks)
    chex.assert_shape(out.codes, (3, 7, 3))
    np.testing.assert_array_equal(out.codes.reshape(-1, 3), codes)
    np.testing.assert_allclose(out.quantized.reshape(-1, 4), total, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose([out.codebook_loss, out.commitment_loss], [loss, loss], rtol=1e-5)
    chex.assert_shape([out.perplexity, out.usage], (3,))
    grad = self.variant(jax.grad(lambda z: q.residual_quantize(z, codebooks).commitment_loss))(z)
    np.testing.assert_allclose(grad.reshape(-1, 4), grad_z, rtol=1e-4, atol=1e-6)
    # Straight-through on the whole sum: the output gradient reaches z unchanged.
    g = rng.normal(size=z.shape).astype(np.float32)
    through = jax.grad(lambda z: jnp.sum(q.residual_quantize(z, codebooks).quantized * g))(z)
    np.testing.assert_allclose(through, g, rtol=1e-6)

  @chex.variants(with_jit=True, without_jit=True)
  def test_depthwise_residual_is_rvq_per_slice(self):
    rng = np.random.default_rng(1)
    z = rng.normal(size=(5, 2 * 3)).astype(np.float32)
    codebooks = rng.normal(size=(2, 3, 6, 3)).astype(np.float32)  # L=2, M=3, K=6, D=3
    out = self.variant(q.depthwise_residual_quantize)(z, codebooks)
    chex.assert_shape(out.codes, (5, 2, 3))
    chex.assert_shape([out.perplexity, out.usage], (2, 3))
    total_loss = 0.0
    for l in range(2):
      codes, total, loss, _ = _rvq_reference(z[:, 3 * l:3 * l + 3], codebooks[l])
      np.testing.assert_array_equal(out.codes[:, l], codes)
      np.testing.assert_allclose(out.quantized[:, 3 * l:3 * l + 3], total, rtol=1e-5, atol=1e-6)
      total_loss += loss
    np.testing.assert_allclose(out.loss, 1.25 * total_loss, rtol=1e-5)

  @chex.variants(with_jit=True, without_jit=True)
  def test_fsq_matches_numpy_and_maps_invert(self):
    levels = (8, 5, 5, 3)
    z = 2.0 * np.random.default_rng(2).normal(size=(6, 9, 4)).astype(np.float32)
    values, codes = _fsq_reference(z.astype(np.float64), levels)
    out = self.variant(functools.partial(q.finite_scalar_quantize, levels=levels))(z)
    np.testing.assert_array_equal(out.codes, codes)
    np.testing.assert_allclose(out.quantized, values, atol=1e-6)
    np.testing.assert_array_equal(q.fsq_lookup(out.codes, levels), out.quantized)
    every = jnp.arange(int(np.prod(levels)))
    np.testing.assert_array_equal(q.fsq_codes(q.fsq_lookup(every, levels), levels), every)
    assert float(out.loss) == 0.0 and out.codes.dtype == jnp.int32
    counts = np.bincount(codes.ravel(), minlength=600)
    np.testing.assert_allclose(out.usage, [np.count_nonzero(counts) / 600], rtol=1e-6)

  @chex.variants(with_jit=True, without_jit=True)
  def test_lfq_codes_and_loss_match_brute_force_softmax(self):
    rng = np.random.default_rng(3)
    z = (0.05 * rng.normal(size=(4, 5, 6))).astype(np.float32)
    kwargs = dict(entropy_weight=0.3, diversity_weight=0.7, inverse_temperature=10.0, beta=0.5)
    out = self.variant(functools.partial(q.lookup_free_quantize, **kwargs))(z)
    bits = (z > 0).astype(np.int64)
    np.testing.assert_array_equal(out.codes, (bits << np.arange(6)).sum(-1))
    np.testing.assert_array_equal(out.quantized, np.where(z > 0, 1.0, -1.0))
    np.testing.assert_array_equal(q.lfq_lookup(out.codes, 6), out.quantized)

    def brute_loss(z):  # full softmax over the 64 codes of {-1, 1}^6
      flat = z.reshape(-1, 6)
      codebook = q.lfq_lookup(jnp.arange(64), 6)
      probs = jax.nn.softmax(-10.0 * jnp.sum((flat[:, None] - codebook) ** 2, -1), axis=-1)
      ent = lambda p: -jnp.sum(p * jnp.log(p), -1)
      commit = jnp.mean(jnp.sum((flat - jnp.where(flat > 0, 1.0, -1.0)) ** 2, -1))
      return 0.5 * commit + 0.3 * (jnp.mean(ent(probs)) - 0.7 * ent(probs.mean(0)))

    np.testing.assert_allclose(out.loss, jax.jit(brute_loss)(z), rtol=1e-4)
    grad = self.variant(jax.grad(lambda z: q.lookup_free_quantize(z, **kwargs).loss))(z)
    np.testing.assert_allclose(grad, jax.jit(jax.grad(brute_loss))(z), rtol=1e-3, atol=1e-5)

  @chex.variants(with_jit=True, without_jit=True)
  def test_rotation_trick_gradient_is_rotated_and_rescaled(self):
    rng = np.random.default_rng(4)
    z = rng.normal(size=(5, 4)).astype(np.float32)
    e = rng.normal(size=(5, 4)).astype(np.float32)
    g = rng.normal(size=(5, 4)).astype(np.float32)
    value = self.variant(q.rotation_trick)(z, e)
    np.testing.assert_allclose(value, e, rtol=1e-6)
    grad = self.variant(jax.grad(lambda z: jnp.sum(q.rotation_trick(z, e) * g)))(z)
    for n in range(5):
      rotation = rotation_matrix(z[n].astype(np.float64), e[n].astype(np.float64))
      np.testing.assert_allclose(rotation @ z[n], e[n], rtol=1e-5, atol=1e-6)  # lambda R z = e
      np.testing.assert_allclose(grad[n], rotation.T @ g[n], rtol=1e-4, atol=1e-6)
    # No gradient reaches the code vectors through the estimator.
    np.testing.assert_array_equal(jax.grad(lambda e: jnp.sum(q.rotation_trick(z, e) * g))(e), 0)


def test_rotation_in_rvq_rotates_onto_the_sum_and_handles_degenerate_vectors():
  rng = np.random.default_rng(5)
  z = rng.normal(size=(3, 4)).astype(np.float32)
  codebooks = rng.normal(size=(2, 5, 4)).astype(np.float32)
  g = rng.normal(size=z.shape).astype(np.float32)
  out = q.residual_quantize(z, codebooks, gradient_estimator="rotation")
  grad = jax.jit(jax.grad(lambda z: jnp.sum(
      q.residual_quantize(z, codebooks, gradient_estimator="rotation").quantized * g)))(z)
  for n in range(3):
    rotation = rotation_matrix(z[n].astype(np.float64), np.asarray(out.quantized[n], np.float64))
    np.testing.assert_allclose(grad[n], rotation.T @ g[n], rtol=1e-4, atol=1e-5)
  # z = 0 and z = -e: finite gradients, value still e.
  zero = jnp.zeros((1, 3))
  e = jnp.ones((1, 3))
  grad = jax.jit(jax.grad(lambda z: jnp.sum(q.rotation_trick(z, e))))
  for zz in (zero, -e):
    assert np.all(np.isfinite(grad(zz)))
    np.testing.assert_array_equal(jax.jit(q.rotation_trick)(zz, e), e)


@pytest.mark.parametrize("name", ["rvq", "fsq", "lfq", "rotation", "bsq", "rfsq", "rlfq",
                                  "simvq", "stochastic"])
def test_bfloat16_and_vmap(name):
  rng = np.random.default_rng(6)
  z = jnp.asarray(rng.normal(size=(2, 3, 4)), jnp.bfloat16)
  codebooks = jnp.asarray(rng.normal(size=(2, 8, 4)), jnp.bfloat16)
  fn = {
      "rvq": lambda z: q.residual_quantize(z, codebooks).quantized,
      "fsq": lambda z: q.finite_scalar_quantize(z, (5, 5, 4, 4)).quantized,
      "lfq": lambda z: q.lookup_free_quantize(z).quantized,
      "rotation": lambda z: q.rotation_trick(z, 2 * z + 1),
      "bsq": lambda z: q.binary_spherical_quantize(z).quantized,
      "rfsq": lambda z: q.residual_finite_scalar_quantize(z, (5, 5, 4, 4), 2).quantized,
      "rlfq": lambda z: q.residual_lookup_free_quantize(z, 2).quantized,
      "simvq": lambda z: q.simvq_quantize(z, codebooks[0], codebooks[1, :4]).quantized,
      "stochastic": lambda z: q.stochastic_quantize(z, codebooks[0], key=jax.random.key(0),
                                                    relaxation="gumbel_softmax").quantized,
  }[name]
  fn = jax.jit(fn)
  out = fn(z)
  assert out.dtype == jnp.bfloat16 and out.shape == z.shape
  batched = jax.vmap(fn)(z)
  np.testing.assert_array_equal(np.asarray(batched, np.float32)[0],
                                np.asarray(fn(z[0]), np.float32))
  grad = jax.grad(lambda z: jnp.sum(fn(z).astype(jnp.float32)))(z)
  assert grad.dtype == jnp.bfloat16 and np.all(np.isfinite(np.asarray(grad, np.float32)))


def test_families_bad_input():
  cases = [
      (lambda: q.residual_quantize(jnp.zeros((2, 3)), jnp.zeros((2, 4, 5))), "feature size 3"),
      (lambda: q.residual_quantize(jnp.zeros((2, 3)), jnp.zeros((4, 3))), r"rank 3 \(M, K, D\)"),
      (lambda: q.depthwise_residual_quantize(jnp.zeros((2, 6)), jnp.zeros((2, 4, 3))),
       r"rank 4 \(L, M, K, D\)"),
      (lambda: q.residual_quantize(jnp.zeros((2, 3)), jnp.zeros((2, 4, 3)),
                                   gradient_estimator="gumbel"), "unknown gradient_estimator"),
      (lambda: q.finite_scalar_quantize(jnp.zeros((2, 3)), (5, 5)), "len\\(levels\\)"),
      (lambda: q.finite_scalar_quantize(jnp.zeros((2, 2)), (5, 1)), "levels must be"),
      (lambda: q.lookup_free_quantize(jnp.zeros((2, 17))), "split z"),
  ]
  for make, message in cases:
    with pytest.raises(ValueError, match=message):
      make()


def test_lfq_blocked_batch_entropy_equals_one_block(monkeypatch):
  z = jnp.asarray(0.05 * np.random.default_rng(7).normal(size=(37, 5)), jnp.float32)
  loss = jax.jit(jax.value_and_grad(lambda z: q.lookup_free_quantize(z).loss))
  whole = loss(z)
  monkeypatch.setattr(q._lfq, "_TILE_BYTES", 4 * 32 * 8)  # 8 rows per block: 5 blocks, padded
  monkeypatch.setattr(q._lfq, "_MIN_ROWS", 1)
  loss = jax.jit(jax.value_and_grad(lambda z: q.lookup_free_quantize(z).loss))
  chex.assert_trees_all_close(loss(z), whole, rtol=1e-5, atol=1e-5)


def test_lfq_batch_entropy_gradient_memory_is_o_of_n_plus_k(monkeypatch):
  # One row per block: N = 4096 blocks of K = 4096 codes. Stacking the per-block sums (and
  # their cotangents) would need N*K*4 B = 64 MiB; the running sum keeps the step O(N + K).
  monkeypatch.setattr(q._lfq, "_TILE_BYTES", 4)
  monkeypatch.setattr(q._lfq, "_MIN_ROWS", 1)
  z = jnp.zeros((4096, 12), jnp.float32)
  grad = jax.jit(jax.grad(lambda z: q.lookup_free_quantize(z).loss))
  analysis = grad.lower(z).compile().memory_analysis()
  assert analysis.temp_size_in_bytes < 8 << 20, analysis
