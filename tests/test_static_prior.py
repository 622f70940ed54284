"""The static-prior study on tiny sizes: data, training, vmapping, outputs and config errors."""

import importlib.util
import json
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dvq_jax.errors import ConfigError
from dvq_jax.static_prior import plan as plan_lib
from dvq_jax.static_prior import run as run_lib
from dvq_jax.static_prior.blobs import make_blobs
from dvq_jax.static_prior.study import PAD_VALUE
from dvq_jax.static_prior.study import Group
from dvq_jax.static_prior.study import Recipe
from dvq_jax.static_prior.study import Shape
from dvq_jax.static_prior.study import quantization_mse
from dvq_jax.static_prior.study import repeat_keys
from dvq_jax.static_prior.study import simulate
from dvq_jax.static_prior.study import simulate_one

_ROOT = pathlib.Path(__file__).resolve().parent.parent
_RECIPE = Recipe(steps=40, learning_rate=0.05, points_per_centre=5, test_points_per_centre=5,
                 sigma=0.01, init="normal", init_std=1.0)


def _config(arg=None):
  spec = importlib.util.spec_from_file_location("static_prior_config",
                                                _ROOT / "configs" / "static_prior.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


# ---- data ----------------------------------------------------------------------------------

def test_blob_statistics():
  blobs = make_blobs(jax.random.key(1), 50, 3, points_per_centre=400, test_points_per_centre=7,
                     sigma=0.02)
  centres = np.asarray(blobs.centres)
  assert centres.shape == (50, 3) and blobs.train.shape == (20000, 3)
  assert blobs.test.shape == (350, 3)
  assert centres.min() >= -1 and centres.max() <= 1
  assert centres.min() < -0.8 and centres.max() > 0.8  # spread over the cube, not a corner
  noise = np.asarray(blobs.train).reshape(50, 400, 3) - centres[:, None, :]
  np.testing.assert_allclose(noise.std(), 0.02, rtol=0.02)  # isotropic sigma
  np.testing.assert_allclose(noise.reshape(-1, 3).std(axis=0), 0.02, rtol=0.05)
  assert abs(noise.mean()) < 1e-3
  test_noise = np.asarray(blobs.test).reshape(50, 7, 3) - centres[:, None, :]
  assert np.abs(test_noise).max() < 0.02 * 6  # the test draw sits around the same centres
  assert not np.allclose(noise[:, :7], test_noise)  # ... but is a separate draw


def test_blobs_are_determined_by_the_key():
  a = make_blobs(jax.random.key(3), 4, 2, points_per_centre=3, test_points_per_centre=2)
  b = make_blobs(jax.random.key(3), 4, 2, points_per_centre=3, test_points_per_centre=2)
  c = make_blobs(jax.random.key(4), 4, 2, points_per_centre=3, test_points_per_centre=2)
  for x, y, z in zip(a, b, c):
    np.testing.assert_array_equal(x, y)
    assert not np.allclose(x, z)


def test_quantization_mse_matches_numpy():
  rng = np.random.default_rng(0)
  codebooks = rng.normal(size=(2, 5, 3)).astype(np.float32)  # L=2, K=5, D/L=3
  points = rng.uniform(-1, 1, size=(40, 6)).astype(np.float32)
  expected = 0.0
  for l in range(2):
    part = points[:, 3 * l:3 * l + 3]
    dist = ((part[:, None, :] - codebooks[l][None]) ** 2).sum(-1)
    expected += dist.min(axis=1).sum()
  expected /= points.size
  np.testing.assert_allclose(quantization_mse(jnp.asarray(codebooks), jnp.asarray(points)),
                             expected, rtol=1e-5)


# ---- training and vmapping -----------------------------------------------------------------

@pytest.fixture(scope="module")
def group_outcome():
  group = Group(num_factors=6, dim=4, num_codebooks=2, codebook_sizes=(3, 5))
  data_keys = repeat_keys(0, 3, 7)
  init_keys = jnp.stack([repeat_keys(0, 3, 8, k) for k in group.codebook_sizes])
  return group, data_keys, init_keys, jax.device_get(simulate(data_keys, init_keys, group,
                                                              _RECIPE))


def test_vmapped_repeats_and_padded_sizes_equal_a_python_loop(group_outcome):
  group, data_keys, init_keys, outcome = group_outcome
  one = jax.jit(simulate_one, static_argnames=("shape", "recipe"))
  for s, size in enumerate(group.codebook_sizes):
    shape = Shape(group.num_factors, group.dim, group.num_codebooks, size)
    for r in range(3):
      single = jax.device_get(one(data_keys[r], init_keys[s, r], shape, _RECIPE))
      np.testing.assert_allclose(outcome.loss[s, r], single.loss, rtol=1e-5)
      np.testing.assert_allclose(outcome.random_loss[s, r], single.random_loss, rtol=1e-5)
      np.testing.assert_allclose(outcome.curve[s, r], single.curve, rtol=1e-5)
      np.testing.assert_allclose(outcome.codes_used[s, r], single.codes_used, rtol=1e-6)
      np.testing.assert_allclose(outcome.codebooks[s, r, :, :size], single.codebooks,
                                 rtol=1e-5, atol=1e-6)
  # Padding rows (K=3 padded to 5) were never chosen: no gradient, so they never moved.
  np.testing.assert_array_equal(outcome.codebooks[0, :, :, 3:], np.float32(PAD_VALUE))


def test_training_lowers_the_loss_below_the_random_codebooks(group_outcome):
  _, _, _, outcome = group_outcome
  assert np.all(outcome.curve[..., -1] < 0.5 * outcome.curve[..., 0])
  assert np.all(outcome.loss < outcome.random_loss)
  assert np.all((outcome.codes_used >= 1) & (outcome.codes_used <= np.array([[3], [5]])))
  # The training objective is the same quantity as the test loss, on a draw of the same blobs.
  np.testing.assert_allclose(outcome.curve[..., -1], outcome.loss, rtol=0.2)


def test_repeat_keys_depend_only_on_seed_and_ids():
  np.testing.assert_array_equal(jax.random.key_data(repeat_keys(1, 3, 4, 5)),
                                jax.random.key_data(repeat_keys(1, 3, 4, 5)))
  assert not np.array_equal(jax.random.key_data(repeat_keys(1, 3, 4, 5)),
                            jax.random.key_data(repeat_keys(1, 3, 4, 6)))


# ---- config and errors ---------------------------------------------------------------------

@pytest.mark.parametrize("arg, study, jobs", [(None, "all", 7 + 12), ("fig3", "fig3", 7),
                                              ("fig4", "fig4", 12), ("small", "all", 2 + 4)])
def test_configs_load_and_plan(arg, study, jobs):
  config = _config(arg)
  plan = plan_lib.make_plan(config)
  assert config.experiment == "static_prior" and plan.study == study and len(plan.jobs) == jobs
  records = sum(len(s.models) for job in plan.jobs for s in job.settings)
  if arg is None:
    assert records == 7 * 10 * 2 + 6 * 3  # Fig. 3: vq + random per (D, K); Fig. 4: 3 models
    assert {70, 420} <= set(config.num_factors)


@pytest.mark.parametrize("value, expected", [
    ("(2,4,8)", (2, 4, 8)), ("16", (16,)), (16, (16,)), ([3, 5], (3, 5)), (("(10, 20)",), (10, 20)),
])
def test_tuple_fields_accept_command_line_forms(value, expected):
  assert plan_lib.int_tuple(value, "dims") == expected


@pytest.mark.parametrize("value", ["(2,x)", ("(2,x)",), (), "2.5", (True,)])
def test_bad_tuple_fields_are_config_errors(value):
  with pytest.raises(ConfigError, match="config.dims"):
    plan_lib.int_tuple(value, "dims")


@pytest.mark.parametrize("field, value, message", [
    ("codebook_sizes", (0, 3), "codebook_sizes"),
    ("vq_kplus_codebook_size", 0, "vq_kplus_codebook_size"),
    ("num_codebooks", 3, "not divisible"),
    ("num_factors", (6, 0), "num_factors"),
    ("fig3_num_factors", 0, "fig3_num_factors"),
    ("repeats", 0, "repeats"),
    ("study", "fig5", "study"),
    ("dims", (2, 0), "every D"),
    ("init_std", 1e7, "init_std"),
    ("init", "zeros", "init"),
])
def test_bad_input_is_a_one_line_config_error(field, value, message):
  config = _config("small")
  config[field] = value
  with pytest.raises(ConfigError, match=message) as error:
    plan_lib.make_plan(config)
  assert "\n" not in str(error.value)


def test_bad_input_fails_from_the_command_line_before_compute(tmp_path):
  result = subprocess.run(
      [sys.executable, "-m", "dvq_jax.main", "--config=configs/static_prior.py:small",
       "--config.num_codebooks=3", f"--workdir={tmp_path / 'w'}"],
      cwd=_ROOT, capture_output=True, text=True, timeout=120, check=False)
  assert result.returncode == 2
  assert result.stderr.strip().splitlines()[-1].startswith("error: config.fig4_dim = 4 (D)")
  assert not (tmp_path / "w").exists()


# ---- end to end ----------------------------------------------------------------------------

def test_run_writes_results_and_plots(tmp_path):
  config = _config("small")
  config.dims = (2,)
  config.num_factors = (12,)
  records = run_lib.run(config, str(tmp_path), progress=False)
  written = json.loads((tmp_path / "results.json").read_text())
  assert written == records
  assert {r["model"] for r in records} == {"vq", "random", "dvq", "vq_k+"}
  assert all(tuple(r) == run_lib.RECORD_KEYS and r["repeats"] == 2 for r in records)
  csv_lines = (tmp_path / "results.csv").read_text().splitlines()
  assert csv_lines[0] == ",".join(run_lib.RECORD_KEYS) and len(csv_lines) == len(records) + 1
  fig3 = {(r["model"], r["codebook_size"]): r["loss_mean"] for r in records if r["study"] == "fig3"}
  for k in config.codebook_sizes:
    assert fig3[("vq", k)] < fig3[("random", k)]
  assert json.loads((tmp_path / "config.json").read_text())["dims"] == [2]
  used = json.loads((tmp_path / "codes_used.json").read_text())["fig3/vq/D2/K3/L1/NG8"]
  assert len(used["repeats"]) == 2 and 1 <= used["mean"] <= 3
  curves = np.load(tmp_path / "loss_curves.npz")
  assert curves["fig3/vq/D2/K3/L1/NG8"].shape == (2, config.steps)
  for name in ("fig3a_loss_vs_dim", "fig3b_trained_vs_random", "fig4_loss_vs_num_factors",
               "fig13_depthwise_2d", "loss_curves"):
    assert (tmp_path / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
