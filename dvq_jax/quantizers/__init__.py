"""Pure functional vector quantizers: VQ, DVQ (depthwise), multi-codebook VQ and SVQ (spatial);
the quantizer families RVQ (and depthwise RVQ), FSQ and LFQ; and the codebook toolbox: EMA
codebooks, k-means initialisation, dead-code restart, cosine codes and the rotation trick.

Plain functions of arrays -- no Flax -- that are safe under `jax.jit`, `jax.vmap` and `jax.grad`.
"""

from dvq_jax.quantizers._cosine import cosine_codes
from dvq_jax.quantizers._cosine import l2_normalize
from dvq_jax.quantizers._ema import EmaCodebooks
from dvq_jax.quantizers._ema import EmaState
from dvq_jax.quantizers._ema import ema_codebooks
from dvq_jax.quantizers._estimators import GRADIENT_ESTIMATORS
from dvq_jax.quantizers._estimators import rotation_trick
from dvq_jax.quantizers._estimators import straight_through
from dvq_jax.quantizers._fsq import finite_scalar_quantize
from dvq_jax.quantizers._fsq import fsq_codes
from dvq_jax.quantizers._fsq import fsq_lookup
from dvq_jax.quantizers._init import SCHEMES as INIT_SCHEMES
from dvq_jax.quantizers._init import init_codebooks
from dvq_jax.quantizers._kmeans import kmeans_init
from dvq_jax.quantizers._kmeans import kmeans_step
from dvq_jax.quantizers._lfq import lfq_lookup
from dvq_jax.quantizers._lfq import lookup_free_quantize
from dvq_jax.quantizers._lookup import depthwise_lookup
from dvq_jax.quantizers._lookup import multi_codebook_lookup
from dvq_jax.quantizers._lookup import spatial_lookup
from dvq_jax.quantizers._lookup import vector_lookup
from dvq_jax.quantizers._nearest import nearest_codes
from dvq_jax.quantizers._nearest import search_form
from dvq_jax.quantizers._quantize import QuantizerOutput
from dvq_jax.quantizers._quantize import depthwise_quantize
from dvq_jax.quantizers._quantize import multi_codebook_quantize
from dvq_jax.quantizers._quantize import spatial_quantize
from dvq_jax.quantizers._quantize import vector_quantize
from dvq_jax.quantizers._residual import depthwise_residual_quantize
from dvq_jax.quantizers._residual import residual_quantize
from dvq_jax.quantizers._restart import RestartOutput
from dvq_jax.quantizers._restart import restart_dead_codes

__all__ = [
    "EmaCodebooks",
    "EmaState",
    "GRADIENT_ESTIMATORS",
    "INIT_SCHEMES",
    "QuantizerOutput",
    "RestartOutput",
    "cosine_codes",
    "depthwise_lookup",
    "depthwise_quantize",
    "depthwise_residual_quantize",
    "ema_codebooks",
    "finite_scalar_quantize",
    "fsq_codes",
    "fsq_lookup",
    "init_codebooks",
    "kmeans_init",
    "kmeans_step",
    "l2_normalize",
    "lfq_lookup",
    "lookup_free_quantize",
    "multi_codebook_lookup",
    "multi_codebook_quantize",
    "nearest_codes",
    "residual_quantize",
    "restart_dead_codes",
    "rotation_trick",
    "search_form",
    "spatial_lookup",
    "spatial_quantize",
    "straight_through",
    "vector_lookup",
    "vector_quantize",
]
