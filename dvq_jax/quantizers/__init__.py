"""Pure functional vector quantizers: VQ, DVQ (depthwise), multi-codebook VQ and SVQ (spatial).

Plain functions of arrays -- no Flax -- that are safe under `jax.jit`, `jax.vmap` and `jax.grad`.
"""

from dvq_jax.quantizers._init import SCHEMES as INIT_SCHEMES
from dvq_jax.quantizers._init import init_codebooks
from dvq_jax.quantizers._lookup import depthwise_lookup
from dvq_jax.quantizers._lookup import multi_codebook_lookup
from dvq_jax.quantizers._lookup import spatial_lookup
from dvq_jax.quantizers._lookup import vector_lookup
from dvq_jax.quantizers._nearest import nearest_codes
from dvq_jax.quantizers._quantize import QuantizerOutput
from dvq_jax.quantizers._quantize import depthwise_quantize
from dvq_jax.quantizers._quantize import multi_codebook_quantize
from dvq_jax.quantizers._quantize import spatial_quantize
from dvq_jax.quantizers._quantize import vector_quantize

__all__ = [
    "INIT_SCHEMES",
    "QuantizerOutput",
    "depthwise_lookup",
    "depthwise_quantize",
    "init_codebooks",
    "multi_codebook_lookup",
    "multi_codebook_quantize",
    "nearest_codes",
    "spatial_lookup",
    "spatial_quantize",
    "vector_lookup",
    "vector_quantize",
]
