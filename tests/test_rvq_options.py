"""RVQ options against a numpy reference: a codebook shared by the stages, num_active_stages
and quantize dropout (per example, from a key)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dvq_jax import quantizers as q
from tests.conftest import brute_force_codes


def _greedy(x, codebooks):
  """Per-stage codes `(N, M)`, partial sums `(M, N, D)` and per-row errors `(M, N)`, float64."""
  residual, codes, sums, errors, total = np.asarray(x, np.float64), [], [], [], 0.0
  for e in np.asarray(codebooks, np.float64):
    c = brute_force_codes(residual, e)
    total = total + e[c]
    errors.append(np.sum((residual - e[c]) ** 2, -1))
    residual = residual - e[c]
    codes.append(c)
    sums.append(total)
  return np.stack(codes, -1), np.stack(sums), np.stack(errors)


def test_shared_codebook_and_num_active_stages():
  rng = np.random.default_rng(0)
  z = rng.normal(size=(20, 3)).astype(np.float32)
  codebook = rng.normal(size=(6, 3)).astype(np.float32)
  out = q.residual_quantize(z, codebook, num_stages=3, beta=0.5)
  codes, sums, errors = _greedy(z, [codebook] * 3)
  np.testing.assert_array_equal(out.codes, codes)
  np.testing.assert_allclose(out.quantized, sums[-1], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(out.loss, 1.5 * errors.mean(1).sum(), rtol=1e-5)
  # The shared codebook's gradient is the sum of the three stages' gradients.
  shared = jax.grad(lambda e: q.residual_quantize(z, e, num_stages=3).codebook_loss)(codebook)
  stacked = jax.grad(lambda e: q.residual_quantize(z, e).codebook_loss)(np.stack([codebook] * 3))
  np.testing.assert_allclose(shared, stacked.sum(0), rtol=1e-5, atol=1e-6)
  two = q.residual_quantize(z, codebook, num_stages=3, num_active_stages=2)
  np.testing.assert_array_equal(two.codes, codes[:, :2])
  np.testing.assert_allclose(two.quantized, sums[1], rtol=1e-5, atol=1e-6)
  assert two.perplexity.shape == (2,)


def test_quantize_dropout_runs_a_random_number_of_stages_per_example():
  rng = np.random.default_rng(1)
  batch, positions, M = 32, 3, 4
  z = rng.normal(size=(batch, positions, 2)).astype(np.float32)
  codebooks = rng.normal(size=(M, 5, 2)).astype(np.float32)
  out = jax.jit(lambda z, k: q.residual_quantize(z, codebooks, dropout_key=k))(
      z, jax.random.key(3))
  codes, sums, errors = _greedy(z.reshape(-1, 2), codebooks)
  codes = codes.reshape(batch, positions, M)
  sums = sums.reshape(M, batch, positions, 2)
  errors = errors.reshape(M, batch, positions)
  kept = []
  for b in range(batch):  # the stages example b ran: the partial sum its output equals
    n = [m + 1 for m in range(M) if np.allclose(out.quantized[b], sums[m, b], atol=1e-5)]
    assert n, b
    kept.append(n[0])
    np.testing.assert_array_equal(out.codes[b, :, :n[0]], codes[b, :, :n[0]])
    assert not np.any(out.codes[b, :, n[0]:])
  assert set(kept) == set(range(1, M + 1))  # every bit rate occurs in 32 examples
  active = np.arange(M)[:, None] < np.array(kept)[None, :]  # (M, batch)
  expected = np.sum(errors * active[:, :, None], axis=(1, 2)) / (batch * positions)
  np.testing.assert_allclose(out.commitment_loss, expected.sum(), rtol=1e-5)
  again = q.residual_quantize(z, codebooks, dropout_key=jax.random.key(3))
  np.testing.assert_array_equal(again.codes, out.codes)  # deterministic for a key
  grad = jax.grad(lambda z: q.residual_quantize(z, codebooks, dropout_key=jax.random.key(3)
                                                ).commitment_loss)(z)
  assert np.all(np.isfinite(grad))


def test_depthwise_dropout_shares_the_bit_rate_across_slices_and_bad_options():
  rng = np.random.default_rng(2)
  z = jnp.asarray(rng.normal(size=(16, 4)), jnp.bfloat16)
  codebooks = jnp.asarray(rng.normal(size=(2, 3, 5, 2)), jnp.bfloat16)
  out = q.depthwise_residual_quantize(z, codebooks, dropout_key=jax.random.key(0))
  assert out.quantized.dtype == jnp.bfloat16 and out.codes.shape == (16, 2, 3)
  # With K = 5 random codes a stage's code is rarely 0: the zero tails line up across slices.
  ran = np.asarray(out.codes) != 0
  assert np.mean(ran[:, 0] == ran[:, 1]) > 0.8
  with pytest.raises(ValueError, match="num_active_stages = 4"):
    q.residual_quantize(z[:, :2], codebooks[0], num_active_stages=4)
  with pytest.raises(ValueError, match="with num_stages"):
    q.residual_quantize(z[:, :2], codebooks[0, 0])
