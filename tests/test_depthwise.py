"""`depthwise(quantize_fn, L)` against numpy references and the per-slice quantizers."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dvq_jax import quantizers as q
from tests.conftest import brute_force_codes


def test_depthwise_vq_is_depthwise_quantize_and_the_numpy_reference():
  rng = np.random.default_rng(0)
  L, K, D = 3, 7, 2
  z = rng.normal(size=(4, 5, L * D)).astype(np.float32)
  codebooks = rng.normal(size=(L, K, D)).astype(np.float32)
  out = jax.jit(q.depthwise(q.vector_quantize, L))(z, codebooks)
  ref = q.depthwise_quantize(z, codebooks)
  slices = z.reshape(-1, L, D)
  codes = np.stack([brute_force_codes(slices[:, l], codebooks[l]) for l in range(L)], -1)
  np.testing.assert_array_equal(out.codes.reshape(-1, L), codes)
  np.testing.assert_array_equal(out.codes, ref.codes)
  chosen = codebooks[np.arange(L), codes]
  np.testing.assert_allclose(out.quantized.reshape(-1, L, D), chosen, rtol=1e-6)
  commit = np.mean(np.sum((slices - chosen) ** 2, axis=(1, 2)))
  for field in ("loss", "codebook_loss", "commitment_loss", "perplexity", "usage"):
    np.testing.assert_allclose(getattr(out, field), getattr(ref, field), rtol=1e-5)
  np.testing.assert_allclose(out.commitment_loss, commit, rtol=1e-5)
  loss = lambda f: jax.grad(lambda z, e: f(z, e).loss, argnums=(0, 1))(z, codebooks)
  for got, want in zip(loss(q.depthwise(q.vector_quantize, L)), loss(q.depthwise_quantize)):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("family", ["fsq", "lfq", "bsq", "rfsq", "rlfq", "rvq"])
def test_depthwise_of_every_family_is_its_slices(family):
  rng = np.random.default_rng(1)
  L, D = 2, 3
  z = rng.normal(size=(3, 4, L * D)).astype(np.float32)
  mask = rng.random((3, 4)) < 0.7
  per_slice, options = (), {"mask": mask}
  fn = {"fsq": functools.partial(q.finite_scalar_quantize, levels=(5, 4, 3)),
        "lfq": functools.partial(q.lookup_free_quantize, inverse_temperature=2.0),
        "bsq": functools.partial(q.binary_spherical_quantize, inverse_temperature=2.0),
        "rfsq": functools.partial(q.residual_finite_scalar_quantize, levels=(5, 4, 3),
                                  num_stages=2),
        "rlfq": functools.partial(q.residual_lookup_free_quantize, num_stages=2,
                                  inverse_temperature=2.0),
        "rvq": q.residual_quantize}[family]
  if family == "rvq":
    per_slice = (rng.normal(size=(L, 2, 5, D)).astype(np.float32),)
    options = {}
  out = q.depthwise(fn, L)(z, *per_slice, **options)
  parts = [fn(z[..., l * D:(l + 1) * D], *(p[l] for p in per_slice), **options) for l in range(L)]
  np.testing.assert_allclose(out.quantized, np.concatenate([p.quantized for p in parts], -1),
                             rtol=1e-6)
  np.testing.assert_array_equal(out.codes, np.stack([p.codes for p in parts], z.ndim - 1))
  np.testing.assert_allclose(out.loss, sum(p.loss for p in parts), rtol=1e-5)
  np.testing.assert_allclose(out.perplexity.reshape(L, -1),
                             np.stack([p.perplexity for p in parts]), rtol=1e-5)
  if family == "rvq":
    ref = q.depthwise_residual_quantize(z, per_slice[0])
    np.testing.assert_array_equal(out.codes, ref.codes)
    np.testing.assert_allclose(out.loss, ref.loss, rtol=1e-5)


def test_depthwise_bfloat16_and_bad_input():
  z = jnp.asarray(np.random.default_rng(2).normal(size=(4, 8)), jnp.bfloat16)
  out = q.depthwise(q.binary_spherical_quantize, 2)(z)
  assert out.quantized.dtype == jnp.bfloat16 and out.codes.shape == (4, 2)
  with pytest.raises(ValueError, match="not divisible by L = 3"):
    q.depthwise(q.binary_spherical_quantize, 3)(z)
  with pytest.raises(ValueError, match="leading axis of L = 2"):
    q.depthwise(q.vector_quantize, 2)(z, jnp.zeros((3, 4, 4), jnp.bfloat16))
