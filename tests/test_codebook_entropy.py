"""The codebook entropy penalty against a numpy reference: value, gradients, masks, blocks and
its O(N + K) memory."""

import jax
import jax.numpy as jnp
import numpy as np

from dvq_jax import quantizers as q


def _reference(z, e, t, gamma):
  d = np.sum((z[:, None].astype(np.float64) - e) ** 2, -1)
  a = -d / t
  p = np.exp(a - a.max(-1, keepdims=True))
  p /= p.sum(-1, keepdims=True)
  ent = lambda p: -np.sum(p * np.log(np.maximum(p, 1e-300)), -1)
  return np.mean(ent(p)) - gamma * ent(p.mean(0))


def test_penalty_matches_numpy_with_gradients_masks_and_blocks(monkeypatch):
  rng = np.random.default_rng(0)
  z = rng.normal(size=(5, 7, 3)).astype(np.float32)
  e = rng.normal(size=(6, 3)).astype(np.float32)
  kwargs = dict(temperature=0.8, diversity_weight=0.6)
  penalty = jax.jit(lambda z, e, m=None: q.codebook_entropy_penalty(z, e, mask=m, **kwargs))
  np.testing.assert_allclose(penalty(z, e), _reference(z.reshape(-1, 3), e, 0.8, 0.6),
                             rtol=1e-5)

  def brute(z, e):
    p = jax.nn.softmax(-jnp.sum((z.reshape(-1, 1, 3) - e) ** 2, -1) / 0.8, -1)
    ent = lambda p: -jnp.sum(p * jnp.log(p), -1)
    return jnp.mean(ent(p)) - 0.6 * ent(p.mean(0))

  grads = jax.grad(penalty, argnums=(0, 1))(z, e)
  for got, want in zip(grads, jax.grad(brute, argnums=(0, 1))(z, e)):
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
  mask = rng.random((5, 7)) < 0.5
  np.testing.assert_allclose(penalty(z, e, mask), _reference(z[mask], e, 0.8, 0.6), rtol=1e-5)
  monkeypatch.setattr(q._entropy, "_TILE_BYTES", 4 * 6 * 4)  # 4 rows per block: 9, padded
  blocked = jax.jit(jax.value_and_grad(lambda z: q.codebook_entropy_penalty(z, e, **kwargs)))
  value, grad = blocked(z)
  np.testing.assert_allclose(value, penalty(z, e), rtol=1e-5)
  np.testing.assert_allclose(grad, grads[0], rtol=1e-4, atol=1e-6)
  half = q.codebook_entropy_penalty(jnp.asarray(z, jnp.bfloat16), jnp.asarray(e, jnp.bfloat16))
  assert half.dtype == jnp.float32 and np.isfinite(half)


def test_penalty_gradient_memory_is_o_of_n_plus_k(monkeypatch):
  # One row per block: N = 4096 blocks of K = 4096 codes; an (N, K) matrix would be 64 MiB.
  monkeypatch.setattr(q._entropy, "_TILE_BYTES", 4)
  z, e = jnp.zeros((4096, 8), jnp.float32), jnp.zeros((4096, 8), jnp.float32)
  grad = jax.jit(jax.grad(q.codebook_entropy_penalty, argnums=(0, 1)))
  analysis = grad.lower(z, e).compile().memory_analysis()
  assert analysis.temp_size_in_bytes < 8 << 20, analysis
