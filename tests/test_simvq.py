"""SimVQ against a numpy reference: codes over basis @ W, the gradient reaching W (not the
basis), and its depthwise form."""

import jax
import jax.numpy as jnp
import numpy as np

from dvq_jax import quantizers as q
from tests.conftest import brute_force_codes


def test_simvq_codes_losses_and_gradient_match_numpy():
  rng = np.random.default_rng(0)
  z = rng.normal(size=(30, 4)).astype(np.float32)
  basis = rng.normal(size=(9, 4)).astype(np.float32)
  w = (np.eye(4) + 0.3 * rng.normal(size=(4, 4))).astype(np.float32)
  out = jax.jit(q.simvq_quantize)(z, basis, w)
  codebook = basis.astype(np.float64) @ w
  codes = brute_force_codes(z, codebook)
  np.testing.assert_array_equal(out.codes, codes)
  np.testing.assert_allclose(out.quantized, codebook[codes], rtol=1e-5, atol=1e-6)
  diff = z - codebook[codes]
  np.testing.assert_allclose(out.codebook_loss, np.mean(np.sum(diff**2, -1)), rtol=1e-5)
  grad_basis, grad_w = jax.grad(lambda b, w: q.simvq_quantize(z, b, w).codebook_loss,
                                argnums=(0, 1))(basis, w)
  # d/dW mean_n ||x_n - b_{c_n} W||^2 = -2/N sum_n b_{c_n}^T (x_n - b_{c_n} W).
  np.testing.assert_allclose(grad_w, -2.0 / len(z) * basis[codes].T @ diff, rtol=1e-4,
                             atol=1e-6)
  assert not np.any(grad_basis)  # the basis is frozen
  L = 2
  bases, ws = np.stack([basis, basis[::-1]]), np.stack([w, w.T])
  zz = rng.normal(size=(5, L * 4)).astype(np.float32)
  deep = q.depthwise(q.simvq_quantize, L)(jnp.asarray(zz, jnp.bfloat16),
                                          jnp.asarray(bases, jnp.bfloat16),
                                          jnp.asarray(ws, jnp.bfloat16))
  assert deep.quantized.dtype == jnp.bfloat16
  ref = q.depthwise_quantize(zz, np.asarray(q.simvq_codebook(bases, ws)))
  np.testing.assert_array_equal(q.depthwise(q.simvq_quantize, L)(zz, bases, ws).codes, ref.codes)
