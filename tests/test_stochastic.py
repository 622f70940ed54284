"""Stochastic codes against numpy references: the sampled distribution, the Gumbel-max codes and
the Gumbel-softmax gradient for a given noise, temperature 0, masks and the depthwise form."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dvq_jax import quantizers as q


def _softmax(a):
  a = a - a.max(-1, keepdims=True)
  return np.exp(a) / np.exp(a).sum(-1, keepdims=True)


def test_sampled_codes_follow_the_boltzmann_distribution(monkeypatch):
  monkeypatch.setattr(q._stochastic, "_TILE_BYTES", 4 * 4 * 1000)  # 1,000-row blocks
  codebook = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [-1.0, -1.0]], np.float32)
  x = np.array([0.4, 0.3], np.float32)
  n = 20_000
  codes = q.stochastic_codes(jax.random.key(0), np.tile(x, (n, 1)), codebook, temperature=0.7)
  p = _softmax(-np.sum((x - codebook) ** 2, -1) / 0.7)
  freq = np.bincount(np.asarray(codes), minlength=4) / n
  np.testing.assert_allclose(freq, p, atol=4 * np.sqrt(p * (1 - p) / n).max())


def test_gumbel_max_codes_and_gumbel_softmax_gradient_for_the_noise():
  rng = np.random.default_rng(0)
  z = rng.normal(size=(6, 3)).astype(np.float32)
  codebook = rng.normal(size=(5, 3)).astype(np.float32)
  key, t = jax.random.key(1), 0.5
  # One block (6 rows): its noise is the draw of fold_in(key, 0).
  noise = np.asarray(jax.random.gumbel(jax.random.fold_in(key, 0), (6, 5)), np.float64)
  d = np.sum((z[:, None].astype(np.float64) - codebook) ** 2, -1)
  codes = np.argmax(-d / t + noise, -1)
  for relaxation in ("straight_through", "gumbel_softmax"):
    out = q.stochastic_quantize(z, codebook, key=key, temperature=t, relaxation=relaxation)
    np.testing.assert_array_equal(out.codes, codes)
    np.testing.assert_allclose(out.quantized, codebook[codes], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out.commitment_loss, np.mean(np.sum((z - codebook[codes]) ** 2,
                                                                   -1)), rtol=1e-5)
  weights = rng.normal(size=(6, 3)).astype(np.float32)

  def relaxed(z, e):  # the Gumbel-softmax surrogate with the same noise
    dist = jnp.sum((z[:, None] - e) ** 2, -1)
    return jnp.sum(jax.nn.softmax(-dist / t + noise, -1) @ e * weights)

  grad = jax.grad(lambda z, e: jnp.sum(q.stochastic_quantize(
      z, e, key=key, temperature=t, relaxation="gumbel_softmax").quantized * weights),
                  argnums=(0, 1))(z, codebook)
  for got, want in zip(grad, jax.grad(relaxed, argnums=(0, 1))(z, codebook)):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
  st = jax.grad(lambda z: jnp.sum(q.stochastic_quantize(z, codebook, key=key,
                                                        temperature=t).quantized * weights))(z)
  np.testing.assert_allclose(st, weights)  # straight-through: the identity


def test_temperature_zero_is_vq_and_depthwise_masks_and_bfloat16():
  rng = np.random.default_rng(2)
  z = rng.normal(size=(4, 5, 6)).astype(np.float32)
  codebooks = rng.normal(size=(2, 7, 3)).astype(np.float32)
  mask = rng.random((4, 5)) < 0.5
  deep = q.depthwise(q.stochastic_quantize, 2)
  zero = deep(z, codebooks, key=jax.random.key(0), temperature=0.0, mask=mask)
  ref = q.depthwise_quantize(z, codebooks, mask=mask)
  np.testing.assert_array_equal(zero.codes, ref.codes)
  np.testing.assert_allclose(zero.loss, ref.loss, rtol=1e-6)
  hot = jax.jit(lambda z, k: deep(z, codebooks, key=k, temperature=5.0, mask=mask))(
      z, jax.random.key(3))
  assert not np.any(np.asarray(hot.codes)[~mask])
  assert np.mean(np.asarray(hot.codes)[mask] != np.asarray(ref.codes)[mask]) > 0.2
  half = q.stochastic_quantize(jnp.asarray(z[..., :3], jnp.bfloat16),
                               jnp.asarray(codebooks[0], jnp.bfloat16), key=jax.random.key(4),
                               temperature=1.0, relaxation="gumbel_softmax")
  assert half.quantized.dtype == jnp.bfloat16
  with pytest.raises(ValueError, match="temperature = -1"):
    q.stochastic_codes(jax.random.key(0), z[0, :, :3], codebooks[0], temperature=-1)
  with pytest.raises(ValueError, match="relaxation = 'soft' is unknown"):
    q.stochastic_quantize(z[..., :3], codebooks[0], key=jax.random.key(0), relaxation="soft")
