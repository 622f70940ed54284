r"""Training throughput of the paper's CIFAR-10 DVQ-VAE: images/s of one full train step.

Times the real step, `dvq_jax.vqvae.train.train_step` jitted with the state donated, for the
configs/cifar10.py model (hidden 256, residual 64, K=512, L=8, D=8, 32x32x3, default
upsampling `transpose_phases`) with the categorical256 and logistic_mixture heads at batch 32 and 128, on random
uint8 images. Prints, per setting, the compile time (lower + compile, then the first call), the
minimum and median of the steady-state steps, images/s, the model FLOPs per image from XLA's
`cost_analysis()` of the compiled step, the achieved FLOP/s and, given --peak_tflops, the MFU.

Then breaks the categorical256 batch-32 step down into (a) forward+backward of the full loss
(`objective.loss_fn`), (b) the model forward only, (c) the head's NLL and its gradient alone on
a fixed float32 head tensor (`likelihoods.nll`), (d) the full step with config.model.dtype =
"bfloat16" (skip with --no_bf16).

  PYTHONPATH=. python benchmarks/train_bench.py            # ~5 min on 2 CPU cores
  PYTHONPATH=. python benchmarks/train_bench.py --quick    # batch 32 only, fewer repeats
  PYTHONPATH=. python benchmarks/train_bench.py --peak_tflops 989   # on a GPU: prints MFU
"""

import argparse
import functools
import os
import statistics
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from dvq_jax.vqvae import likelihoods
from dvq_jax.vqvae import objective
from dvq_jax.training import loop
from dvq_jax.training import optim
from dvq_jax.vqvae import train
from dvq_jax.vqvae.model import build_model
from configs import cifar10

IMAGE_SHAPE = (32, 32, 3)


def _config(likelihood: str, dtype: str = "float32"):
  config = cifar10.get_config()
  config.likelihood = likelihood
  config.model.dtype = dtype
  return config


def _flops(compiled) -> float:
  """FLOPs of one call of a compiled function, from XLA's cost analysis (nan if absent)."""
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else {}
  return float((cost or {}).get("flops", float("nan")))


def _time(call: Callable[[], object], repeats: int) -> tuple[float, float]:
  """Min and median wall seconds of `repeats` calls, each blocked until ready."""
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    jax.block_until_ready(call())
    times.append(time.perf_counter() - start)
  return min(times), statistics.median(times)


def _images(batch: int, seed: int = 0) -> jax.Array:
  rng = np.random.default_rng(seed)
  return jnp.asarray(rng.integers(0, 256, (batch, *IMAGE_SHAPE), dtype=np.uint8))


def _setup(likelihood: str, batch: int, dtype: str = "float32"):
  config = _config(likelihood, dtype)
  model = build_model(config, IMAGE_SHAPE)
  tx = optim.make_optimizer(config)
  images = _images(batch)
  params = loop.initial_state(lambda key: model.init(key, images)["params"], jax.random.key(0),
                              None)
  state = {"step": jnp.int32(0), "params": params, "opt_state": tx.init(params)}
  return model, tx, images, state


def bench_step(likelihood: str, batch: int, repeats: int, dtype: str = "float32") -> dict:
  """Compile time, steady-state step time and FLOPs of the real jitted train step."""
  model, tx, images, state = _setup(likelihood, batch, dtype)
  step = jax.jit(functools.partial(train.train_step, model=model, tx=tx), donate_argnums=0)
  start = time.perf_counter()
  compiled = step.lower(state, images).compile()
  compile_s = time.perf_counter() - start
  start = time.perf_counter()
  state, metrics = compiled(state, images)
  jax.block_until_ready(metrics)
  first_s = time.perf_counter() - start
  state, metrics = jax.block_until_ready(compiled(state, images))  # one more warm-up step

  def call():
    nonlocal state
    state, out = compiled(state, images)
    return out

  best, median = _time(call, repeats)
  return {"likelihood": likelihood, "dtype": dtype, "batch": batch, "compile_s": compile_s,
          "first_call_s": first_s, "min_s": best, "median_s": median,
          "flops_per_image": _flops(compiled) / batch, "loss": float(metrics["loss"])}


def bench_breakdown(batch: int, repeats: int) -> dict[str, tuple[float, float, float]]:
  """(min s, median s, GFLOP per image) of the parts of the categorical256 step at `batch`."""
  model, _, images, state = _setup("categorical256", batch)
  params = state["params"]
  head = jax.jit(lambda p, x: model.apply({"params": p}, x).head)(params, images)
  fixed_head = jax.random.normal(jax.random.key(1), head.shape, jnp.float32)
  parts = {
      "(a) forward+backward of the full loss": (
          jax.value_and_grad(lambda p, x: objective.loss_fn(p, model, x), has_aux=True),
          params, images),
      "(b) model forward only": (
          lambda p, x: model.apply({"params": p}, x), params, images),
      "(c) head NLL + grad alone (fixed head)": (
          jax.value_and_grad(lambda h, x: jnp.mean(likelihoods.nll("categorical256", h, x))),
          fixed_head, images),
  }
  out = {}
  for name, (fn, first, x) in parts.items():
    compiled = jax.jit(fn).lower(first, x).compile()
    jax.block_until_ready(compiled(first, x))
    best, median = _time(lambda: compiled(first, x), repeats)  # pylint: disable=cell-var-from-loop
    out[name] = (best, median, _flops(compiled) / batch / 1e9)
  return out


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--quick", action="store_true", help="batch 32 only, 2 repeats")
  parser.add_argument("--repeats", type=int, default=None,
                      help="timed steps per setting (default 5 at batch 32, 3 above; 2 quick)")
  parser.add_argument("--peak_tflops", type=float, default=None,
                      help="the device's peak FLOP/s in TFLOP/s; prints MFU when given")
  parser.add_argument("--no_bf16", action="store_true", help="skip the bfloat16 step (d)")
  args = parser.parse_args()
  batches = (32,) if args.quick else (32, 128)

  def repeats(batch):
    if args.repeats:
      return args.repeats
    return 2 if args.quick else (5 if batch <= 32 else 3)

  load0, cpu0, wall0 = os.getloadavg(), os.times(), time.perf_counter()
  print(f"jax {jax.__version__}, backend {jax.default_backend()}, devices {jax.devices()}")
  print(f"load average at start: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}")
  print("\n| head | batch | compile s | first call s | step min s (median) | images/s (median)"
        " | GFLOP/image | achieved GFLOP/s" + (" | MFU" if args.peak_tflops else "") + " |")
  print("|---|---|---|---|---|---|---|---|" + ("---|" if args.peak_tflops else ""))
  results = []
  for likelihood in ("categorical256", "logistic_mixture"):
    for batch in batches:
      r = bench_step(likelihood, batch, repeats(batch))
      results.append(r)
      achieved = r["flops_per_image"] * batch / r["min_s"]
      row = (f"| {likelihood} | {batch} | {r['compile_s']:.1f} | {r['first_call_s']:.2f} |"
             f" {r['min_s']:.2f} ({r['median_s']:.2f}) | {batch / r['min_s']:.1f}"
             f" ({batch / r['median_s']:.1f}) | {r['flops_per_image'] / 1e9:.2f} |"
             f" {achieved / 1e9:.0f} |")
      if args.peak_tflops:
        row += f" {100 * achieved / (args.peak_tflops * 1e12):.1f}% |"
      print(row, flush=True)

  print("\nBreakdown, categorical256, batch 32 (min s (median)):")
  step32 = next(r for r in results if r["likelihood"] == "categorical256" and r["batch"] == 32)
  print(f"  full train step (forward+backward+Adam): {step32['min_s']:.3f}"
        f" ({step32['median_s']:.3f}), {step32['flops_per_image'] / 1e9:.2f} GFLOP/image")
  for name, (best, median, gflop) in bench_breakdown(32, repeats(32)).items():
    print(f"  {name}: {best:.3f} ({median:.3f}), {gflop:.3f} GFLOP/image,"
          f" {100 * best / step32['min_s']:.0f}% of the step time", flush=True)
  if not args.no_bf16:
    r = bench_step("categorical256", 32, repeats(32), dtype="bfloat16")
    print(f"  (d) full step, model.dtype=bfloat16: {r['min_s']:.3f} ({r['median_s']:.3f}),"
          f" {32 / r['min_s']:.1f} images/s, compile {r['compile_s']:.1f} s")

  cpu1, load1 = os.times(), os.getloadavg()
  wall = time.perf_counter() - wall0
  own_cpu = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
  print(f"\nwall {wall:.0f} s; this process used {own_cpu:.0f} CPU-s"
        f" ({own_cpu / wall:.2f} cores); load average at end: {load1[0]:.2f} {load1[1]:.2f}"
        f" {load1[2]:.2f}")


if __name__ == "__main__":
  main()
