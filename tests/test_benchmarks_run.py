"""The JAX-only benchmark scripts run end to end at tiny sizes, so they cannot rot.

Each case checks what the script reports, not only its exit status, and the `--output` JSON the
results page renders: its rows and the run's provenance. The device check has its own
test, tests/test_device_check.py.
"""

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

CASES = {
    # name: (script and arguments, regular expressions that must match a line of its output,
    #        fields the `--output` file's rows must hold, in order)
    "official_bench": (["official_bench.py", "--no_tf", "--variants", "small", "--batches", "2",
                        "--rounds", "1", "--steps", "1", "--microbatches", "1,2",
                        "--dtypes", "float32/bfloat16"],
                       [r"^\| dvq_jax cifar10.py:small float32/bfloat16 transpose_phases \| 2 \|"
                        r" 109,944",
                        r"^\| dvq_jax cifar10.py:small float32/bfloat16 transpose_phases"
                        r" microbatches=2 \| 2 \| 109,944"],
                       [{"batch": 2, "params": 109_944, "page_faults_per_step": float},
                        {"batch": 2, "params": 109_944}]),
    "search_forms": (["search_forms.py", "--sizes", "512,2,4,64", "300,2,3,70000", "--rounds",
                      "1", "--forms", "two_pass,fused,argmin"], [r"^\| two_pass \| 300 \| 2 \| 3 \| 70000 \| .* \| True \|$",
                             r"^\| argmin \| 300 \| 2 \| 3 \| 70000 \| .* \| True \|$"],
                     [{"form": "two_pass", "N": 512, "codes_equal_first_form": True},
                      {"form": "fused", "N": 512}, {"form": "argmin", "N": 512},
                      {"form": "two_pass", "K": 70000}, {"form": "fused", "K": 70000},
                      {"form": "argmin", "K": 70000, "codes_equal_first_form": True}]),
    "quantizer_memory": (["quantizer_memory.py", "--vectors", "4096", "--codes", "1024"],
                         [r"limit 4 GB: OK$"],
                         [{"family": "dvq", "vectors": 4096, "codes": 1024,
                           "peak_rss_gib": float}]),
    # Several families: one process each, one file.
    "quantizer_memory_families": (["quantizer_memory.py", "--vectors", "4096", "--codes", "256",
                                   "--grad", "--family", "lfq,rvq"],
                                  [r"^# quantizer_memory lfq fwd\+bwd", r"^# quantizer_memory rvq"],
                                  [{"family": "lfq", "grad": True, "dim": 8},
                                   {"family": "rvq", "grad": True, "codes": 256}]),
    # The mechanics (clone, a venv of its own, the result line) with a stand-in command.
    "fresh_clone": (["fresh_clone.py", "--command", "python -c 'print(\"3 passed in 1.0s\")'"],
                    [r"^# fresh clone of [0-9a-f]+ in ", r"^  exit 0 after [\d.]+ min: 3 passed"],
                    [{"exit_code": 0, "result": "3 passed in 1.0s", "minutes": float}]),
    # Two simulated CPU devices: a collective, no roofline (no chip peaks for a CPU).
    "plan_table": (["plan_table.py", "--plans", "--config=configs/demo.py:small --topology=cpu:2"],
                   [r"^  train_step: [\d.]+ GFLOP", r"^  eval_step: "],
                   [{"topology": "cpu:2", "devices": 2, "program": "train_step", "examples": 8,
                     "fits": True, "collectives": {"all-reduce": 1}},
                    {"program": "eval_step", "gflop": float}]),
    "prior_sampling_bench": (["prior_sampling_bench.py", "--quick", "--num_samples", "2",
                              "--grid", "2", "--repeats", "1"],
                             [r"^\| KV cache \|", r"^\| no cache \(full forward per token\) \|"],
                             [{"sampler": "cache", "tokens_per_s": float},
                              {"sampler": "no_cache", "tokens_per_s": float}]),
    "checkpoint_bench": (["checkpoint_bench.py", "--batch", "2", "--rounds", "1", "--steps",
                          "2"], [r"^\| digest \| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+x \|$"],
                         [{"way": "none", "step_vs_none": 1.0}, {"way": "orbax"},
                          {"way": "digest", "save_call_s": float}]),
    # Two epochs' permutations of 10,000 images in 4-byte indices.
    "data_memory": (["data_memory.py", "--images", "10000", "--batch", "64", "--steps", "2"],
                    [r"^epoch permutations held: 0.08 MB \(2 epochs x 10,000 x 4 bytes\)$"],
                    [{"global_batch": 64, "steps": 4, "permutations_mb": 0.08}]),
}


@pytest.mark.extended  # 4-28 s each on 2 cores
@pytest.mark.parametrize("name", sorted(CASES))
def test_benchmark_runs_at_tiny_size(name, tmp_path):
  args, expected, expected_rows = CASES[name]
  env = {**os.environ, "PYTHONPATH": str(ROOT)}
  output = tmp_path / "results.json"
  result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / args[0]), *args[1:],
                           f"--output={output}"],
                          capture_output=True, text=True, timeout=600, check=False, cwd=ROOT,
                          env=env)
  assert result.returncode == 0, result.stderr[-2000:]
  for pattern in expected:
    assert re.search(pattern, result.stdout, re.MULTILINE), (pattern, result.stdout[-3000:])
  record = json.loads(output.read_text())
  assert args[0] in record["command"] and record["cpus"] >= 1 and len(record["load"]) == 3
  assert record["commit"] and record["date"].startswith("20"), record
  assert len(record["rows"]) == len(expected_rows), record["rows"]
  for row, fields in zip(record["rows"], expected_rows):
    for key, value in fields.items():
      if isinstance(value, type):
        assert isinstance(row[key], value), (key, row)
      elif isinstance(value, float):
        assert row[key] == pytest.approx(value, abs=0.005), (key, row)
      else:
        assert row[key] == value, (key, row)
