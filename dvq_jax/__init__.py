"""dvq_jax: Depthwise Vector Quantization (Fostiropoulos) in JAX/Flax."""

__version__ = "0.1.0"
