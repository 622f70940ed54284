"""The tokenize and sample command lines: flags parse, user mistakes end in one `error:` line."""

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _run(*args, cwd):
  env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
  return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True,
                        text=True, timeout=120, check=False)


@pytest.mark.parametrize("args,message", [
    (("dvq_jax.tokenize",), "error: use --workdir=W"),
    (("dvq_jax.tokenize", "--workdir=nowhere"), "nowhere/config.json does not exist"),
    (("dvq_jax.sample", "--prior_workdir=nowhere", "--num_samples=4", "--temperature=0.5",
      "--top_k=3", "--seed=1", "--output=x.png"), "nowhere/config.json does not exist"),
])
def test_cli_errors_are_one_line(tmp_path, args, message):
  result = _run(*args, cwd=tmp_path)
  assert result.returncode == 2, result.stderr
  lines = result.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], lines
