"""Shared test helpers: one XLA compilation cache per test session, a runner for scripts on 8
simulated CPU devices, and a float64 numpy brute-force reference of the four quantizers."""

import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import numpy as np


def _share_compiled_programs() -> str | None:
  """Points JAX's persistent compilation cache at a fresh directory for this session.

  Many tests train the same tiny configs, in this process and in `python -m dvq_jax.main`
  subprocesses and notebook kernels (which inherit the environment); without a shared cache each
  of them compiles the same programs again, most of such a test's time on 2 cores. Set here, at
  import, so it precedes JAX's import in this process; pytest-xdist workers start after it and
  inherit the variables, so they share the directory of the process that made it. An executable
  read from the cache is the one XLA compiled, so bit-identity tests are unaffected. Returns the
  directory this process made (None if the user chose one), for `pytest_unconfigure` to remove.
  """
  if "JAX_COMPILATION_CACHE_DIR" in os.environ:
    return None
  path = tempfile.mkdtemp(prefix="dvq_jax_tests_xla_cache_")
  os.environ["JAX_COMPILATION_CACHE_DIR"] = path
  os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
  return path


_OWN_CACHE_DIR = _share_compiled_programs()


def pytest_unconfigure(config):  # pylint: disable=unused-argument
  if _OWN_CACHE_DIR is not None:
    shutil.rmtree(_OWN_CACHE_DIR, ignore_errors=True)


ROOT = pathlib.Path(__file__).resolve().parents[1]


def run_on_8_devices(script: str) -> subprocess.CompletedProcess:
  """Runs `python -c script` from the repository root on 8 simulated CPU devices (highest matmul
  precision), so that sharded and single-device results can be compared exactly."""
  env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=8",
         "JAX_DEFAULT_MATMUL_PRECISION": "highest", "PYTHONPATH": str(ROOT)}
  return subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True,
                        text=True, timeout=600)


def sq_distances(x: np.ndarray, e: np.ndarray) -> np.ndarray:
  """Squared distances `(N, K)` between rows of x `(N, D)` and e `(K, D)` in float64: exact for
  small-integer data, within ~1e-15 relative otherwise (far below float32 rounding)."""
  x, e = np.asarray(x, np.float64), np.asarray(e, np.float64)
  return np.sum(x * x, axis=1)[:, None] - 2.0 * x @ e.T + np.sum(e * e, axis=1)


def brute_force_codes(x: np.ndarray, e: np.ndarray) -> np.ndarray:
  """Nearest row of e for every row of x; np.argmin keeps the lowest index on exact ties."""
  return np.argmin(sq_distances(x, e), axis=-1)


def _split(kind: str, z: np.ndarray, codebooks: np.ndarray, slice_sizes):
  """The (x_l `(N, D_l)`, e_l `(K, D_l)`) pairs each quantizer pairs up, by the spec."""
  if kind == "vector":
    return [(z.reshape(-1, z.shape[-1]), codebooks)]
  if kind == "depthwise":
    sizes = slice_sizes or [codebooks.shape[-1]] * codebooks.shape[0]
    starts = np.cumsum([0, *sizes])
    flat = z.reshape(-1, z.shape[-1])
    return [(flat[:, s:s + n], cb[:, :n]) for s, n, cb in zip(starts, sizes, codebooks)]
  if kind == "multi":
    return [(z.reshape(-1, z.shape[-1]), cb) for cb in codebooks]
  assert kind == "spatial"
  groups = np.split(z, len(codebooks), axis=1)
  return [(g.reshape(-1, z.shape[-1]), cb) for g, cb in zip(groups, codebooks)]


def _join(kind: str, parts: list, z: np.ndarray) -> np.ndarray:
  """Inverse of `_split` for per-vector arrays (codes `(N,)` or vectors `(N, D_l)`)."""
  batch = z.shape[:-1]
  if kind == "vector":
    return parts[0].reshape(batch + parts[0].shape[1:])
  if kind in ("depthwise", "multi"):
    if parts[0].ndim == 1:
      return np.stack(parts, axis=-1).reshape(batch + (len(parts),))
    return np.concatenate(parts, axis=-1).reshape(batch + (-1,))
  return np.concatenate([p.reshape((z.shape[0], -1) + p.shape[1:]) for p in parts], axis=1)


def reference_quantize(kind: str, z, codebooks, *, slice_sizes=None, beta: float = 0.25) -> dict:
  """Every quantizer output plus the analytic Eq. 4 gradients, by brute force in float64.

  The losses are means over latent positions of the squared error summed over the vector's
  features, summed over the codebooks a position uses: all L for depthwise/multi, one for
  vector/spatial (spatial: a mean over all B*P positions, i.e. the mean of the L group means).
  `grad_codebooks` is d codebook_loss / d codebooks: (2/N) sum_{n: c_n = k} (e_k - z_n) per
  codebook (zero on padded entries); `grad_z` is d commitment_loss / d z: (2/N) (z_n - e_{c_n});
  N = number of positions.
  """
  z, codebooks = np.asarray(z, np.float64), np.asarray(codebooks, np.float64)
  codes, chosen, grad_x, grad_e, losses, perplexity, usage = [], [], [], [], [], [], []
  for x, e in _split(kind, z, codebooks, slice_sizes):
    c = brute_force_codes(x, e)
    k = len(e)
    n = len(x) * (len(codebooks) if kind == "spatial" else 1)  # positions in z
    residual = x - e[c]
    counts = np.bincount(c, minlength=k)
    probs = counts[counts > 0] / len(x)
    g = np.zeros(codebooks.shape[-2:])
    np.add.at(g[:, :e.shape[1]], c, -2.0 / n * residual)
    codes.append(c)
    chosen.append(e[c])
    grad_x.append(2.0 / n * residual)
    grad_e.append(g)
    losses.append(np.sum(np.square(residual)) / n)
    perplexity.append(np.exp(-np.sum(probs * np.log(probs))))
    usage.append(np.count_nonzero(counts) / k)
  grad_z = _join(kind, grad_x, z)
  if kind == "multi":  # L gradients of the same z
    grad_z = grad_z.reshape(z.shape[:-1] + (len(codebooks), -1)).sum(axis=-2)
  loss = float(np.sum(losses))
  return dict(
      codes=_join(kind, codes, z),
      quantized=_join(kind, chosen, z),
      codebook_loss=loss,
      commitment_loss=loss,
      loss=(1.0 + beta) * loss,
      perplexity=np.array(perplexity),
      usage=np.array(usage),
      grad_codebooks=grad_e[0] if kind == "vector" else np.stack(grad_e),
      grad_z=grad_z,
  )


def rotation_matrix(z: np.ndarray, e: np.ndarray) -> np.ndarray:
  """The rotation trick's lambda R `(D, D)` for one vector pair (Fifty et al. 2024): the
  rotation taking z's direction to e's, scaled by |e| / |z|, so lambda R z = e."""
  z_hat, e_hat = z / np.linalg.norm(z), e / np.linalg.norm(e)
  r = (z_hat + e_hat) / np.linalg.norm(z_hat + e_hat)
  eye = np.eye(len(z))
  return np.linalg.norm(e) / np.linalg.norm(z) * (eye - 2 * np.outer(r, r)
                                                  + 2 * np.outer(e_hat, z_hat))
