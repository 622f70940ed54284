"""The DVQ-VAE (linen): encoder, quantizer bottleneck, decoder with a likelihood head."""

from dvq_jax.models.layers import UPSAMPLES
from dvq_jax.models.quantizer import QUANTIZERS
from dvq_jax.models.quantizer import Quantizer
from dvq_jax.models.quantizer import codes_by_codebook
from dvq_jax.models.vqvae import DTYPES
from dvq_jax.models.vqvae import VQVAE
from dvq_jax.models.vqvae import ModelOutput
from dvq_jax.models.vqvae import build_model
from dvq_jax.models.vqvae import codes_per_image

__all__ = [
    "DTYPES",
    "QUANTIZERS",
    "UPSAMPLES",
    "VQVAE",
    "ModelOutput",
    "Quantizer",
    "build_model",
    "codes_by_codebook",
    "codes_per_image",
]
