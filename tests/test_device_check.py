"""benchmarks/device_check.sh runs end to end at its small (CPU) sizes, so it cannot rot."""

import pathlib
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.extended  # 2 small train-step compiles: ~30 s on 2 cores
def test_device_check_small_runs_and_the_searches_agree():
  result = subprocess.run(["bash", str(ROOT / "benchmarks" / "device_check.sh"), "--small"],
                          capture_output=True, text=True, timeout=600, check=False)
  assert result.returncode == 0, result.stderr[-2000:]
  out = result.stdout
  for dtype in ("float32", "bfloat16"):
    assert out.count(f"| train step | {dtype} |") == 1, out
  for name in ("argmin", "two_pass", "plain_argmin"):
    assert out.count(f"| quantizer {name} |") == 2, out
  assert "failed" not in out, out
  for name in ("argmin", "two_pass"):
    assert out.count(f"{name} vs plain_argmin, same codes: 100.000%") == 2, out
  assert "device check done" in out
