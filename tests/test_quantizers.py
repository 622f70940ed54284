"""The pure quantizers against a float64 numpy brute force: codes, values, Eq. 4 losses and gradients."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dvq_jax import quantizers as q
from tests.conftest import brute_force_codes
from tests.conftest import reference_quantize
from tests.conftest import sq_distances
from tests.quantizer_fixtures import make_inputs
from tests.quantizer_fixtures import run

LOOKUP = {
    "vector": q.vector_lookup,
    "depthwise": q.depthwise_lookup,
    "multi": q.multi_codebook_lookup,
    "spatial": q.spatial_lookup,
}
FLOAT_FIELDS = ("codebook_loss", "commitment_loss", "loss", "perplexity", "usage")

# (kind, batch shape -- (B, P) for spatial --, L, K, D, slice_sizes)
CASES = [
    ("vector", (), 1, 3, 2, None),
    ("vector", (2, 3, 4), 1, 16, 2, None),
    ("vector", (33,), 1, 1, 4, None),
    ("depthwise", (), 2, 4, 3, None),
    ("depthwise", (2, 5, 6), 4, 8, 1, None),
    ("depthwise", (3, 4), 2, 32, 3, None),
    ("depthwise", (4, 5), 3, 6, 3, (1, 3, 2)),
    ("depthwise", (17,), 2, 5, 4, (4, 1)),
    ("multi", (2, 3, 5), 3, 4, 2, None),
    ("spatial", (3, 8), 4, 7, 3, None),
    ("spatial", (1, 5), 1, 4, 2, None),
]
CASE_IDS = [f"{c[0]}-{c[1]}-L{c[2]}K{c[3]}D{c[4]}" + (f"-s{c[5]}" if c[5] else "") for c in CASES]
# One case per quantizer (and unequal DVQ slices) for the costlier checks.
ONE_EACH = [CASES[1], CASES[5], CASES[6], CASES[8], CASES[9]]
ONE_EACH_IDS = [CASE_IDS[CASES.index(c)] for c in ONE_EACH]


def assert_outputs_close(out: q.QuantizerOutput, ref, rtol: float = 1e-5) -> None:
  """Codes equal, values close; `ref` is a QuantizerOutput or a `reference_quantize` dict."""
  ref = ref._asdict() if isinstance(ref, q.QuantizerOutput) else ref
  np.testing.assert_array_equal(out.codes, ref["codes"])
  for name in ("quantized",) + FLOAT_FIELDS:
    np.testing.assert_allclose(getattr(out, name), ref[name], rtol=rtol, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("data", ["int", "normal"])
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_outputs_match_numpy_brute_force(case, data):
  z, codebooks = make_inputs(case, data)
  out = run(case, z, codebooks, beta=0.3)
  ref = reference_quantize(case[0], z, codebooks, slice_sizes=case[5], beta=0.3)
  num_codebooks = case[2]
  assert out.codes.dtype == jnp.int32
  assert out.codes.shape == ref["codes"].shape
  assert out.quantized.shape == ref["quantized"].shape
  assert out.perplexity.shape == out.usage.shape == (num_codebooks,)
  assert out.loss.shape == () and out.loss.dtype == jnp.float32
  assert_outputs_close(out, ref)
  lookup_kwargs = {"slice_sizes": case[5]} if case[5] else {}
  np.testing.assert_array_equal(LOOKUP[case[0]](out.codes, codebooks, **lookup_kwargs),
                                ref["quantized"])


def test_ties_go_to_the_lowest_index():
  """Codes 0 and 1 sit at 3 and 1, codes 2 and 4 at 0, code 3 at 1 again: 0.5 is equally near
  codes 1-4, 2 equally near codes 0, 1 and 3. (The "int" cases above hold many more ties.)"""
  codebook = jnp.array([[3.0], [1.0], [0.0], [1.0], [0.0]])
  z = jnp.array([[0.5], [1.0], [0.0], [2.0], [3.0], [1.5], [-1.0]])
  np.testing.assert_array_equal(q.vector_quantize(z, codebook).codes, [1, 1, 2, 0, 0, 1, 2])
  codebooks = jnp.stack([codebook, codebook[::-1]])  # reversed: ties fall on other indices
  codes = q.depthwise_quantize(jnp.concatenate([z, z], axis=-1), codebooks).codes
  np.testing.assert_array_equal(codes, [[1, 0], [1, 1], [2, 0], [0, 1], [0, 4], [1, 1], [2, 0]])


@pytest.mark.parametrize("case", ONE_EACH, ids=ONE_EACH_IDS)
def test_straight_through_gradient_is_identity(case):
  z, codebooks = make_inputs(case, "normal")
  quantized, vjp = jax.vjp(lambda x: run(case, x, codebooks).quantized, z)
  cotangent = jnp.asarray(np.random.default_rng(1).normal(size=quantized.shape), jnp.float32)
  (grad_z,) = vjp(cotangent)
  if case[0] == "multi":  # L copies of z are concatenated: their cotangents add up
    cotangent = cotangent.reshape(z.shape[:-1] + (case[2], -1)).sum(axis=-2)
  np.testing.assert_allclose(grad_z, cotangent, rtol=1e-6)


@pytest.mark.parametrize("data", ["int", "normal"])
@pytest.mark.parametrize("case", ONE_EACH, ids=ONE_EACH_IDS)
def test_loss_gradients_follow_eq4(case, data):
  """codebook_loss moves only the codebooks, commitment_loss only z, both by the analytic gradient."""
  z, codebooks = make_inputs(case, data)
  ref = reference_quantize(case[0], z, codebooks, slice_sizes=case[5])

  @jax.jit
  def grads(x, e):
    return {field: jax.grad(lambda x, e: getattr(run(case, x, e, beta=0.3), field),
                            argnums=(0, 1))(x, e)
            for field in ("codebook_loss", "commitment_loss", "loss")}

  got = grads(z, codebooks)
  close = functools.partial(np.testing.assert_allclose, rtol=1e-5, atol=1e-6)
  grad_z, grad_e = got["codebook_loss"]
  np.testing.assert_array_equal(grad_z, 0.0)
  close(grad_e, ref["grad_codebooks"])
  grad_z, grad_e = got["commitment_loss"]
  close(grad_z, ref["grad_z"])
  np.testing.assert_array_equal(grad_e, 0.0)
  grad_z, grad_e = got["loss"]
  close(grad_z, 0.3 * ref["grad_z"])
  close(grad_e, ref["grad_codebooks"])


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("case", ONE_EACH, ids=ONE_EACH_IDS)
def test_quantized_value_is_exactly_the_chosen_codebook_vector(case, dtype):
  """The straight-through output must carry e itself, not z + (e - z) rounded twice."""
  z, codebooks = make_inputs(case, "normal", dtype=dtype)
  z = z * 3  # values far from the codes make z + (e - z) round away from e
  out = run(case, z, codebooks)
  lookup_kwargs = {"slice_sizes": case[5]} if case[5] else {}
  assert out.quantized.dtype == dtype
  np.testing.assert_array_equal(out.quantized.astype(jnp.float32),
                                LOOKUP[case[0]](out.codes, codebooks, **lookup_kwargs)
                                .astype(jnp.float32))


def test_depthwise_with_one_codebook_equals_vector_quantize():
  z, codebooks = make_inputs(("depthwise", (6, 5), 1, 7, 3, None), "normal")
  dvq = q.depthwise_quantize(z, codebooks)
  vq = q.vector_quantize(z, codebooks[0])
  np.testing.assert_array_equal(dvq.codes[..., 0], vq.codes)
  assert_outputs_close(dvq._replace(codes=dvq.codes[..., 0]), vq, rtol=0)


@pytest.mark.parametrize("slice_sizes", [None, (1, 3, 2)])
def test_depthwise_equals_a_loop_of_vector_quantize(slice_sizes):
  """Unequal slices use the first D_l features of codebook l; the padding (random here) must be
  ignored by the distances and receive no gradient."""
  case = ("depthwise", (4, 5), 3, 6, 3 if slice_sizes else 2, slice_sizes)
  z, codebooks = make_inputs(case, "normal")
  sizes = slice_sizes or (2, 2, 2)
  starts = np.cumsum((0,) + sizes)

  def loop(x, e):
    outs = [q.vector_quantize(x[..., s:s + n], e[i, :, :n])
            for i, (s, n) in enumerate(zip(starts, sizes))]
    return q.QuantizerOutput(
        quantized=jnp.concatenate([o.quantized for o in outs], axis=-1),
        codes=jnp.stack([o.codes for o in outs], axis=-1),
        loss=sum(o.loss for o in outs),
        codebook_loss=sum(o.codebook_loss for o in outs),
        commitment_loss=sum(o.commitment_loss for o in outs),
        perplexity=jnp.concatenate([o.perplexity for o in outs]),
        usage=jnp.concatenate([o.usage for o in outs]),
    )

  assert_outputs_close(run(case, z, codebooks), jax.jit(loop)(z, codebooks))
  grad = lambda f: jax.jit(jax.grad(lambda x, e: f(x, e).loss, argnums=(0, 1)))(z, codebooks)
  grad_z, grad_e = grad(lambda x, e: run(case, x, e))
  loop_z, loop_e = grad(loop)
  np.testing.assert_allclose(grad_z, loop_z, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(grad_e, loop_e, rtol=1e-5, atol=1e-7)
  padding = np.arange(codebooks.shape[-1]) >= np.array(sizes)[:, None]  # (L, D)
  assert padding.any() == bool(slice_sizes)
  np.testing.assert_array_equal(
      np.asarray(grad_e)[np.broadcast_to(padding[:, None, :], grad_e.shape)], 0.0)


@pytest.mark.parametrize("case", ONE_EACH[2:4], ids=ONE_EACH_IDS[2:4])
def test_jit_matches_eager(case):
  """The other tests run jitted (with beta traced); this one runs the same inputs op by op."""
  z, codebooks = make_inputs(case, "normal")
  assert_outputs_close(run(case, z, codebooks, beta=0.5),
                       run(case, z, codebooks, beta=0.5, jit=False))


@pytest.mark.parametrize("case", ONE_EACH, ids=ONE_EACH_IDS)
def test_vmap_over_an_extra_batch_axis_matches_a_loop(case):
  zs = jnp.stack([make_inputs(case, "normal", seed=s)[0] for s in range(3)])
  codebooks = make_inputs(case, "normal")[1]
  batched = jax.jit(jax.vmap(lambda x: run(case, x, codebooks)))(zs)
  for i in range(3):
    assert_outputs_close(jax.tree.map(lambda a, i=i: a[i], batched), run(case, zs[i], codebooks))


def test_per_example_gradients_under_vmap_match_a_loop():
  case = ONE_EACH[2]  # unequal DVQ slices
  zs = jnp.stack([make_inputs(case, "normal", seed=s)[0] for s in range(3)])
  codebooks = make_inputs(case, "normal")[1]
  grad = jax.grad(lambda x, e: run(case, x, e).loss, argnums=(0, 1))
  batched = jax.jit(jax.vmap(grad, in_axes=(0, None)))(zs, codebooks)
  for i in range(3):
    for got, want in zip(batched, jax.jit(grad)(zs[i], codebooks)):
      np.testing.assert_allclose(got[i], want, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("case", ONE_EACH[1:], ids=ONE_EACH_IDS[1:])
def test_bfloat16_inputs_use_float32_distances(case):
  """Codes equal the brute force on the bf16-rounded values; distances formed in bfloat16 (~3
  significant digits) would pick other codes."""
  kind, batch, num_codebooks, size, dim, slice_sizes = case
  case = (kind, (64,) + batch[1:], num_codebooks, 64, dim, slice_sizes)
  z, codebooks = make_inputs(case, "normal", dtype=jnp.bfloat16)
  out = run(case, z, codebooks)
  assert out.quantized.dtype == jnp.bfloat16 and out.loss.dtype == jnp.float32
  z32, codebooks32 = z.astype(jnp.float32), codebooks.astype(jnp.float32)
  ref = reference_quantize(kind, z32, codebooks32, slice_sizes=slice_sizes)
  np.testing.assert_array_equal(out.codes, ref["codes"])
  np.testing.assert_allclose(out.perplexity, ref["perplexity"], rtol=1e-5)
  np.testing.assert_array_equal(out.usage, ref["usage"])
  # The residual z - e is rounded to bfloat16 before it is squared in float32.
  np.testing.assert_allclose(out.codebook_loss, ref["codebook_loss"], rtol=1e-3)


def test_spatial_losses_equal_vector_quantize_with_the_same_codebook_in_every_group():
  """One loss convention: a mean over positions. SVQ used to sum its L group means (L times
  VQ's loss, an effective beta L times larger)."""
  z, codebooks = make_inputs(("spatial", (3, 8), 4, 7, 3, None), "normal")
  same = jnp.broadcast_to(codebooks[:1], codebooks.shape)
  svq, vq = jax.jit(q.spatial_quantize)(z, same), jax.jit(q.vector_quantize)(z, same[0])
  np.testing.assert_array_equal(svq.codes, vq.codes)
  for name in ("loss", "codebook_loss", "commitment_loss"):
    np.testing.assert_allclose(getattr(svq, name), getattr(vq, name), rtol=1e-6, err_msg=name)
  grad = lambda f, e: jax.jit(jax.grad(lambda x, e: f(x, e).loss, argnums=(0, 1)))(z, e)
  svq_z, svq_e = grad(q.spatial_quantize, same)
  vq_z, vq_e = grad(q.vector_quantize, same[0])
  np.testing.assert_allclose(svq_z, vq_z, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(svq_e.sum(0), vq_e, rtol=1e-5, atol=1e-7)


def test_depthwise_reaches_k_to_the_l_points_a_single_codebook_cannot():
  """K=4, L=3: the 4^3 = 64 points of {0,1,2,3}^3 are all exact DVQ codewords; one codebook of
  K=4 vectors maps them to at most 4 distinct points, so its loss cannot be zero."""
  grid = np.stack(np.meshgrid(*[np.arange(4.0)] * 3, indexing="ij"), -1).reshape(64, 3)
  z = jnp.asarray(grid, jnp.float32)
  dvq = jax.jit(q.depthwise_quantize)(z, jnp.tile(jnp.arange(4.0)[None, :, None], (3, 1, 1)))
  np.testing.assert_array_equal(dvq.quantized, grid)
  assert float(dvq.loss) == 0.0
  assert len({tuple(c) for c in np.asarray(dvq.codes).tolist()}) == 64
  np.testing.assert_array_equal(dvq.usage, 1.0)
  np.testing.assert_allclose(dvq.perplexity, 4.0, rtol=1e-6)
  for seed in range(3):  # any 4 of the points as the codebook, e.g.
    codebook = z[np.random.default_rng(seed).choice(64, 4, replace=False)]
    vq = jax.jit(q.vector_quantize)(z, codebook)
    assert len(np.unique(np.asarray(vq.quantized), axis=0)) <= 4
    assert float(vq.commitment_loss) > 0.5


@pytest.mark.parametrize("data", ["int", "normal"])
def test_nearest_codes_over_many_row_blocks_matches_brute_force(data):
  """N=5000 rows x K=4096 codes (80 MiB of distances) is searched in row blocks."""
  rng = np.random.default_rng(0)
  if data == "int":  # exact in float32, with many exact ties
    x, e = rng.integers(-3, 4, (5000, 8)), rng.integers(-3, 4, (4096, 8))
  else:
    x, e = rng.normal(size=(5000, 8)), rng.normal(size=(4096, 8))
  codes = np.asarray(q.nearest_codes(jnp.asarray(x, jnp.float32), jnp.asarray(e, jnp.float32)))
  assert codes.dtype == np.int32 and codes.shape == (5000,)
  assert codes.min() >= 0 and codes.max() < 4096
  want = brute_force_codes(x, e)
  if data == "int":
    np.testing.assert_array_equal(codes, want)
  else:  # a differing code must be a float32 near-tie
    d = sq_distances(x, e)
    rows = np.arange(5000)
    assert np.mean(codes != want) < 1e-3
    np.testing.assert_allclose(d[rows, codes], d[rows, want], rtol=1e-5)


def test_large_codebooks_are_searched_in_chunks_with_ties_to_the_lowest_index():
  """K = 12,000 codes (3 chunks of 4,000): every codebook row appears 3 times, once per chunk,
  so each row's nearest code ties across chunks and must resolve to the first copy."""
  from dvq_jax.quantizers import _nearest  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  x, e = rng.integers(-4, 5, (600, 3)), rng.integers(-4, 5, (4000, 3))
  e = np.concatenate([e, e, e])
  assert _nearest._plan(600, 1, len(e), _nearest._FORMS[_nearest.search_form()])[2] < len(e)
  codes = np.asarray(jax.jit(q.nearest_codes)(jnp.asarray(x, jnp.float32),
                                              jnp.asarray(e, jnp.float32)))
  np.testing.assert_array_equal(codes, brute_force_codes(x, e))
  assert codes.max() < 4000


def test_depthwise_memory_is_far_below_n_times_k():
  """N = 2^20 vectors, L=8, K=65,536, D=4, compiled only (no compute). A full (N, K) float32
  distance matrix per codebook would be N*K*4 = 256 GiB (2 TiB for all L); the quantizer's temp
  memory must stay at a few z-sized buffers (z itself is N*L*D*4 = 128 MiB: the transposed slices,
  the chosen vectors, ...) plus at most one row block of distances. Measured: 0.16 GiB (0.41 GiB
  before the search read z in place), so 1 GiB
  (8 z-sized buffers, 1/256 of one N*K matrix) is the bound; an argmin over a full (N, K) tile
  shows up here as 2 TiB."""
  n, num_codebooks, size, dim = 1 << 20, 8, 1 << 16, 4
  z = jax.ShapeDtypeStruct((n, num_codebooks * dim), jnp.float32)
  codebooks = jax.ShapeDtypeStruct((num_codebooks, size, dim), jnp.float32)
  memory = jax.jit(q.depthwise_quantize).lower(z, codebooks).compile().memory_analysis()
  assert memory.temp_size_in_bytes < 1 << 30, memory
  # The training step differentiates it; its backward pass must not build N*K either (0.28 GiB).
  grad = jax.grad(lambda x, e: q.depthwise_quantize(x, e).loss, argnums=(0, 1))
  memory = jax.jit(grad).lower(z, codebooks).compile().memory_analysis()
  assert memory.temp_size_in_bytes < 1 << 30, memory


@pytest.mark.parametrize("scheme", q.INIT_SCHEMES)
def test_init_codebooks_shapes_and_statistics(scheme):
  key = jax.random.key(0)
  codebooks = q.init_codebooks(key, 4, 512, 16, scheme=scheme)
  assert codebooks.shape == (4, 512, 16) and codebooks.dtype == jnp.float32
  np.testing.assert_array_equal(codebooks, q.init_codebooks(key, 4, 512, 16, scheme=scheme))
  assert not np.array_equal(codebooks[0], codebooks[1])  # independent codebooks
  values = np.asarray(codebooks, np.float64).ravel()
  if scheme == "truncated_normal":  # std 0.1 cut at 2 std: the truncated std is 0.1 * 0.8796
    assert 0.19 < np.abs(values).max() <= 0.2
    np.testing.assert_allclose(values.std(), 0.1 * 0.87962566, rtol=0.02)
  elif scheme == "normal":
    assert np.abs(values).max() > 3.5
    np.testing.assert_allclose(values.std(), 1.0, rtol=0.02)
  elif scheme == "uniform_unit_variance":  # the paper's U[-sqrt 3, sqrt 3]: mean 0, std 1
    assert np.abs(values).max() <= np.sqrt(3)
    np.testing.assert_allclose(np.abs(values).max(), np.sqrt(3), rtol=0.01)
    np.testing.assert_allclose(values.std(), 1.0, rtol=0.02)
  else:  # uniform in [-1/K, 1/K]
    assert np.abs(values).max() <= 1 / 512
    np.testing.assert_allclose(values.std(), 1 / 512 / np.sqrt(3), rtol=0.02)
    np.testing.assert_allclose(np.abs(values).max(), 1 / 512, rtol=0.01)
  assert abs(values.mean()) < 0.02 * values.std()
  default_scale = {"truncated_normal": 0.1, "normal": 1.0, "uniform": 1 / 512,
                   "uniform_unit_variance": 1.0}[scheme]
  np.testing.assert_allclose(q.init_codebooks(key, 4, 512, 16, scheme=scheme, scale=3.0),
                             codebooks * (3.0 / default_scale), rtol=1e-5, atol=1e-6)


def test_init_codebooks_dtype():
  codebooks = q.init_codebooks(jax.random.key(1), 2, 8, 3, scheme="uniform", dtype=jnp.bfloat16)
  assert codebooks.dtype == jnp.bfloat16 and codebooks.shape == (2, 8, 3)
  assert 0 < float(jnp.abs(codebooks).max()) <= 1 / 8
