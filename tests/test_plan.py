"""dvq_jax.plan: every shipped train step compiles ahead of time for a TPU slice and for 8 CPU
devices; the HLO accounting (bytes, FLOPs, loops, collectives), the roofline and the command's
errors checked against hand-computed numbers."""

import dataclasses
import json
import math
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dvq_jax.errors import ConfigError
from dvq_jax.plan import chips
from dvq_jax.plan import fusions
from dvq_jax.plan import hlo
from dvq_jax.plan import planner
from dvq_jax.plan import report
from dvq_jax.plan import roofline
from dvq_jax.training import sharding
from tests import config_files
from tests import plan_compiles
from tests.conftest import ROOT
from tests.conftest import run_on_8_devices


def test_every_trained_config_is_found():
  specs = plan_compiles.trained_configs()
  assert {"configs/cifar10.py:small", "configs/imagenet64.py:small",
          "configs/prior.py:small"} <= set(specs)


def _tpu_or_skip(topology: str) -> chips.Target:
  try:
    return chips.target(topology)
  except ConfigError as e:
    pytest.skip(f"TPU ahead-of-time compilation is not available here, so it was NOT checked:"
                f" {e}")


def test_every_train_step_compiles_for_a_tpu_slice():
  target = _tpu_or_skip("v5e:2x2")
  mesh = sharding.make_mesh(target.devices)
  results = plan_compiles.compile_distinct(plan_compiles.train_steps(mesh))
  for spec, result in results.items():
    assert result.flops > 0 and result.bytes_accessed > 0, spec
    assert 0 < result.memory_bytes < target.chip.hbm_bytes, spec
    # Data parallel: the gradients are summed over the 4 chips.
    assert result.collectives.get("all-reduce", {}).get("count", 0) >= 1, (spec, result)


@pytest.mark.extended  # full-size configs: minutes of TPU compilation each on 2 cores
@pytest.mark.parametrize("spec", [s.removesuffix(":small") for s in plan_compiles.trained_configs()])
def test_full_size_train_steps_compile_and_fit_a_v5e_4x4_slice(spec):
  _tpu_or_skip("v5e:4x4")
  result = planner.plan(config_files.load(spec), "v5e:4x4", only=("train_step",),
                        vqvae_config=config_files.load(plan_compiles.FULL_VQVAE_FOR_PRIOR))
  (step,) = result.programs
  assert step.analysis.flops > 0 and report.fit_errors(result) == []
  assert step.analysis.collectives["all-reduce"]["count"] >= 1


_CPU8_SCRIPT = """
import json
from dvq_jax.plan import chips
from dvq_jax.training import sharding
from tests import config_files
from tests import plan_compiles
mesh = sharding.make_mesh(chips.target("cpu:8").devices)
results = plan_compiles.compile_distinct(plan_compiles.train_steps(mesh))
print(json.dumps({spec: [r.flops, r.collectives] for spec, r in results.items()}))
"""


def test_every_train_step_compiles_for_8_cpu_devices():
  run = run_on_8_devices(_CPU8_SCRIPT)
  assert run.returncode == 0, run.stderr[-3000:]
  results = json.loads(run.stdout.strip().splitlines()[-1])
  assert set(results) == set(plan_compiles.trained_configs())
  for spec, (flops, collectives) in results.items():
    assert flops > 0 and collectives["all-reduce"]["count"] >= 1, spec


# ---------------------------------------------------------------- accounting on small programs


def _compiled_text(fn, *args) -> tuple[str, dict]:
  compiled = jax.jit(fn).lower(*args).compile()
  return compiled.as_text(), compiled.cost_analysis()


def test_matmul_flops_and_bytes_match_hand_counts():
  x, w = jnp.ones((64, 128), jnp.float32), jnp.ones((128, 32), jnp.float32)
  text, cost = _compiled_text(lambda a, b: a @ b, x, w)
  ops = fusions.operations(text)
  assert sum(o.flops for o in ops) == 2 * 64 * 128 * 32
  assert sum(o.bytes for o in ops) == 4 * (64 * 128 + 128 * 32 + 64 * 32)
  assert cost["flops"] == 2 * 64 * 128 * 32


def test_batched_matmul_flops_match_hand_count():
  q, k = jnp.ones((2, 16, 4, 8), jnp.float32), jnp.ones((2, 16, 4, 8), jnp.float32)
  text, cost = _compiled_text(lambda a, b: jnp.einsum("bqhd,bkhd->bhqk", a, b), q, k)
  assert sum(o.flops for o in fusions.operations(text)) == 2 * (2 * 4 * 16 * 16) * 8
  assert cost["flops"] == 2 * (2 * 4 * 16 * 16) * 8


def test_loop_bodies_count_once_per_iteration():
  def body(_, carry):
    return jnp.tanh(carry @ carry)

  x = jnp.ones((32, 32), jnp.float32)
  text, _ = _compiled_text(lambda a: jax.lax.fori_loop(0, 7, body, a), x)
  ops = [o for o in fusions.operations(text) if o.flops]
  assert ops and all(o.executions == 7 for o in ops)
  assert sum(o.flops for o in ops) == 7 * 2 * 32**3


def test_convolution_flops_match_hand_count():
  images, kernel = jnp.ones((2, 8, 8, 3), jnp.float32), jnp.ones((3, 3, 3, 16), jnp.float32)
  conv = lambda a, k: jax.lax.conv_general_dilated(
      a, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
  text, _ = _compiled_text(conv, images, kernel)
  assert sum(o.flops for o in fusions.operations(text)) == 2 * (2 * 8 * 8 * 16) * 9 * 3


def test_transposed_convolution_counts_only_the_taps_that_hit_inputs():
  images, kernel = jnp.ones((1, 4, 4, 3), jnp.float32), jnp.ones((4, 4, 3, 5), jnp.float32)
  upsample = lambda a, k: jax.lax.conv_transpose(a, k, (2, 2), "SAME",
                                                 dimension_numbers=("NHWC", "HWIO", "NHWC"))
  text, _ = _compiled_text(upsample, images, kernel)
  # Stride 2 with a 4x4 kernel: each of the 8x8x5 outputs sums 2x2 taps over 3 channels.
  assert sum(o.flops for o in fusions.operations(text)) == 2 * (8 * 8 * 5) * 4 * 3


def test_shape_bytes_pads_to_layout_tiles():
  assert hlo.shape_bytes("u8[2,32,32,3]{3,2,1,0}") == 2 * 32 * 32 * 3
  # TPU tiles (8, 128) over the two minor-most dims in layout order: 3 -> 128, 32 -> 32.
  assert hlo.shape_bytes("u8[2,32,32,3]{3,2,1,0:T(8,128)}") == 2 * 32 * 32 * 128
  assert hlo.shape_bytes("(f32[]{:T(128)}, s32[4]{0})") == 128 * 4 + 16


def test_collectives_are_counted_by_kind_with_their_bytes():
  text = """HloModule m
ENTRY %main (p: f32[8,16]) -> f32[8,16] {
  %p = f32[8,16]{1,0} parameter(0)
  %ar = f32[8,16]{1,0} all-reduce(%p), replica_groups={}, to_apply=%add
  %ags = (f32[8,16]{1,0}, f32[64,16]{1,0}) all-gather-start(%ar), dimensions={0}
  ROOT %agd = f32[64,16]{1,0} all-gather-done(%ags)
}
"""
  assert hlo.collectives(text) == {"all-gather": {"count": 1, "bytes": 64 * 16 * 4},
                                   "all-reduce": {"count": 1, "bytes": 8 * 16 * 4}}


def test_roofline_memory_bound_step():
  chip = chips.CHIPS["v5e"]
  bound = roofline.roofline(flops=1e12, bytes_accessed=1e11, examples=128, chip=chip)
  assert bound.bound == "memory"
  assert math.isclose(bound.step_seconds, 1e11 / 819e9)
  assert math.isclose(bound.mfu, (1e12 / 197e12) / (1e11 / 819e9))
  assert math.isclose(bound.examples_per_second, 128 / (1e11 / 819e9))


@pytest.mark.parametrize("topology,expected", [
    ("v5e:4x4", ("v5e", (4, 4))), ("v6e:1x1", ("v6e", (1, 1))), ("v4:2x2x1", ("v4", (2, 2, 1))),
    ("v5p:2x2x2", ("v5p", (2, 2, 2))), ("cpu:8", ("cpu", (8,))), ("h100", ("h100", (1,)))])
def test_topology_names(topology, expected):
  assert chips.parse(topology) == expected


@pytest.mark.parametrize("topology", ["v5e:4x4x1", "v4:2x2", "v7:2x2", "cpu:0", "h100:8", ""])
def test_bad_topology_is_a_config_error(topology):
  with pytest.raises(ConfigError, match="--topology"):
    chips.parse(topology)


@pytest.fixture(scope="module")
def h100_eval_plan():
  config = config_files.load("configs/demo.py:small")
  return config, planner.plan(config, "h100", only=("eval_step",), fusions=3)


def test_h100_estimate_reports_the_roofline_of_the_cpu_program(h100_eval_plan):
  config, result = h100_eval_plan
  (step,) = report.as_dict(result, "demo")["programs"]
  assert step["name"] == "eval_step" and step["examples"] == config.batch_size
  expected = roofline.roofline(step["flops"], step["bytes_accessed"], config.batch_size,
                               chips.CHIPS["h100"])
  assert np.isclose(step["roofline"]["mfu"], expected.mfu) and step["fits"]
  assert len(step["fusions"]["by_bytes"]) == 3
  # On CPU (no layout tiles) the operations' bytes add up to XLA's total.
  assert np.isclose(step["fusions"]["total"][0]["bytes"], step["bytes_accessed"], rtol=0.05)
  lines = report.text(result, "demo").splitlines()
  assert lines[1].startswith("ESTIMATE") and report.fit_errors(result) == []


def test_a_step_over_the_chips_memory_is_an_error(h100_eval_plan):
  _, result = h100_eval_plan
  (planned,) = result.programs
  chip = dataclasses.replace(result.target.chip, hbm_bytes=planned.analysis.memory_bytes - 1)
  too_small = dataclasses.replace(result, target=dataclasses.replace(result.target, chip=chip))
  (message,) = report.fit_errors(too_small)
  assert message.startswith("eval_step needs") and "config.batch_size" in message


def test_plan_refuses_cpu_devices_this_process_does_not_have():
  with pytest.raises(ConfigError, match="needs 8 CPU devices, this process has 1"):
    planner.plan(config_files.load("configs/demo.py:small"), "cpu:8")


def test_plan_refuses_configs_without_a_train_step_or_a_vqvae():
  with pytest.raises(ConfigError, match="has no train step"):
    planner.plan(config_files.load("configs/static_prior.py:small"), "cpu:1")
  with pytest.raises(ConfigError, match="--vqvae_config"):
    planner.plan(config_files.load("configs/prior.py:small"), "cpu:1")


def test_command_errors_are_one_line_exit_2():
  run = subprocess.run(
      [sys.executable, "-m", "dvq_jax.plan", "--config=configs/demo.py:small",
       "--topology=v9:2x2"], cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert run.returncode == 2, run.stderr[-2000:]
  assert run.stderr.strip().splitlines()[-1].startswith("error: --topology=v9:2x2 is not a")
