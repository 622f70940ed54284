"""The sign-code families' training step in memory O(N + K): lfq, bsq and residual lfq compiled
at two batch sizes, from the compiled program's memory analysis (no run, no timing)."""

import jax
import jax.numpy as jnp
import pytest

from dvq_jax import quantizers as q

_BITS = 12  # K = 2^12 codes: one row of an (N, K) float32 soft assignment is 16 KiB
# name: (quantize function, stages)
_FAMILIES = {
    "lfq": (q.lookup_free_quantize, 1),
    "bsq": (q.binary_spherical_quantize, 1),
    "rlfq": (lambda z: q.residual_lookup_free_quantize(z, 2), 2),
}


def _gradient_temp_bytes(quantize, num: int) -> int:
  """Temporary bytes of the compiled gradient of a train-step-like objective at N = `num`."""
  def objective(z):
    out = quantize(z)
    return jnp.sum(out.quantized) + out.loss, out  # the outputs kept, as a train step keeps them

  z = jax.ShapeDtypeStruct((num, _BITS), jnp.float32)
  grad = jax.jit(jax.grad(objective, has_aux=True))
  return grad.lower(z).compile().memory_analysis().temp_size_in_bytes


@pytest.mark.parametrize("name", sorted(_FAMILIES))
def test_gradient_memory_grows_by_a_few_copies_of_z_a_row_not_by_k(name):
  quantize, stages = _FAMILIES[name]
  small, large = 8192, 32768
  temp_small = _gradient_temp_bytes(quantize, small)
  temp_large = _gradient_temp_bytes(quantize, large)
  per_row = (temp_large - temp_small) / (large - small)
  row_of_z, row_of_soft_assignment = 4 * _BITS, 4 * 2**_BITS
  # O(N): a few (N, D) arrays a stage (lfq 1, bsq ~3.5, rlfq ~2 a stage), 1/16 of one row of
  # the soft assignment at most. Entropies whose (N, D) intermediates are kept for the backward
  # pass instead of recomputed block by block give 7 (lfq) to 17 (bsq) copies a stage.
  assert per_row <= 5 * stages * row_of_z < row_of_soft_assignment / 16, (temp_small, temp_large)
  # O(K): what does not grow with N is a few row blocks of (rows, 2^D) probabilities, 4 MiB each.
  fixed = temp_small - per_row * small
  assert 0 <= fixed <= 4 * (4 << 20), (temp_small, temp_large)
