"""SimVQ (Zhu et al. 2024, "Addressing Representation Collapse in Vector Quantized Models with
One Linear Layer"): the codebook as a frozen random basis times a learned linear map.

Plain VQ updates only the codes that are chosen, so unchosen codes stay behind and collapse
sets in. SimVQ reparameterizes the codebook as `codebook = basis @ W`: the `(K, D)` basis is
drawn once and frozen, the `(D, D)` map W is learned, and every gradient step through W moves
the whole codebook. The search and the losses are VQ's over the reparameterized codebook.
"""

import jax

from dvq_jax.quantizers._quantize import QuantizerOutput
from dvq_jax.quantizers._quantize import vector_quantize


def simvq_codebook(basis: jax.Array, projection: jax.Array) -> jax.Array:
  """`sg(basis) @ projection`: `(..., K, D)` x `(..., D, D)` -> `(..., K, D)` codebook(s).

  The basis gets no gradient (it is frozen); the projection W gets all of it.

  >>> import jax.numpy as jnp
  >>> simvq_codebook(jnp.eye(2), 2.0 * jnp.eye(2)).tolist()
  [[2.0, 0.0], [0.0, 2.0]]
  """
  if basis.ndim < 2 or projection.shape != (*basis.shape[:-2], basis.shape[-1], basis.shape[-1]):
    raise ValueError(f"simvq needs basis (..., K, D) and projection (..., D, D), got shapes"
                     f" {basis.shape} and {projection.shape}")
  return jax.lax.stop_gradient(basis) @ projection


def simvq_quantize(
    z: jax.Array,
    basis: jax.Array,
    projection: jax.Array,
    *,
    beta: float = 0.25,
    cosine: bool = False,
    gradient_estimator: str = "straight_through",
    mask: jax.Array | None = None,
) -> QuantizerOutput:
  """SimVQ: `vector_quantize(z, sg(basis) @ projection, ...)`.

  The codebook loss trains the projection (and through it every code); `depthwise(
  simvq_quantize, L)(z, bases, projections)` is its DVQ form, one basis and map a slice.

  Args:
    z: `(..., D)` vectors.
    basis: `(K, D)` frozen random codebook basis, same dtype as z.
    projection: `(D, D)` learned linear map W, same dtype as z.
    beta, cosine, gradient_estimator, mask: as for `vector_quantize`.

  Returns:
    `vector_quantize`'s QuantizerOutput over the codebook basis @ W.

  >>> import jax.numpy as jnp
  >>> basis = jnp.array([[0., 0.], [1., 1.]])
  >>> simvq_quantize(jnp.array([[1.8, 2.1]]), basis, 2.0 * jnp.eye(2)).codes.tolist()
  [1]
  """
  return vector_quantize(z, simvq_codebook(basis, projection), beta=beta, cosine=cosine,
                         gradient_estimator=gradient_estimator, mask=mask)
