"""`depthwise`: any quantizer family in its depthwise form, one instance per feature slice.

Depthwise quantization (Fostiropoulos 2020, "Depthwise Discrete Representation Learning")
splits the feature axis of z `(..., L*D)` into L slices of D features and quantizes slice l with
its own quantizer l. `depthwise` builds that form of any function of this package that maps
`(..., D)` vectors to a QuantizerOutput: the L instances run under one `jax.vmap`, their
per-slice parameters (codebooks, bases) stacked on a leading L axis.
"""

from collections.abc import Callable

import jax
import jax.numpy as jnp

from dvq_jax.quantizers import _checks
from dvq_jax.quantizers._quantize import QuantizerOutput


def depthwise(quantize_fn: Callable[..., QuantizerOutput], num_slices: int
              ) -> Callable[..., QuantizerOutput]:
  """The depthwise form of `quantize_fn`: slice l of z `(..., L*D)` quantized by instance l.

  The returned function takes `(z, *per_slice, key=None, **options)`: every positional
  argument after z has a leading axis of L (instance l gets entry l: its codebook, basis,
  ...), the keyword options are shared by all slices (a `mask` over the positions included),
  and a `key`, if given, is split into one key per slice.

  Losses are summed over the L slices (the convention of `depthwise_quantize`, which is
  `depthwise(vector_quantize, L)` computed in one search); codes gain a slice axis before
  the family's own code axes.

  Args:
    quantize_fn: a quantizer of `(..., D)` vectors returning a QuantizerOutput, e.g.
      `vector_quantize`, `finite_scalar_quantize`, `binary_spherical_quantize`,
      `residual_finite_scalar_quantize`.
    num_slices: L >= 1.

  Returns:
    A function of z `(..., L*D)` returning a QuantizerOutput with quantized like z, codes
    `(..., L)` (`(..., L, M)` for residual families), perplexity and usage `(L,)` (`(L, M)`).

  >>> import jax.numpy as jnp
  >>> from dvq_jax.quantizers import vector_quantize
  >>> codebooks = jnp.array([[[0.], [1.]], [[0.], [1.]]])  # L=2 codebooks, K=2, D=1
  >>> out = depthwise(vector_quantize, 2)(jnp.array([[0.9, 0.2]]), codebooks)
  >>> out.codes.tolist(), out.quantized.tolist()
  ([[1, 0]], [[1.0, 0.0]])
  """
  if not isinstance(num_slices, int) or num_slices < 1:
    raise ValueError(f"num_slices = {num_slices!r}; set it to an integer >= 1")

  def quantize(z: jax.Array, *per_slice: jax.Array, key: jax.Array | None = None,
               **options) -> QuantizerOutput:
    _checks.check_min_rank(z, 1, "(..., L*D)")
    if z.shape[-1] % num_slices:
      raise ValueError(f"z feature size {z.shape[-1]} (shape {z.shape}) is not divisible by"
                       f" L = {num_slices} slices; make it L*D")
    for i, param in enumerate(per_slice):
      if param.ndim < 1 or param.shape[0] != num_slices:
        raise ValueError(f"per-slice argument {i} has shape {param.shape}; it needs a leading"
                         f" axis of L = {num_slices}, one entry per slice")
    slices = z.reshape(*z.shape[:-1], num_slices, z.shape[-1] // num_slices)
    keys = None if key is None else jax.random.split(key, num_slices)

    def one(x, params, k):
      return quantize_fn(x, *params, **options) if k is None else quantize_fn(
          x, *params, key=k, **options)

    out = jax.vmap(one, in_axes=(-2, 0, None if keys is None else 0))(slices, per_slice, keys)
    batch_rank = z.ndim - 1
    stats = lambda s: s.reshape(num_slices) if s.shape[1:] == (1,) else s
    return QuantizerOutput(
        quantized=jnp.moveaxis(out.quantized, 0, -2).reshape(z.shape),
        codes=jnp.moveaxis(out.codes, 0, batch_rank),
        loss=jnp.sum(out.loss), codebook_loss=jnp.sum(out.codebook_loss),
        commitment_loss=jnp.sum(out.commitment_loss),
        perplexity=stats(out.perplexity), usage=stats(out.usage))

  return quantize
