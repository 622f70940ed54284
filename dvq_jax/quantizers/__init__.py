"""Pure functional vector quantizers: VQ, DVQ (depthwise), multi-codebook VQ and SVQ (spatial);
the quantizer families RVQ (and depthwise RVQ, quantize dropout, shared codebooks), FSQ, LFQ,
BSQ, residual FSQ and LFQ, SimVQ and stochastic codes, any of them depthwise (`depthwise`);
and the codebook toolbox: EMA codebooks, k-means initialisation, dead-code restart, cosine
codes, the rotation trick, entropy penalties and position masks.

Plain functions of arrays -- no Flax -- that are safe under `jax.jit`, `jax.vmap` and `jax.grad`.
"""

from dvq_jax.quantizers._bsq import binary_spherical_quantize
from dvq_jax.quantizers._bsq import bsq_lookup
from dvq_jax.quantizers._cosine import cosine_codes
from dvq_jax.quantizers._cosine import l2_normalize
from dvq_jax.quantizers._depthwise import depthwise
from dvq_jax.quantizers._ema import EmaCodebooks
from dvq_jax.quantizers._ema import EmaState
from dvq_jax.quantizers._ema import ema_codebooks
from dvq_jax.quantizers._entropy import codebook_entropy_penalty
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
from dvq_jax.quantizers._residual_scalar import residual_finite_scalar_quantize
from dvq_jax.quantizers._residual_scalar import residual_lookup_free_quantize
from dvq_jax.quantizers._residual_scalar import rfsq_lookup
from dvq_jax.quantizers._residual_scalar import rlfq_lookup
from dvq_jax.quantizers._restart import RestartOutput
from dvq_jax.quantizers._restart import restart_dead_codes
from dvq_jax.quantizers._simvq import simvq_codebook
from dvq_jax.quantizers._simvq import simvq_quantize
from dvq_jax.quantizers._stochastic import RELAXATIONS
from dvq_jax.quantizers._stochastic import stochastic_codes
from dvq_jax.quantizers._stochastic import stochastic_quantize

__all__ = [
    "EmaCodebooks",
    "EmaState",
    "GRADIENT_ESTIMATORS",
    "INIT_SCHEMES",
    "QuantizerOutput",
    "RELAXATIONS",
    "RestartOutput",
    "binary_spherical_quantize",
    "bsq_lookup",
    "codebook_entropy_penalty",
    "cosine_codes",
    "depthwise",
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
    "residual_finite_scalar_quantize",
    "residual_lookup_free_quantize",
    "residual_quantize",
    "restart_dead_codes",
    "rfsq_lookup",
    "rlfq_lookup",
    "rotation_trick",
    "search_form",
    "simvq_codebook",
    "simvq_quantize",
    "spatial_lookup",
    "spatial_quantize",
    "stochastic_codes",
    "stochastic_quantize",
    "straight_through",
    "vector_lookup",
    "vector_quantize",
]
