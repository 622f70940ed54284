r"""Compile time of random draws, shaped (`jax.random`) against flat (`dvq_jax.flat_random`).

XLA:CPU compiles a threefry draw of a multi-dimensional shape far more slowly than the same
values drawn as a vector and reshaped (bit-identical: tests/test_flat_random.py). Part 1 times
one compile of each, alternating, for the conv-kernel and codebook shapes of the small configs;
part 2 times a small VQ-VAE's `model.init` (eager, and under one `jax.jit`) as the library
builds it, so running this script at two commits compares the models (`--model_only` runs at
a commit without `dvq_jax.flat_random`). No persistent cache:

  PYTHONPATH=. python benchmarks/random_draw_compile.py
"""

import argparse
import os
import time

import jax
import jax.numpy as jnp

# Conv kernels of configs/demo.py:small and the VQVAE docstring model, a codebook, a Dense.
SHAPES = [(3, 3, 8, 9), (4, 4, 16, 30), (3, 3, 16, 8), (4, 4, 3, 8), (2, 16, 4), (100, 9)]


def _compile_s(fn, shape) -> float:
  fresh = lambda key, shape: fn(key, shape)  # a new function: no in-memory cache hit
  start = time.perf_counter()
  jax.jit(fresh, static_argnums=1).lower(jax.random.key(0), shape).compile()
  return time.perf_counter() - start


def _draws(rounds: int) -> None:
  from dvq_jax import flat_random  # pylint: disable=g-import-not-at-top
  shaped = lambda key, shape: jax.random.truncated_normal(key, -2.0, 2.0, shape)
  flat = lambda key, shape: flat_random.truncated_normal(key, -2.0, 2.0, shape)
  print("| shape | jax.random compile s (mean) | flat_random compile s (mean) | ratio |")
  print("|---|---|---|---|")
  for shape in SHAPES:
    times = {"shaped": [], "flat": []}
    for _ in range(rounds):  # alternate, so load drift hits both alike
      times["shaped"].append(_compile_s(shaped, shape))
      times["flat"].append(_compile_s(flat, shape))
    a, b = (sum(t) / len(t) for t in (times["shaped"], times["flat"]))
    print(f"| {shape} | {a:.2f} | {b:.2f} | {a / b:.1f}x |", flush=True)


def _model_init() -> None:
  from dvq_jax.vqvae.model import VQVAE  # pylint: disable=g-import-not-at-top
  model = VQVAE("dvq", num_codebooks=2, codebook_size=8, codebook_dim=2, beta=0.25,
                likelihood="mse", hidden_channels=8, residual_channels=4)  # its docstring's
  images = jnp.zeros((1, 8, 8, 3), jnp.uint8)
  init = lambda key: model.init(key, images)["params"]
  for name, fn in (("eager model.init", init), ("jax.jit(model.init)", jax.jit(init))):
    start = time.perf_counter()
    jax.block_until_ready(fn(jax.random.key(0)))
    print(f"{name}: {time.perf_counter() - start:.2f} s", flush=True)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--rounds", type=int, default=2)
  parser.add_argument("--model_only", action="store_true")
  args = parser.parse_args()
  jax.config.update("jax_enable_compilation_cache", False)
  print(f"jax {jax.__version__}, {jax.default_backend()}, {os.cpu_count()} CPUs,"
        f" load {os.getloadavg()[0]:.2f}")
  if not args.model_only:
    _draws(args.rounds)
  _model_init()


if __name__ == "__main__":
  main()
