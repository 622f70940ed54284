"""K-way categorical log-probabilities against a float64 numpy log-softmax, in both forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special

from dvq_jax import backends
from dvq_jax import categorical


@pytest.mark.parametrize("platform", ["cpu", "tpu"])  # the gather and the select-sum forms
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("num_categoricals,num_classes", [(1, 7), (2, 64)])
def test_log_probs_value_and_gradient_match_numpy(platform, dtype, num_categoricals, num_classes):
  """(B, T, C*K) logits (C = 1: the code prior's tokens): value and gradient, onehot - softmax
  weighted by a non-uniform cotangent; a bfloat16 input gets a bfloat16 gradient."""
  rng = np.random.default_rng(num_classes)
  shape = (3, 5)
  logits = jnp.asarray(rng.normal(0, 3, (*shape, num_categoricals * num_classes)), dtype)
  values = rng.integers(0, num_classes, (*shape, num_categoricals))
  values[0, 0] = 0  # both ends of the classes
  values[0, 1] = num_classes - 1
  weights = rng.normal(0, 1, (*shape, num_categoricals))
  grouped = np.asarray(logits, np.float64).reshape(*shape, num_categoricals, num_classes)
  reference = special.log_softmax(grouped, axis=-1)
  expected = np.take_along_axis(reference, values[..., None], -1)[..., 0]
  onehot = np.arange(num_classes) == values[..., None]
  expected_grad = (weights[..., None] * (onehot - np.exp(reference))).reshape(logits.shape)
  with backends.compiling_for(platform):
    out = categorical.log_probs(logits, jnp.asarray(values))
    grad = jax.grad(lambda x: jnp.sum(weights * categorical.log_probs(x, jnp.asarray(values))))(
        logits)
  tolerance = 1e-5 if dtype == jnp.float32 else 1e-2
  assert out.dtype == jnp.float32 and out.shape == (*shape, num_categoricals)
  assert grad.dtype == dtype
  np.testing.assert_allclose(out, expected, rtol=tolerance, atol=tolerance)
  np.testing.assert_allclose(np.asarray(grad, np.float64), expected_grad, atol=tolerance)


def test_log_probs_checks_the_shapes():
  with pytest.raises(ValueError, match=r"logits \(2, 10\) must be \(..., C\*K\)"):
    categorical.log_probs(jnp.zeros((2, 10)), jnp.zeros((2, 3), jnp.int32))
