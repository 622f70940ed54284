"""The static-prior study (paper Sec. 4.1): codebooks trained alone on Gaussian blobs.

`run.run(config, workdir)` runs it end to end; `blobs.make_blobs` draws the data;
`study.simulate` trains and evaluates all repetitions of one setting as one vmapped program.
"""

from dvq_jax.static_prior.blobs import Blobs
from dvq_jax.static_prior.blobs import make_blobs
from dvq_jax.static_prior.study import Outcome
from dvq_jax.static_prior.study import Recipe
from dvq_jax.static_prior.study import Shape
from dvq_jax.static_prior.study import quantization_mse
from dvq_jax.static_prior.study import simulate

__all__ = ["Blobs", "Outcome", "Recipe", "Shape", "make_blobs", "quantization_mse", "simulate"]
