"""NaN and inf in z or in a codebook: codes stay in [0, K) and the losses carry the fault."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dvq_jax import quantizers as q
from tests.conftest import brute_force_codes
from tests.conftest import reference_quantize
from tests.quantizer_fixtures import make_inputs
from tests.quantizer_fixtures import run

# (kind, batch shape -- (B, P) for spatial --, L, K, D, slice_sizes)
CASES = [
    ("vector", (4, 6), 1, 9, 3, None),
    ("depthwise", (4, 6), 3, 9, 2, None),
    ("depthwise", (4, 6), 3, 9, 3, (3, 1, 2)),
    ("multi", (4, 6), 2, 9, 3, None),
    ("spatial", (4, 6), 3, 9, 2, None),
]
IDS = [f"{c[0]}" + (f"-s{c[5]}" if c[5] else "") for c in CASES]
BAD = (np.nan, np.inf, -np.inf)


def _codes_by_position(kind: str, codes: np.ndarray) -> np.ndarray:
  """Codes `(positions, codebooks used)`: (N, L) for depthwise/multi, (N, 1) otherwise."""
  return codes.reshape(codes.shape[0] * codes.shape[1] if kind == "spatial" else -1,
                       codes.shape[-1] if kind in ("depthwise", "multi") else 1)


def _hit_codebooks(case, feature: int) -> list[int]:
  """Which of a position's codes read feature `feature` of z."""
  kind, _, num_codebooks, _, dim, slice_sizes = case
  if kind == "depthwise":
    bounds = np.cumsum(slice_sizes or [dim] * num_codebooks)
    return [int(np.searchsorted(bounds, feature, side="right"))]
  return list(range(num_codebooks)) if kind == "multi" else [0]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_non_finite_z_gets_code_0_and_non_finite_losses(case):
  z, codebooks = make_inputs(case, "normal")
  flat = np.asarray(z).reshape(-1, z.shape[-1])
  clean = reference_quantize(case[0], z, codebooks, slice_sizes=case[5])
  places = [(0, 0), (len(flat) // 2, z.shape[-1] // 2), (len(flat) - 1, z.shape[-1] - 1)]
  for value in BAD:
    for position, feature in places:
      bad = flat.copy()
      bad[position, feature] = value
      out = run(case, jnp.asarray(bad.reshape(z.shape)), codebooks)  # jitted
      codes = _codes_by_position(case[0], np.asarray(out.codes))
      assert codes.min() >= 0 and codes.max() < case[3]
      want = _codes_by_position(case[0], clean["codes"].copy())
      want[position, _hit_codebooks(case, feature)] = 0
      np.testing.assert_array_equal(codes, want, err_msg=f"{value} at {position}, {feature}")
      for name in ("loss", "codebook_loss", "commitment_loss"):
        assert not np.isfinite(getattr(out, name)), (name, value, position)
      assert np.all(np.isfinite(out.perplexity)) and np.all(np.isfinite(out.usage))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_non_finite_codebook_row_is_never_chosen_and_makes_the_loss_nan(case):
  z, codebooks = make_inputs(case, "normal")
  size = case[3]
  for value in BAD:
    for row in (0, size // 2, size - 1):
      bad = np.array(codebooks)
      far = np.array(codebooks)
      if case[0] == "vector":
        bad[row, 0], far[row] = value, 1e6
      else:  # the last codebook's row
        bad[-1, row, 0], far[-1, row] = value, 1e6
      out = run(case, z, jnp.asarray(bad))
      want = reference_quantize(case[0], z, far, slice_sizes=case[5])
      np.testing.assert_array_equal(out.codes, want["codes"], err_msg=f"{value} in row {row}")
      assert np.isnan(out.codebook_loss) and np.isnan(out.loss)
      np.testing.assert_allclose(out.commitment_loss, want["commitment_loss"], rtol=1e-5)


@pytest.mark.parametrize("form", ["argmin", "two_pass"])
def test_nearest_codes_with_non_finite_rows_over_codebook_chunks(form):
  """K = 65,536 is searched in codebook chunks by both forms: a poisoned row in any chunk is
  skipped, a poisoned x row gets code 0, and a codebook with no finite row gives code 0
  everywhere."""
  rng = np.random.default_rng(0)
  x, e = rng.normal(size=(120, 3)), rng.normal(size=(65_536, 3))
  bad_rows = [0, 3333, 40_000, 65_535]
  e_bad, e_far = e.copy(), e.copy()
  e_bad[bad_rows, 1] = [np.nan, np.inf, -np.inf, np.nan]
  e_far[bad_rows] = 1e6
  x[[0, 60, 119], [0, 1, 2]] = [np.nan, np.inf, -np.inf]
  search = jax.jit(lambda x, e: q.nearest_codes(x, e, form=form))
  codes = np.asarray(search(jnp.asarray(x, jnp.float32), jnp.asarray(e_bad, jnp.float32)))
  want = brute_force_codes(np.nan_to_num(x, posinf=0, neginf=0, nan=0), e_far)
  want[[0, 60, 119]] = 0
  np.testing.assert_array_equal(codes, want)
  all_bad = search(jnp.asarray(x, jnp.float32), jnp.full((65_536, 3), jnp.nan, jnp.float32))
  np.testing.assert_array_equal(all_bad, 0)


@pytest.mark.slow
def test_vqvae_loss_reports_a_nan_codebook_row():
  """Through the model: the loss the trainer's finite check reads becomes NaN."""
  from dvq_jax.vqvae import build_model  # pylint: disable=g-import-not-at-top
  from dvq_jax.vqvae import objective  # pylint: disable=g-import-not-at-top
  from tests import config_files  # pylint: disable=g-import-not-at-top
  config = config_files.load("configs/cifar10.py:small")
  model = build_model(config, (16, 16, 3))
  images = jnp.asarray(np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3)), jnp.uint8)
  params = jax.jit(model.init)(jax.random.key(1), images)["params"]
  loss, aux = jax.jit(objective.loss_fn, static_argnums=1)(params, model, images)
  assert np.isfinite(loss) and np.isfinite(aux["codebook_loss"])
  codebooks = params["quantize"]["codebooks"]
  params["quantize"]["codebooks"] = codebooks.at[-1, -1, 0].set(jnp.nan)
  loss, aux = jax.jit(objective.loss_fn, static_argnums=1)(params, model, images)
  assert np.isnan(loss) and np.isnan(aux["codebook_loss"]) and np.isnan(aux["vq_loss"])
