"""The nearest-code search: both forms against the float64 brute force, under XLA flags too.

Small-integer data are exact in float32, so there the codes must equal the brute force bit for
bit, ties (duplicated codebook rows) included; on Gaussian data a code may differ only at a
float32 near-tie. A search that misses the minimum (as one that recomputes the scores in two
fusions does at `--xla_backend_optimization_level=0`) fails both.
"""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dvq_jax import backends
from dvq_jax import quantizers as q
from dvq_jax.quantizers import _nearest
from tests.conftest import ROOT
from tests.conftest import brute_force_codes
from tests.conftest import sq_distances

FORMS = _nearest.SEARCH_FORMS
# name: (N, K, D, data, dtype)
CASES = {
    "one_dim": (60, 8, 1, "normal", jnp.float32),  # 106 of 240 codes wrong once, at -O0
    "gaussian": (1000, 700, 5, "normal", jnp.float32),
    "one_code": (50, 1, 3, "normal", jnp.float32),
    "ties": (500, 64, 2, "int", jnp.float32),
    "65536_codes_ties_across_chunks": (64, 65_536, 3, "int", jnp.float32),
    "bfloat16": (300, 256, 4, "int", jnp.bfloat16),
    "bfloat16_gaussian": (300, 256, 4, "normal", jnp.bfloat16),
}
XLA_FLAGS = ("--xla_backend_optimization_level=0", "--xla_backend_optimization_level=1",
             "--xla_cpu_use_fusion_emitters=false")


def make_case(name: str) -> tuple[jax.Array, jax.Array]:
  """x `(N, D)` and codebook `(K, D)`; "int" data repeat the first 4,096 (or K/2) codebook rows,
  so that exact ties are everywhere (and, at K = 65,536, span every codebook chunk)."""
  num, size, dim, data, dtype = CASES[name]
  rng = np.random.default_rng(0)
  if data == "int":
    x = rng.integers(-4, 5, (num, dim))
    unique = rng.integers(-4, 5, (min(max(size // 2, 1), 4096), dim))
    e = np.resize(unique, (size, dim))
  else:
    x, e = rng.normal(size=(num, dim)), rng.normal(size=(size, dim))
  return jnp.asarray(x, dtype), jnp.asarray(e, dtype)


def check_codes(codes, x, e, exact: bool) -> int:
  """How many codes are wrong against the float64 brute force (see the module docstring)."""
  x, e = np.asarray(x, np.float64), np.asarray(e, np.float64)
  codes, want = np.asarray(codes), brute_force_codes(x, e)
  assert codes.dtype == np.int32 and codes.shape == want.shape
  if exact:
    return int(np.sum(codes != want))
  d, rows = sq_distances(x, e), np.arange(len(x))
  near_tie = np.isclose(d[rows, codes], d[rows, want], rtol=1e-5, atol=1e-6)
  return int(np.sum(~near_tie))


def wrong_codes(form: str, name: str) -> int:
  x, e = make_case(name)
  codes = jax.jit(lambda x, e: q.nearest_codes(x, e, form=form))(x, e)
  return check_codes(codes, x, e, exact=CASES[name][3] == "int")


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("form", FORMS)
def test_each_form_matches_the_float64_brute_force(form, name):
  assert wrong_codes(form, name) == 0


def test_large_codebooks_are_chunked_in_both_forms():
  """The K = 65,536 case above runs through the chunk merge of both forms."""
  for form in FORMS:
    assert _nearest._plan(64, 1, 65_536, _nearest._FORMS[form])[2] < 65_536, form


@pytest.mark.parametrize("form", FORMS)
def test_memory_grows_with_n_plus_k_in_both_forms(form):
  """N = 2^20 vectors, L = 8 codebooks of K = 65,536, D = 4, compiled only: all (N, K) scores
  would be 2 TiB; the temporaries must stay within a few copies of x (128 MiB) and one tile."""
  x = jax.ShapeDtypeStruct((1 << 20, 8, 4), jnp.float32)
  codebooks = jax.ShapeDtypeStruct((8, 1 << 16, 4), jnp.float32)
  search = jax.jit(lambda x, e: _nearest.search_slices(x, e, form=form))
  memory = search.lower(x, codebooks).compile().memory_analysis()
  assert memory.temp_size_in_bytes < 1 << 30, memory


@pytest.mark.parametrize("form", FORMS)
def test_vmapped_searches_match_the_brute_force(form):
  """A batch of codebook sets (k-means restarts, residual stages per slice) is folded into one
  batched search; each set must still get its own codes."""
  rng = np.random.default_rng(1)
  x = rng.integers(-3, 4, (3, 200, 2)).astype(np.float32)
  e = rng.integers(-3, 4, (3, 40, 2)).astype(np.float32)
  search = lambda x, e: q.nearest_codes(x, e, form=form)
  both = jax.jit(jax.vmap(search))(x, e)
  codebooks_only = jax.jit(jax.vmap(search, in_axes=(None, 0)))(x[0], e)
  rows_only = jax.jit(jax.vmap(search, in_axes=(0, None)))(x, e[0])
  for i in range(3):
    np.testing.assert_array_equal(both[i], brute_force_codes(x[i], e[i]))
    np.testing.assert_array_equal(codebooks_only[i], brute_force_codes(x[0], e[i]))
    np.testing.assert_array_equal(rows_only[i], brute_force_codes(x[i], e[0]))
  # multi-codebook slices under vmap: one x slice for G = 2 codebooks per set
  codes = jax.jit(jax.vmap(lambda x, e: _nearest.search_slices(x[:, None], e, form=form)))(
      x, np.stack([e, e[::-1]], 1))
  for i in range(3):
    np.testing.assert_array_equal(codes[i, :, 1], brute_force_codes(x[i], e[2 - i]))


def test_the_form_follows_the_backend_and_the_environment(monkeypatch):
  monkeypatch.delenv(_nearest.SEARCH_FORM_ENV, raising=False)
  assert q.search_form() == "two_pass"  # this suite runs on CPU
  for target in ("tpu", "gpu"):  # a step compiled ahead of time for an accelerator
    with backends.compiling_for(target):
      assert q.search_form() == "argmin"
  monkeypatch.setenv(_nearest.SEARCH_FORM_ENV, "argmin")
  assert q.search_form() == "argmin"
  monkeypatch.setenv(_nearest.SEARCH_FORM_ENV, "fused")
  with pytest.raises(ValueError, match=r"DVQ_NEAREST_SEARCH='fused' .*\['argmin', 'two_pass'\]"):
    q.nearest_codes(jnp.zeros((2, 3)), jnp.zeros((4, 3)))
  with pytest.raises(ValueError, match=r"form='fused' .*\['argmin', 'two_pass'\]"):
    q.nearest_codes(jnp.zeros((2, 3)), jnp.zeros((4, 3)), form="fused")


@pytest.mark.parametrize("flags", XLA_FLAGS)
def test_both_forms_are_exact_under_xla_flags(flags):
  """XLA_FLAGS is read once per process: each setting runs every case in a fresh one."""
  script = ("import json; from tests.test_nearest import CASES, FORMS, wrong_codes;"
            "print('REPORT', json.dumps({f'{f} {n}': wrong_codes(f, n) for f in FORMS"
            " for n in CASES}))")
  env = {**os.environ, "XLA_FLAGS": flags, "PYTHONPATH": str(ROOT)}
  proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True,
                        text=True, timeout=600, check=False)
  assert proc.returncode == 0, proc.stderr[-3000:]
  report = json.loads(proc.stdout.split("REPORT ", 1)[1])
  assert len(report) == len(FORMS) * len(CASES)
  assert not any(report.values()), report
