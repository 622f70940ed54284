r"""Sampling speed of the code prior: tokens/s with the KV cache and without it.

Times `dvq_jax.prior.sampling.sample_tokens` (one jitted `lax.fori_loop` over the T tokens) for
the configs/prior.py model (width 128, depth 4, heads 4) over the demo VQ-VAE's code grid
(8x8 positions, L = 4, K = 64: T = 256), with random parameters (speed does not depend on
training). With the cache each token attends once over the cached keys; without it every token
reruns the teacher-forced model on the whole sequence (T times the work). Prints compile time
and the minimum and median wall time of the repeats, and tokens/s = num_samples * T / time.

  PYTHONPATH=. python benchmarks/prior_sampling_bench.py
  PYTHONPATH=. python benchmarks/prior_sampling_bench.py --quick   # fewer repeats, batch 16
  PYTHONPATH=. python benchmarks/prior_sampling_bench.py --grid=4  # 4x4 positions: T = 64
  PYTHONPATH=. python benchmarks/prior_sampling_bench.py --sampler=no_cache --num_samples=4 --repeats=1
"""

import argparse
import os
import statistics
import time

import jax
import jax.numpy as jnp

import results_file
from configs import prior as prior_config
from dvq_jax.prior import sampling
from dvq_jax.prior.model import CodePrior
from dvq_jax.training import loop


def _model(grid, num_codebooks, codebook_size):
  config = prior_config.get_config()
  return CodePrior(codebook_size=codebook_size, num_codebooks=num_codebooks, grid=grid,
                   width=config.model.width, depth=config.model.depth, heads=config.model.heads)


def _bench(model, params, num_samples, use_cache, repeats):
  call = lambda seed: sampling.sample_tokens(
      params, jax.random.key(seed), jnp.float32(1.0), model=model, num_samples=num_samples,
      use_cache=use_cache).block_until_ready()
  start = time.perf_counter()
  call(0)
  compile_s = time.perf_counter() - start
  times = []
  for seed in range(1, repeats + 1):
    start = time.perf_counter()
    call(seed)
    times.append(time.perf_counter() - start)
  tokens = num_samples * model.ordering.num_tokens
  return compile_s, min(times), statistics.median(times), tokens / min(times)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true")
  parser.add_argument("--num_samples", type=int, default=None, help="default 16 with --quick,"
                      " else 64")
  parser.add_argument("--grid", type=int, default=8, help="h = w positions (demo: 8)")
  parser.add_argument("--sampler", choices=("both", "cache", "no_cache"), default="both")
  parser.add_argument("--repeats", type=int, default=0, help="0 = 2 with --quick, else 5")
  results_file.add_flag(parser)
  args = parser.parse_args()
  repeats = args.repeats or (2 if args.quick else 5)
  num_samples = args.num_samples or (16 if args.quick else 64)
  model = _model((args.grid, args.grid), 4, 64)
  tokens = jnp.zeros((1, model.ordering.num_tokens), jnp.int32)
  params = loop.initial_state(lambda key: model.init(key, tokens)["params"], jax.random.key(0),
                              None)
  print(f"jax {jax.__version__} on {jax.devices()[0].platform}, load {os.getloadavg()[0]:.2f},"
        f" T = {model.ordering.num_tokens}, batch {num_samples}")
  print("| sampler | compile s | min s | median s | tokens/s |\n|---|---|---|---|---|")
  samplers = {"both": (True, False), "cache": (True,), "no_cache": (False,)}[args.sampler]
  rows = []
  for use_cache in samplers:
    compile_s, best, median, rate = _bench(model, params, num_samples, use_cache, repeats)
    name = "KV cache" if use_cache else "no cache (full forward per token)"
    print(f"| {name} | {compile_s:.1f} | {best:.2f} | {median:.2f} | {rate:,.0f} |", flush=True)
    rows.append({"sampler": "cache" if use_cache else "no_cache", "compile_s": compile_s,
                 "min_s": best, "median_s": median, "tokens_per_s": rate})
  print(f"load after {os.getloadavg()[0]:.2f}")
  results_file.write(args.output, rows, batch=num_samples, tokens=model.ordering.num_tokens,
                     repeats=repeats)


if __name__ == "__main__":
  main()
