"""Shared inputs and runners of the quantizer tests (test_quantizers, test_quantizer_nonfinite,
test_toolbox_options)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from dvq_jax import quantizers as q

QUANTIZE = {
    "vector": q.vector_quantize,
    "depthwise": q.depthwise_quantize,
    "multi": q.multi_codebook_quantize,
    "spatial": q.spatial_quantize,
}


def make_inputs(case, data: str, seed: int = 0, dtype=jnp.float32):
  """z and codebooks for a case: "int" = small integers with duplicated codebook rows, so that
  exact distance ties are everywhere; "normal" = Gaussian."""
  kind, batch, num_codebooks, size, dim, slice_sizes = case
  rng = np.random.default_rng(seed)
  features = {"depthwise": sum(slice_sizes) if slice_sizes else num_codebooks * dim,
              "vector": dim, "multi": dim, "spatial": dim}[kind]
  if data == "int":
    z = rng.integers(-2, 3, batch + (features,))
    codebooks = rng.integers(-2, 3, (num_codebooks, size, dim))
    half = size // 2
    codebooks[:, size - half:] = codebooks[:, :half]  # exact duplicates: the first must win
  else:
    z = rng.normal(size=batch + (features,))
    codebooks = rng.normal(size=(num_codebooks, size, dim))
  if kind == "vector":
    codebooks = codebooks[0]
  return jnp.asarray(z, dtype), jnp.asarray(codebooks, dtype)


@functools.cache
def _quantizer(kind: str, slice_sizes, jit: bool):
  fn = QUANTIZE[kind]
  if slice_sizes:
    fn = functools.partial(fn, slice_sizes=slice_sizes)
  return jax.jit(fn) if jit else fn


def run(case, z, codebooks, *, beta: float = 0.25, jit: bool = True) -> q.QuantizerOutput:
  """The case's quantizer, jitted by default: one compile per shape instead of one per op."""
  return _quantizer(case[0], case[5], jit)(z, codebooks, beta=beta)
