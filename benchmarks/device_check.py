r"""Accelerator readiness check: train-step throughput/MFU and the nearest-code search forms.

Prints, for the backend JAX finds (GPU, TPU or CPU):
  1. configs/cifar10.py's real train step (`dvq_jax.vqvae.train.train_step`, jitted, state
     donated, batch sharded over the local devices as `training.loop` runs it) at batch 128
     and 512 in float32 and bfloat16 (`config.model.dtype`): step time, images/s, XLA's FLOPs
     per step (`cost_analysis`), MFU = those FLOPs / step time / the device's peak
     (`PEAK_TFLOPS` below, or --peak_tflops_fp32/--peak_tflops_bf16), and, on a chip
     `dvq_jax.plan` knows, its roofline bound from the same program's FLOPs and bytes (what
     `python -m dvq_jax.plan --topology=h100` estimates without a GPU).
  2. Depthwise quantization forward+backward (straight-through, codebook and commitment losses,
     gradients w.r.t. z and the codebooks) at S1 (N 8192, L 8, D 32, K 512) and at (N 262144,
     L 8, D 32, K 4096) for
       argmin, two_pass: `dvq_jax.quantizers.depthwise_quantize` with each search form
         (`DVQ_NEAREST_SEARCH`; see `dvq_jax/quantizers/_nearest.py`): the backend's default
         should be the faster;
       plain_argmin: `plain_depthwise_quantize` below, one batched distance einsum
         `(L, N, K)` and `jnp.argmin`, the textbook reference (it holds L*N*K floats, 34 GB at
         the large size).
     All must choose the same codes.
`--small` (or DVQ_DEVICE_CHECK_SMALL=1) shrinks everything (one batch size) so the script runs
in about half a minute on CPU (tests/test_device_check.py runs it that way so it cannot rot).
The full check is sized for < 5 minutes on one GPU/TPU:

  bash benchmarks/device_check.sh           # on the accelerator host
  bash benchmarks/device_check.sh --small   # anywhere
"""

import argparse
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

from configs import cifar10
from dvq_jax import quantizers as q
from dvq_jax.plan import chips
from dvq_jax.plan import roofline
from dvq_jax.quantizers import _nearest
from dvq_jax.training import loop
from dvq_jax.training import sharding
from dvq_jax.vqvae import train

# Dense peak TFLOP/s by device_kind substring: (float32 as XLA runs it, bfloat16). On NVIDIA
# GPUs XLA runs float32 matmuls/convs as TF32 by default, so the float32 peak is TF32's.
PEAK_TFLOPS = {
    "H200": (495.0, 989.0), "H100": (495.0, 989.0), "A100": (156.0, 312.0),
    "L4": (60.0, 121.0), "TPU v4": (137.5, 275.0), "TPU v5 lite": (98.5, 197.0),
    "TPU v5e": (98.5, 197.0), "TPU v5p": (229.5, 459.0), "TPU v6": (459.0, 918.0),
}
FULL = {"batches": (128, 512), "quantizer": ((8192, 8, 32, 512), (262144, 8, 32, 4096)),
        "repeats": 10}
SMALL = {"batches": (4,), "quantizer": ((256, 2, 8, 16), (1024, 2, 8, 64)), "repeats": 2}


def plain_depthwise_quantize(z: jax.Array, codebooks: jax.Array, beta: float):
  """DVQ with a plain search: `(N, L*D)` z, `(L, K, D)` codebooks -> (quantized, codes, loss).

  Distances ||e||^2 - 2 x.e for all L codebooks at once, `jnp.argmin` over K; the losses are
  `depthwise_quantize`'s (per codebook: mean over vectors of the squared norm, summed over L).
  """
  num_codebooks, _, dim = codebooks.shape
  x = z.reshape(-1, num_codebooks, dim).transpose(1, 0, 2)  # (L, N, D)
  sg = jax.lax.stop_gradient
  scores = jnp.sum(sg(codebooks) ** 2, -1)[:, None, :] - 2 * jnp.einsum(
      "lnd,lkd->lnk", sg(x), sg(codebooks), precision=jax.lax.Precision.HIGHEST)
  codes = jnp.argmin(scores, axis=-1)  # (L, N)
  chosen = jnp.take_along_axis(codebooks, codes[..., None], axis=1)  # (L, N, D)
  codebook_loss = jnp.sum(jnp.mean(jnp.sum((sg(x) - chosen) ** 2, -1), -1))
  commitment_loss = jnp.sum(jnp.mean(jnp.sum((x - sg(chosen)) ** 2, -1), -1))
  quantized = (sg(chosen) + x - sg(x)).transpose(1, 0, 2).reshape(z.shape)
  return quantized, codes.T, codebook_loss + beta * commitment_loss


def _library(z, codebooks, beta):
  out = q.depthwise_quantize(z, codebooks, beta=beta)
  return out.quantized, out.codes, out.loss


def _time(fn, args, repeats: int) -> tuple[float, float]:
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return min(times), statistics.median(times)


def _cost(compiled, key: str) -> float:
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else {}
  return float((cost or {}).get(key, float("nan")))


def _flops(compiled) -> float:
  return _cost(compiled, "flops")


def check_train_step(batch: int, dtype: str, small: bool, repeats: int, peak: float | None):
  config = cifar10.get_config("small" if small else None)
  config.model.dtype = dtype
  config.batch_size = batch
  # The trainer's own state and step, jitted as the loop jits them, over every local device.
  _, init_state, step = train.training_parts(config, (32, 32, 3))
  mesh = sharding.make_mesh()
  _, state_sharding = loop.abstract_state(init_state, jax.random.key(0), mesh)
  state = loop.initial_state(init_state, jax.random.key(0), state_sharding)
  rng = np.random.default_rng(0)
  images = sharding.global_batch(mesh, rng.integers(0, 256, (batch, 32, 32, 3), dtype=np.uint8))
  start = time.perf_counter()
  compiled = loop.jit_train_step(step, mesh, state_sharding).lower(state, images).compile()
  compile_s = time.perf_counter() - start
  flops = _flops(compiled)
  times = []
  for i in range(repeats + 2):
    start = time.perf_counter()
    state, metrics = compiled(state, images)
    jax.block_until_ready(metrics["loss"])
    if i >= 2:  # two warm-up steps
      times.append(time.perf_counter() - start)
  assert np.isfinite(float(metrics["loss"])), "train step gave a non-finite loss"
  median = statistics.median(times)
  # FLOPs are the compiled program's (per device); MFU is measured FLOP/s over the peak.
  mfu = f"{100 * flops / median / (peak * 1e12):.1f}%" if peak else "n/a (peak unknown)"
  chip = chips.chip_for_device_kind(jax.devices()[0].device_kind)
  bound = ""
  if chip is not None:
    r = roofline.roofline(flops, _cost(compiled, "bytes accessed"), batch, chip)
    bound = f" roofline {r.step_seconds * 1e3:.1f} ms, MFU <= {100 * r.mfu:.1f}% |"
  print(f"| train step | {dtype} | batch {batch} | {median * 1e3:.1f} ms | {batch / median:.1f}"
        f" images/s | {flops / 1e9:.1f} GFLOP/step | MFU {mfu} |{bound} compile"
        f" {compile_s:.1f} s |", flush=True)


def check_quantizer(n: int, num_codebooks: int, dim: int, k: int, repeats: int) -> None:
  z = jax.random.normal(jax.random.key(0), (n, num_codebooks * dim), jnp.float32)
  codebooks = q.init_codebooks(jax.random.key(1), num_codebooks, k, dim)
  cotangent = jax.random.normal(jax.random.key(2), z.shape, jnp.float32)
  codes = {}
  forms = [(form, _library) for form in _nearest.SEARCH_FORMS]
  for name, fn in forms + [("plain_argmin", plain_depthwise_quantize)]:
    # Read when the search is traced, i.e. at the first call of the functions made below.
    os.environ[_nearest.SEARCH_FORM_ENV] = name if fn is _library else ""

    def loss(z, codebooks, fn=fn):
      quantized, _, vq_loss = fn(z, codebooks, 0.25)
      return jnp.sum(quantized * cotangent) + vq_loss
    fwd_bwd = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
    try:
      best, median = _time(fwd_bwd, (z, codebooks), repeats)
      codes[name] = np.asarray(jax.jit(lambda z, c, fn=fn: fn(z, c, 0.25)[1])(z, codebooks))
    except Exception as e:  # pylint: disable=broad-except  # e.g. out of memory: report it
      print(f"| quantizer {name} | N {n} L {num_codebooks} D {dim} K {k} | failed:"
            f" {type(e).__name__}: {str(e).splitlines()[0][:120]} |", flush=True)
      continue
    print(f"| quantizer {name} | N {n} L {num_codebooks} D {dim} K {k} | fwd+bwd min"
          f" {best * 1e3:.2f} ms, median {median * 1e3:.2f} ms |", flush=True)
  os.environ.pop(_nearest.SEARCH_FORM_ENV)
  for name in _nearest.SEARCH_FORMS:
    if name in codes and "plain_argmin" in codes:
      same = float(np.mean(codes[name] == codes["plain_argmin"]))
      print(f"|   {name} vs plain_argmin, same codes: {100 * same:.3f}% |", flush=True)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--small", action="store_true",
                      default=os.environ.get("DVQ_DEVICE_CHECK_SMALL", "") not in ("", "0"))
  parser.add_argument("--peak_tflops_fp32", type=float, default=None)
  parser.add_argument("--peak_tflops_bf16", type=float, default=None)
  args = parser.parse_args()
  sizes = SMALL if args.small else FULL
  device = jax.devices()[0]
  kind = getattr(device, "device_kind", str(device))
  peaks = next((v for key, v in PEAK_TFLOPS.items() if key.lower() in kind.lower()), (None, None))
  peaks = (args.peak_tflops_fp32 or peaks[0], args.peak_tflops_bf16 or peaks[1])
  print(f"jax {jax.__version__}, backend {jax.default_backend()}, {len(jax.devices())} x {kind};"
        f" peak TFLOP/s fp32 {peaks[0]}, bf16 {peaks[1]}; {'small' if args.small else 'full'}"
        f" sizes; load {os.getloadavg()[0]:.2f}", flush=True)
  start = time.perf_counter()
  for batch in sizes["batches"]:
    for dtype, peak in (("float32", peaks[0]), ("bfloat16", peaks[1])):
      check_train_step(batch, dtype, args.small, sizes["repeats"], peak)
  for n, num_codebooks, dim, k in sizes["quantizer"]:
    check_quantizer(n, num_codebooks, dim, k, sizes["repeats"])
  print(f"device check done in {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
  main()
