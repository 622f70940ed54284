"""Stochastic codes: sampling the code from softmax(-||z - e||^2 / temperature) (Gumbel-max).

Instead of the nearest code, every vector draws its code from the Boltzmann distribution over
the codebook, p(k | z) proportional to exp(-||z - e_k||^2 / temperature) -- the soft assignment
behind Gumbel-softmax VQ (Jang et al. 2017; the sampling of dVAE, Ramesh et al. 2021) and the
stochastic quantization of SQ-VAE (Takida et al. 2022). The draw is a Gumbel-max: the code is
argmax_k (-||z - e_k||^2 / temperature + g_k) with g_k standard Gumbel noise from a key. At
temperature 0 the code is the nearest one and nothing is random.

The (rows, K) scores are formed in row blocks, so memory grows with N + K, never N * K.
"""

import jax
import jax.numpy as jnp

from dvq_jax.quantizers import _checks
from dvq_jax.quantizers._nearest import nearest_codes
from dvq_jax.quantizers._quantize import QuantizerOutput
from dvq_jax.quantizers._quantize import _quantize_slices
from dvq_jax.quantizers._quantize import vector_quantize
from dvq_jax.quantizers._stats import num_positions
from dvq_jax.quantizers._stats import position_weights

RELAXATIONS = ("straight_through", "gumbel_softmax")
# Rows per block: about this many bytes of (rows, K) float32 scores, as in the nearest search.
_TILE_BYTES = 4 << 20


def _block_rows(num_rows: int, size: int) -> int:
  return max(1, min(num_rows, _TILE_BYTES // (4 * size)))


def _sampled(key: jax.Array, x: jax.Array, codebook: jax.Array, temperature: float,
             soft: bool) -> tuple[jax.Array, jax.Array | None]:
  """Codes `(N,)` and, with `soft`, the relaxed vectors softmax(-d / t + g) @ e `(N, D)`.

  Block b of the rows draws its noise from `fold_in(key, b)`.
  """
  num_rows, dim = x.shape
  size = codebook.shape[0]
  rows = _block_rows(num_rows, size)
  num_blocks = -(-num_rows // rows)
  padded = jnp.pad(x, ((0, num_blocks * rows - num_rows), (0, 0))).reshape(num_blocks, rows, dim)

  @jax.checkpoint  # the backward pass recomputes a block's scores instead of storing them
  def block(args):
    b, xb = args
    e_sq = jnp.sum(jnp.square(codebook), axis=-1)
    distances = (jnp.sum(jnp.square(xb), -1, keepdims=True) - 2.0 * xb @ codebook.T + e_sq)
    noise = jax.random.gumbel(jax.random.fold_in(key, b), (rows, size), jnp.float32)
    logits = -distances / temperature + noise
    codes = jnp.argmax(jax.lax.stop_gradient(logits), axis=-1).astype(jnp.int32)
    return codes, (jax.nn.softmax(logits, axis=-1) @ codebook if soft else None)

  codes, relaxed = jax.lax.map(block, (jnp.arange(num_blocks), padded))
  codes = codes.reshape(-1)[:num_rows]
  return codes, (None if relaxed is None else relaxed.reshape(-1, dim)[:num_rows])


def stochastic_codes(key: jax.Array, x: jax.Array, codebook: jax.Array, *,
                     temperature: float) -> jax.Array:
  """`(N,)` int32 codes drawn from softmax(-||x_n - e_k||^2 / temperature) (Gumbel-max).

  Args:
    key: PRNG key; the codes are deterministic for a key.
    x: `(N, D)` vectors.
    codebook: `(K, D)`.
    temperature: >= 0; 0 gives the nearest codes (`nearest_codes`).

  >>> import jax, jax.numpy as jnp
  >>> codebook = jnp.array([[0.0], [1.0]])
  >>> stochastic_codes(jax.random.key(0), jnp.array([[0.9], [0.1]]), codebook,
  ...                  temperature=0.0).tolist()
  [1, 0]
  """
  _check_temperature(temperature)
  if temperature == 0:
    return nearest_codes(x, codebook)
  sg = jax.lax.stop_gradient
  return _sampled(key, sg(x).astype(jnp.float32), sg(codebook).astype(jnp.float32),
                  float(temperature), soft=False)[0]


def _check_temperature(temperature) -> None:
  if not isinstance(temperature, (int, float)) or not temperature >= 0:
    raise ValueError(f"temperature = {temperature!r}; set it to a Python number >= 0 (0 ="
                     " the nearest code, no sampling)")


def stochastic_quantize(
    z: jax.Array,
    codebook: jax.Array,
    *,
    key: jax.Array,
    temperature: float = 1.0,
    relaxation: str = "straight_through",
    beta: float = 0.25,
    mask: jax.Array | None = None,
) -> QuantizerOutput:
  """VQ with sampled codes: code ~ softmax(-||z - e||^2 / temperature), from `key`.

  The quantized value is always the sampled code vector e_code. Its gradient:

  * straight_through: with respect to z the identity (as `vector_quantize`);
  * gumbel_softmax: that of the relaxation softmax(-||z - e||^2 / temperature + g) @ codebook
    with the same Gumbel noise g (the straight-through Gumbel-softmax of Jang et al. 2017),
    reaching both z and the codebook.

  The losses are `vector_quantize`'s for the sampled codes. At temperature 0 this is exactly
  `vector_quantize` (nearest codes, no randomness). `depthwise(stochastic_quantize, L)(z,
  codebooks, key=key, temperature=...)` is its DVQ form (one key a slice).

  Args:
    z: `(..., D)` vectors.
    codebook: `(K, D)`, same dtype as z.
    key: PRNG key; the codes are deterministic for a key.
    temperature: >= 0 (a Python number).
    relaxation: "straight_through" or "gumbel_softmax".
    beta: weight of the commitment loss, >= 0.
    mask: optional bool `(...)`, as for `vector_quantize`.

  Returns:
    QuantizerOutput as `vector_quantize`'s: quantized `(..., D)`, codes `(...)`, perplexity
    and usage `(1,)`.

  >>> import jax, jax.numpy as jnp
  >>> codebook = jnp.array([[0.0], [1.0]])
  >>> out = stochastic_quantize(jnp.array([[0.9]]), codebook, key=jax.random.key(0),
  ...                           temperature=0.0)
  >>> out.codes.tolist(), out.quantized.tolist()
  ([1], [[1.0]])
  """
  _check_temperature(temperature)
  if relaxation not in RELAXATIONS:
    raise ValueError(f"relaxation = {relaxation!r} is unknown; use one of {RELAXATIONS}")
  if temperature == 0:
    return vector_quantize(z, codebook, beta=beta, mask=mask)
  _checks.check_beta(beta)
  _checks.check_codebook(codebook)
  _checks.check_min_rank(z, 1, "(..., D)")
  _checks.check_dtypes(z, codebook)
  _checks.check_feature_size(z, codebook.shape[1], "codebook dim D")
  sg = jax.lax.stop_gradient
  flat = z.reshape(-1, z.shape[-1]).astype(jnp.float32)
  codebook32 = codebook.astype(jnp.float32)
  soft = relaxation == "gumbel_softmax"
  codes, relaxed = _sampled(key, flat if soft else sg(flat), codebook32 if soft else sg(
      codebook32), float(temperature), soft)
  weights = position_weights(mask, z.shape[:-1])
  quantized, out = _quantize_slices(flat[:, None], codes[:, None], codebook32[None], beta,
                                    num_positions(weights, flat.shape[0]),
                                    weights=None if weights is None else weights[:, None])
  if soft:  # value e_code, gradient that of the relaxation
    quantized = sg(quantized[:, 0]) + relaxed - sg(relaxed)
  return out._replace(quantized=quantized.reshape(z.shape).astype(z.dtype),
                      codes=out.codes.reshape(z.shape[:-1]))
