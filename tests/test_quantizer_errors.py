"""Every malformed input to the quantizers is a one-line ValueError naming the shapes or values."""

import re

import jax
import jax.numpy as jnp
import pytest

from dvq_jax import quantizers as q


def f32(*shape):
  return jnp.zeros(shape, jnp.float32)


def codes(*shape):
  return jnp.zeros(shape, jnp.int32)


# (call, exact text the message must contain)
BAD_INPUTS = {
    # vector_quantize: z (..., D), codebook (K, D)
    "vq z rank 0": (lambda: q.vector_quantize(f32(), f32(4, 2)),
                    "z must have rank >= 1 (..., D), got shape ()"),
    "vq codebook rank 3": (lambda: q.vector_quantize(f32(5, 2), f32(1, 4, 2)),
                           "codebook must have rank 2 (K, D), got shape (1, 4, 2)"),
    "vq K=0": (lambda: q.vector_quantize(f32(5, 2), f32(0, 2)),
               "codebook size K must be >= 1, got codebook shape (0, 2)"),
    "vq D mismatch": (lambda: q.vector_quantize(f32(5, 3), f32(4, 2)),
                      "z feature size 3 (shape (5, 3)) != codebook dim D = 2"),
    "vq dtype": (lambda: q.vector_quantize(f32(5, 2).astype(jnp.bfloat16), f32(4, 2)),
                 "z dtype bfloat16 != codebook dtype float32"),
    # depthwise_quantize: z (..., L*D), codebooks (L, K, D)
    "dvq z rank 0": (lambda: q.depthwise_quantize(f32(), f32(2, 4, 3)),
                     "z must have rank >= 1 (..., L*D), got shape ()"),
    "dvq codebooks rank 2": (lambda: q.depthwise_quantize(f32(5, 6), f32(4, 6)),
                             "codebooks must have rank 3 (L, K, D), got shape (4, 6)"),
    "dvq L=0": (lambda: q.depthwise_quantize(f32(5, 6), f32(0, 4, 3)),
                "number of codebooks L must be >= 1, got codebooks shape (0, 4, 3)"),
    "dvq K=0": (lambda: q.depthwise_quantize(f32(5, 6), f32(2, 0, 3)),
                "codebook size K must be >= 1, got codebooks shape (2, 0, 3)"),
    "dvq features != L*D": (lambda: q.depthwise_quantize(f32(5, 7), f32(2, 4, 3)),
                            "z feature size 7 (shape (5, 7)) != L*D = 2*3 = 6"),
    "dvq dtype": (lambda: q.depthwise_quantize(f32(5, 6), f32(2, 4, 3).astype(jnp.bfloat16)),
                  "z dtype float32 != codebook dtype bfloat16"),
    "dvq slice count": (
        lambda: q.depthwise_quantize(f32(5, 7), f32(2, 4, 3), slice_sizes=(3, 3, 1)),
        "slice_sizes has 3 entries but codebooks shape (2, 4, 3) has L = 2"),
    "dvq slice sum": (
        lambda: q.depthwise_quantize(f32(5, 6), f32(2, 4, 3), slice_sizes=(3, 2)),
        "slice_sizes (3, 2) sum to 5 but z has feature size 6"),
    "dvq slice < 1": (
        lambda: q.depthwise_quantize(f32(5, 3), f32(2, 4, 3), slice_sizes=(3, 0)),
        "slice_sizes must all be >= 1, got (3, 0)"),
    "dvq slice max != D": (
        lambda: q.depthwise_quantize(f32(5, 6), f32(2, 4, 4), slice_sizes=(3, 3)),
        "codebook dim D = 4 (codebooks shape (2, 4, 4)) must equal max(slice_sizes) = 3"),
    # multi_codebook_quantize: z (..., D), codebooks (L, K, D)
    "mvq z rank 0": (lambda: q.multi_codebook_quantize(f32(), f32(2, 4, 3)),
                     "z must have rank >= 1 (..., D), got shape ()"),
    "mvq codebooks rank 2": (lambda: q.multi_codebook_quantize(f32(5, 3), f32(4, 3)),
                             "codebooks must have rank 3 (L, K, D), got shape (4, 3)"),
    "mvq L=0": (lambda: q.multi_codebook_quantize(f32(5, 3), f32(0, 4, 3)),
                "number of codebooks L must be >= 1, got codebooks shape (0, 4, 3)"),
    "mvq D mismatch": (lambda: q.multi_codebook_quantize(f32(5, 6), f32(2, 4, 3)),
                       "z feature size 6 (shape (5, 6)) != codebook dim D = 3"),
    "mvq dtype": (lambda: q.multi_codebook_quantize(f32(5, 3).astype(jnp.float16), f32(2, 4, 3)),
                  "z dtype float16 != codebook dtype float32"),
    # spatial_quantize: z (B, P, D), codebooks (L, K, D)
    "svq z rank 2": (lambda: q.spatial_quantize(f32(6, 2), f32(3, 4, 2)),
                     "z must have rank 3 (B, P, D) for spatial_quantize, got shape (6, 2)"),
    "svq z rank 4": (lambda: q.spatial_quantize(f32(2, 3, 2, 2), f32(3, 4, 2)),
                     "z must have rank 3 (B, P, D) for spatial_quantize, got shape (2, 3, 2, 2)"),
    "svq codebooks rank 2": (lambda: q.spatial_quantize(f32(2, 6, 2), f32(4, 2)),
                             "codebooks must have rank 3 (L, K, D), got shape (4, 2)"),
    "svq K=0": (lambda: q.spatial_quantize(f32(2, 6, 2), f32(3, 0, 2)),
                "codebook size K must be >= 1, got codebooks shape (3, 0, 2)"),
    "svq P % L": (lambda: q.spatial_quantize(f32(2, 7, 2), f32(3, 4, 2)),
                  "number of positions P = 7 (z shape (2, 7, 2)) is not divisible by L = 3"),
    "svq D mismatch": (lambda: q.spatial_quantize(f32(2, 6, 3), f32(3, 4, 2)),
                       "z feature size 3 (shape (2, 6, 3)) != codebook dim D = 2"),
    "svq dtype": (lambda: q.spatial_quantize(f32(2, 6, 2), f32(3, 4, 2).astype(jnp.bfloat16)),
                  "z dtype float32 != codebook dtype bfloat16"),
    # beta < 0 (as the CLI rejects config.beta)
    "vq beta < 0": (lambda: q.vector_quantize(f32(5, 2), f32(4, 2), beta=-0.25),
                    "beta = -0.25; set it to a number >= 0"),
    "dvq beta < 0": (lambda: q.depthwise_quantize(f32(5, 6), f32(2, 4, 3), beta=-1.0),
                     "beta = -1.0; set it to a number >= 0"),
    "mvq beta nan": (lambda: q.multi_codebook_quantize(f32(5, 3), f32(2, 4, 3), beta=float("nan")),
                     "beta = nan; set it to a number >= 0"),
    "svq beta < 0": (lambda: q.spatial_quantize(f32(2, 6, 2), f32(3, 4, 2), beta=-1),
                     "beta = -1; set it to a number >= 0"),
    # lookups: codes -> vectors
    "vector_lookup float codes": (lambda: q.vector_lookup(f32(5), f32(4, 2)),
                                  "codes must be integers, got dtype float32"),
    "vector_lookup codebook rank 3": (lambda: q.vector_lookup(codes(5), f32(1, 4, 2)),
                                      "codebook must have rank 2 (K, D), got shape (1, 4, 2)"),
    "depthwise_lookup codes rank 0": (lambda: q.depthwise_lookup(codes(), f32(2, 4, 3)),
                                      "codes must have rank >= 1 (..., L), got shape ()"),
    "depthwise_lookup codes L": (lambda: q.depthwise_lookup(codes(5, 3), f32(2, 4, 3)),
                                 "codes last axis 3 (shape (5, 3)) != L = 2"),
    "depthwise_lookup codebooks rank 2": (lambda: q.depthwise_lookup(codes(5, 2), f32(4, 3)),
                                          "codebooks must have rank 3 (L, K, D), got shape (4, 3)"),
    "depthwise_lookup slice count": (
        lambda: q.depthwise_lookup(codes(5, 2), f32(2, 4, 3), slice_sizes=(3,)),
        "slice_sizes has 1 entries but codebooks shape (2, 4, 3) has L = 2"),
    "depthwise_lookup slice max != D": (
        lambda: q.depthwise_lookup(codes(5, 2), f32(2, 4, 3), slice_sizes=(2, 2)),
        "codebook dim D = 3 (codebooks shape (2, 4, 3)) must equal max(slice_sizes) = 2"),
    "multi_codebook_lookup codes L": (lambda: q.multi_codebook_lookup(codes(5, 1), f32(2, 4, 3)),
                                      "codes last axis 1 (shape (5, 1)) != L = 2"),
    "spatial_lookup codes rank 1": (lambda: q.spatial_lookup(codes(6), f32(3, 4, 2)),
                                    "codes must have rank 2 (B, P), got shape (6,)"),
    "spatial_lookup codes rank 3": (lambda: q.spatial_lookup(codes(2, 6, 1), f32(3, 4, 2)),
                                    "codes must have rank 2 (B, P), got shape (2, 6, 1)"),
    "spatial_lookup P % L": (lambda: q.spatial_lookup(codes(2, 7), f32(3, 4, 2)),
                             "number of positions P = 7 is not divisible by L = 3"),
    # init_codebooks
    "init unknown scheme": (
        lambda: q.init_codebooks(jax.random.key(0), 2, 4, 3, scheme="xavier"),
        "unknown codebook init scheme 'xavier'; choose one of"
        " ('truncated_normal', 'normal', 'uniform', 'uniform_unit_variance')"),
    "init L=0": (lambda: q.init_codebooks(jax.random.key(0), 0, 4, 3),
                 "num_codebooks must be >= 1, got 0"),
    "init K=0": (lambda: q.init_codebooks(jax.random.key(0), 2, 0, 3),
                 "codebook_size must be >= 1, got 0"),
    "init D=0": (lambda: q.init_codebooks(jax.random.key(0), 2, 4, 0), "dim must be >= 1, got 0"),
    # nearest_codes: x (N, D), codebook (K, D)
    "nearest_codes x rank 3": (lambda: q.nearest_codes(f32(2, 5, 3), f32(4, 3)), "(2, 5, 3)"),
    "nearest_codes codebook rank 3": (lambda: q.nearest_codes(f32(5, 3), f32(1, 4, 3)),
                                      "(1, 4, 3)"),
    "nearest_codes D mismatch": (lambda: q.nearest_codes(f32(5, 3), f32(4, 2)), "(4, 2)"),
}


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_bad_input_raises_a_value_error_that_names_it(name):
  call, message = BAD_INPUTS[name]
  with pytest.raises(ValueError, match=re.escape(message)) as error:
    call()
  assert "\n" not in str(error.value)


def test_errors_are_raised_while_tracing_under_jit():
  with pytest.raises(ValueError, match=re.escape("!= L*D = 2*3 = 6")):
    jax.jit(q.depthwise_quantize).lower(
        jax.ShapeDtypeStruct((5, 7), jnp.float32), jax.ShapeDtypeStruct((2, 4, 3), jnp.float32))
