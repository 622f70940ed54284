"""The DVQ-VAE (linen): encoder, quantizer bottleneck, decoder with a likelihood head."""

from dvq_jax.vqvae.layers import UPSAMPLES
from dvq_jax.vqvae.bottleneck import COSINE_QUANTIZERS
from dvq_jax.vqvae.bottleneck import QUANTIZERS
from dvq_jax.vqvae.bottleneck import Quantizer
from dvq_jax.vqvae.bottleneck import codes_by_codebook
from dvq_jax.vqvae.model import VQVAE
from dvq_jax.vqvae.model import ModelOutput
from dvq_jax.vqvae.model import build_model
from dvq_jax.vqvae.model_fields import DTYPES
from dvq_jax.vqvae.model_fields import code_alphabet_size
from dvq_jax.vqvae.model_fields import codes_per_image

__all__ = [
    "COSINE_QUANTIZERS",
    "DTYPES",
    "QUANTIZERS",
    "UPSAMPLES",
    "VQVAE",
    "ModelOutput",
    "Quantizer",
    "build_model",
    "code_alphabet_size",
    "codes_by_codebook",
    "codes_per_image",
]
