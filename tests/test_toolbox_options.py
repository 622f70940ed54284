"""The `cosine` and `gradient_estimator` options of the four quantizers, against numpy references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dvq_jax import quantizers as q
from tests.conftest import reference_quantize
from tests.quantizer_fixtures import QUANTIZE
# kind -> (z shape, codebooks shape)
SHAPES = {
    "vector": ((3, 5, 4), (9, 4)),
    "depthwise": ((2, 7, 6), (2, 9, 3)),
    "multi": ((11, 3), (3, 9, 3)),
    "spatial": ((2, 6, 3), (3, 9, 3)),
}


def _data(kind, seed=0):
  rng = np.random.default_rng(seed)
  z_shape, cb_shape = SHAPES[kind]
  z = rng.normal(size=z_shape).astype(np.float32)
  scale = rng.uniform(0.2, 5.0, cb_shape[:-1] + (1,))
  return z, (rng.normal(size=cb_shape) * scale).astype(np.float32)


def _normalise_slices(kind, z, codebooks):
  unit = lambda a: a / np.linalg.norm(a, axis=-1, keepdims=True)
  if kind == "depthwise":
    num, dim = codebooks.shape[0], codebooks.shape[-1]
    return unit(z.reshape(*z.shape[:-1], num, dim)).reshape(z.shape), unit(codebooks)
  return unit(z), unit(codebooks)


@pytest.mark.parametrize("kind", sorted(QUANTIZE))
def test_cosine_quantizes_unit_vectors(kind):
  z, codebooks = _data(kind)
  z_unit, cb_unit = _normalise_slices(kind, z, codebooks)
  ref = reference_quantize(kind, z_unit, cb_unit)
  out = jax.jit(lambda z, c: QUANTIZE[kind](z, c, cosine=True))(z, codebooks)
  np.testing.assert_array_equal(out.codes, ref["codes"])
  np.testing.assert_allclose(out.quantized, ref["quantized"], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(out.loss, ref["loss"], rtol=1e-5)
  # Scaling z or a codebook vector changes no cosine code.
  rescaled = QUANTIZE[kind](3.0 * z, 0.5 * codebooks, cosine=True)
  np.testing.assert_array_equal(rescaled.codes, out.codes)


@pytest.mark.parametrize("kind", sorted(QUANTIZE))
def test_rotation_estimator_keeps_the_value_and_rotates_the_gradient(kind):
  z, codebooks = _data(kind, 1)
  g = np.random.default_rng(2).normal(size=QUANTIZE[kind](z, codebooks).quantized.shape)
  g = g.astype(np.float32)

  def run(estimator):
    fn = lambda z: QUANTIZE[kind](z, codebooks, gradient_estimator=estimator)
    out = fn(z)
    return out, jax.jit(jax.grad(lambda z: jnp.sum(fn(z).quantized * g)))(z)

  straight, straight_grad = run("straight_through")
  rotated, rotated_grad = run("rotation")
  np.testing.assert_allclose(rotated.quantized, straight.quantized, rtol=1e-6)
  np.testing.assert_array_equal(rotated.codes, straight.codes)
  np.testing.assert_allclose(rotated.loss, straight.loss, rtol=1e-6)
  if kind != "multi":  # multi: z feeds L codebooks, the gradient sums L copies
    np.testing.assert_allclose(straight_grad, g, rtol=1e-6)
  # Reference: per vector, dL/dz = lambda R^T dL/dq, R taking z/|z| to e/|e|.
  dim = codebooks.shape[-1]
  if kind == "multi":
    z_rows = np.repeat(z.reshape(-1, 1, dim), codebooks.shape[0], axis=1).reshape(-1, dim)
  else:  # spatial keeps the position order too: rows pair up with the quantized rows
    z_rows = z.reshape(-1, dim)
  e_rows = np.asarray(straight.quantized, np.float64).reshape(-1, dim)
  g_rows = g.reshape(-1, dim)
  expected = []
  for zz, e, gg in zip(z_rows.astype(np.float64), e_rows, g_rows):
    z_hat, e_hat = zz / np.linalg.norm(zz), e / np.linalg.norm(e)
    r = (z_hat + e_hat) / np.linalg.norm(z_hat + e_hat)
    rot = np.eye(dim) - 2 * np.outer(r, r) + 2 * np.outer(e_hat, z_hat)
    expected.append(np.linalg.norm(e) / np.linalg.norm(zz) * rot.T @ gg)
  expected = np.array(expected)
  if kind == "multi":
    expected = expected.reshape(-1, codebooks.shape[0], dim).sum(1)
  np.testing.assert_allclose(rotated_grad, expected.reshape(z.shape), rtol=1e-4, atol=1e-5)


def test_options_bad_input():
  z, codebooks = _data("depthwise")
  with pytest.raises(ValueError, match="unknown gradient_estimator 'ste'; choose one of"):
    q.depthwise_quantize(z, codebooks, gradient_estimator="ste")
