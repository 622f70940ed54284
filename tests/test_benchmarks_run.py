"""The JAX-only benchmark scripts run end to end at tiny sizes, so they cannot rot.

Each case checks what the script reports, not only its exit status. The device check has its own
test, tests/test_device_check.py.
"""

import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

CASES = {
    # name: (script and arguments, regular expressions that must match a line of its output)
    "official_bench": (["official_bench.py", "--no_tf", "--variants", "small", "--batches", "2",
                        "--rounds", "1", "--steps", "1", "--microbatches", "1,2",
                        "--dtypes", "float32/bfloat16"],
                       [r"^\| dvq_jax cifar10.py:small float32/bfloat16 transpose_phases \| 2 \|"
                        r" 109,944",
                        r"^\| dvq_jax cifar10.py:small float32/bfloat16 transpose_phases"
                        r" microbatches=2 \| 2 \| 109,944"]),
    "search_forms": (["search_forms.py", "--sizes", "512,2,4,64", "300,2,3,70000", "--rounds",
                      "1", "--forms", "two_pass,fused,argmin"], [r"^\| two_pass \| 300 \| 2 \| 3 \| 70000 \| .* \| True \|$",
                             r"^\| argmin \| 300 \| 2 \| 3 \| 70000 \| .* \| True \|$"]),
    "quantizer_memory": (["quantizer_memory.py", "--vectors", "4096", "--codes", "1024"],
                         [r"limit 4 GB: OK$"]),
    "prior_sampling_bench": (["prior_sampling_bench.py", "--quick", "--num_samples", "2",
                              "--grid", "2", "--repeats", "1"],
                             [r"^\| KV cache \|", r"^\| no cache \(full forward per token\) \|"]),
    "checkpoint_bench": (["checkpoint_bench.py", "--batch", "2", "--rounds", "1", "--steps",
                          "2"], [r"^\| digest \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+x \|$"]),
    # Two epochs' permutations of 10,000 images in 4-byte indices.
    "data_memory": (["data_memory.py", "--images", "10000", "--batch", "64", "--steps", "2"],
                    [r"^epoch permutations held: 0.08 MB \(2 epochs x 10,000 x 4 bytes\)$"]),
}


@pytest.mark.extended  # 4-28 s each on 2 cores
@pytest.mark.parametrize("name", sorted(CASES))
def test_benchmark_runs_at_tiny_size(name):
  args, expected = CASES[name]
  env = {**os.environ, "PYTHONPATH": str(ROOT)}
  result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / args[0]), *args[1:]],
                          capture_output=True, text=True, timeout=600, check=False, cwd=ROOT,
                          env=env)
  assert result.returncode == 0, result.stderr[-2000:]
  for pattern in expected:
    assert re.search(pattern, result.stdout, re.MULTILINE), (pattern, result.stdout[-3000:])
