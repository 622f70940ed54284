"""Codebook learning against numpy references: EMA updates, k-means, dead-code restart, cosine codes."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dvq_jax import quantizers as q
from tests.conftest import brute_force_codes

L, K, D = 2, 4, 3


def _data(seed=0, batch=(3, 5)):
  rng = np.random.default_rng(seed)
  slices = rng.normal(size=(*batch, L, D)).astype(np.float32)
  codebooks = rng.normal(size=(L, K, D)).astype(np.float32)
  return slices, codebooks


def _codes(slices, codebooks):
  flat = slices.reshape(-1, L, D)
  codes = np.stack([brute_force_codes(flat[:, l], codebooks[l]) for l in range(L)], axis=-1)
  return codes.reshape(slices.shape[:-1])


def _ema_reference(slices, codes, cluster_size, embed_sum, decay, eps):
  flat, flat_codes = slices.reshape(-1, L, D), codes.reshape(-1, L)
  counts, sums = np.zeros((L, K)), np.zeros((L, K, D))
  for l in range(L):
    np.add.at(counts[l], flat_codes[:, l], 1.0)
    np.add.at(sums[l], flat_codes[:, l], flat[:, l])
  cluster_size = decay * cluster_size + (1 - decay) * counts
  embed_sum = decay * embed_sum + (1 - decay) * sums
  n = cluster_size.sum(-1, keepdims=True)
  smoothed = (cluster_size + eps) / (n + K * eps) * n
  return embed_sum / smoothed[..., None], cluster_size, embed_sum


@pytest.mark.parametrize("decay,eps", [(0.9, 1e-5), (0.0, 0.1)])
def test_ema_update_matches_numpy_over_two_steps(decay, eps):
  slices, codebooks = _data()
  ema = q.ema_codebooks(decay, eps)
  state = ema.init(jnp.asarray(codebooks))
  chex.assert_trees_all_close(ema.init(jnp.asarray(codebooks)).embed_sum, codebooks)
  cluster_size, embed_sum, current = np.ones((L, K)), codebooks.astype(np.float64), codebooks
  update = jax.jit(ema.update)
  for step in range(2):
    batch = slices + step
    codes = _codes(batch, current)
    new, state = update(jnp.asarray(batch), jnp.asarray(codes), state)
    current, cluster_size, embed_sum = _ema_reference(batch, codes, cluster_size, embed_sum,
                                                      decay, eps)
    chex.assert_shape(new, (L, K, D))
    chex.assert_trees_all_close(state.cluster_size, cluster_size, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(state.embed_sum, embed_sum, rtol=1e-5, atol=1e-5)
    chex.assert_trees_all_close(new, current, rtol=1e-4, atol=1e-5)
    current = np.asarray(new)


def test_ema_unused_code_keeps_its_value_and_bfloat16_round_trips():
  slices, codebooks = _data()
  ema = q.ema_codebooks(0.5, 1e-8)
  codes = np.zeros(slices.shape[:-1], np.int32)  # every vector picks code 0
  new, _ = ema.update(jnp.asarray(slices), jnp.asarray(codes), ema.init(jnp.asarray(codebooks)))
  total = 0.5 * K + 0.5 * 15  # cluster sizes sum: 0.5 * K ones + 0.5 * 15 vectors
  # Codes 1..K-1 saw nothing: ratio embed_sum / cluster_size unchanged up to the smoothing.
  np.testing.assert_allclose(new[:, 1:], codebooks[:, 1:], rtol=1e-6 * total)
  new16, _ = ema.update(jnp.asarray(slices, jnp.bfloat16), jnp.asarray(codes),
                        ema.init(jnp.asarray(codebooks)))
  assert new16.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.asarray(new16, np.float32), new, rtol=2e-2, atol=2e-2)


def test_ema_bad_input():
  slices, codebooks = _data()
  ema = q.ema_codebooks()
  state = ema.init(jnp.asarray(codebooks))
  with pytest.raises(ValueError, match=r"slices must be \(\.\.\., L, D\) = \(\.\.\., 2, 3\)"):
    ema.update(jnp.zeros((5, L * D)), jnp.zeros((5, L), jnp.int32), state)
  with pytest.raises(ValueError, match="codes shape"):
    ema.update(jnp.asarray(slices), jnp.zeros((5, L), jnp.int32), state)
  with pytest.raises(ValueError, match="decay"):
    q.ema_codebooks(decay=1.0)
  with pytest.raises(ValueError, match="epsilon"):
    q.ema_codebooks(epsilon=0.0)


def test_kmeans_step_matches_numpy_lloyd():
  slices, codebooks = _data(1, (40,))
  codebooks[1, 3] = 100.0  # wins nothing: keeps its value
  codes = _codes(slices, codebooks)
  assert (codes[:, 1] == 3).sum() == 0
  expected = codebooks.astype(np.float64).copy()
  for l in range(L):
    for k in range(K):
      members = slices[:, l][codes[:, l] == k]
      if len(members):
        expected[l, k] = members.mean(0)
  got = jax.jit(q.kmeans_step)(jnp.asarray(slices), jnp.asarray(codebooks))
  chex.assert_trees_all_close(got, expected, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(got[1, 3], 100.0)


def test_kmeans_init_finds_separated_clusters_and_is_deterministic():
  rng = np.random.default_rng(2)
  centres = np.array([[[-10.0, 0.0], [0.0, 10.0], [10.0, 0.0]],
                      [[0.0, -5.0], [5.0, 5.0], [-5.0, 5.0]]], np.float32)  # (L=2, K=3, D=2)
  labels = rng.integers(0, 3, (2, 60))
  points = np.stack([centres[l][labels[l]] for l in range(2)], axis=1)  # (60, 2, 2)
  slices = points + 0.1 * rng.normal(size=points.shape).astype(np.float32)
  key = jax.random.key(3)
  got = q.kmeans_init(key, jnp.asarray(slices), 3, num_iters=3)
  chex.assert_trees_all_equal(got, q.kmeans_init(key, jnp.asarray(slices), 3, num_iters=3))
  for l in range(2):
    means = [slices[labels[l] == c, l].mean(0) for c in range(3)]
    matched = sorted(np.asarray(got[l]).tolist())
    np.testing.assert_allclose(matched, sorted(np.array(means).tolist()), atol=1e-5)
  seeds = np.asarray(q.kmeans_init(key, jnp.asarray(slices), 3, num_iters=0))
  for l in range(2):  # seeding picks data points, one from each cluster (D^2 sampling)
    assert all(np.any(np.all(slices[:, l] == s, axis=-1)) for s in seeds[l])
    assert len({int(np.argmin(((centres[l] - s) ** 2).sum(-1))) for s in seeds[l]}) == 3
  other = q.kmeans_init(jax.random.key(4), jnp.asarray(slices), 3, num_iters=0)
  assert not np.array_equal(seeds, np.asarray(other))
  assert q.kmeans_init(key, jnp.asarray(slices, jnp.bfloat16), 3).dtype == jnp.bfloat16


def test_kmeans_bad_input():
  with pytest.raises(ValueError, match=r"K <= number of vectors.*pass more batches"):
    q.kmeans_init(jax.random.key(0), jnp.zeros((3, L, D)), 4)
  with pytest.raises(ValueError, match=r"slices must be \(\.\.\., L, D\)"):
    q.kmeans_step(jnp.zeros((3, L * D)), jnp.zeros((L, K, D)))


@pytest.mark.parametrize("batch", [(3, 5), (2,)])
def test_restart_replaces_dead_codes_with_vectors_of_their_slice(batch):
  slices, codebooks = _data(5, batch)
  usage = np.array([[3.0, 0.1, 0.0, 2.0], [0.0, 0.0, 5.0, 0.5]], np.float32)
  ema_state = q.EmaState(jnp.asarray(usage), jnp.asarray(codebooks) * usage[..., None])
  key = jax.random.key(7)
  out = jax.jit(q.restart_dead_codes)(
      key, jnp.asarray(codebooks), jnp.asarray(usage), jnp.asarray(slices), threshold=1.0,
      ema_state=ema_state)
  dead = usage < 1.0
  np.testing.assert_array_equal(out.dead, dead)
  assert int(out.num_restarted) == dead.sum() == 5
  np.testing.assert_array_equal(out.codebooks[~dead], codebooks[~dead])
  flat = slices.reshape(-1, L, D)
  for l in range(L):
    new = np.asarray(out.codebooks[l][dead[l]])
    rows = [np.flatnonzero(np.all(flat[:, l] == v, axis=-1)) for v in new]
    assert all(len(r) for r in rows), "a restarted code is not a vector of its own slice"
    if flat.shape[0] >= K:
      assert len({int(r[0]) for r in rows}) == len(rows)  # drawn without replacement
  np.testing.assert_array_equal(out.ema_state.cluster_size, np.where(dead, 1.0, usage))
  chex.assert_trees_all_close(q._ema.ema_codebooks_of(out.ema_state)[dead], out.codebooks[dead],
                              rtol=1e-4)
  again = q.restart_dead_codes(key, jnp.asarray(codebooks), jnp.asarray(usage),
                               jnp.asarray(slices), threshold=1.0)
  chex.assert_trees_all_equal(again.codebooks, out.codebooks)
  assert again.ema_state is None


def test_restart_bad_input():
  slices, codebooks = _data()
  with pytest.raises(ValueError, match=r"usage shape \(4,\) must be \(L, K\)"):
    q.restart_dead_codes(jax.random.key(0), jnp.asarray(codebooks), jnp.ones(K),
                         jnp.asarray(slices), threshold=1.0)


def test_cosine_codes_match_numpy_argmax_cosine():
  rng = np.random.default_rng(9)
  x = rng.normal(size=(50, 4)).astype(np.float32)
  codebook = (rng.normal(size=(16, 4)) * rng.uniform(0.1, 10, (16, 1))).astype(np.float32)
  cosine = (x / np.linalg.norm(x, axis=1, keepdims=True)) @ (
      codebook / np.linalg.norm(codebook, axis=1, keepdims=True)).T
  np.testing.assert_array_equal(jax.jit(q.cosine_codes)(x, codebook), np.argmax(cosine, -1))
  normed = q.l2_normalize(jnp.asarray(x, jnp.bfloat16))
  assert normed.dtype == jnp.bfloat16
  np.testing.assert_allclose(np.linalg.norm(np.asarray(normed, np.float32), axis=-1), 1.0,
                             atol=1e-2)
  np.testing.assert_array_equal(q.l2_normalize(jnp.zeros((2, 3))), 0.0)
