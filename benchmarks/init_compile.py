r"""Compile time of a VQ-VAE's train-state init: XLA's default against the loop's CPU options.

`training.loop.initial_state` compiles init at LLVM -O1 on CPU (init runs once per run, so its
compile time is what counts). For each config this compiles `model.init` both ways, without
the persistent cache (compile + one run, timed), and checks that the params are bit-identical:

  PYTHONPATH=. python benchmarks/init_compile.py configs/demo.py configs/cifar10.py \
      configs/cifar10.py:official configs/demo.py:small
"""

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from dvq_jax.training import loop
from dvq_jax.vqvae.model import build_model
from tests import config_files


def _timed(make_state, init, key):
  """Seconds to compile and run `init` once (no cache: the run itself is milliseconds)."""
  start = time.perf_counter()
  state = jax.block_until_ready(make_state(init, key))
  return time.perf_counter() - start, jax.tree.leaves(state)


def _default(init, key):
  return jax.jit(init)(key)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("configs", nargs="+", help="config files, e.g. configs/demo.py:small")
  args = parser.parse_args()
  jax.config.update("jax_enable_compilation_cache", False)
  print(f"jax {jax.__version__}, {jax.default_backend()}, {os.cpu_count()} CPUs,"
        f" load {os.getloadavg()[0]:.2f}")
  print("| config | params | default compile s | loop.initial_state compile s | speed-up |"
        " params identical |")
  print("|---|---|---|---|---|---|")
  for name in args.configs:
    config = config_files.load(name)
    model = build_model(config)
    images = jnp.zeros((1, 32, 32, 3), jnp.uint8)
    init = lambda key, model=model, images=images: model.init(key, images)["params"]
    key = jax.random.key(config.seed)
    default_s, default = _timed(_default, init, key)
    fast_s, fast = _timed(lambda f, k: loop.initial_state(f, k, None), init, key)
    identical = all(np.array_equal(a, b) for a, b in zip(default, fast, strict=True))
    size = sum(leaf.size for leaf in default)
    print(f"| {name} | {size:,} | {default_s:.2f} | {fast_s:.2f} | {default_s / fast_s:.1f}x |"
          f" {identical} |", flush=True)


if __name__ == "__main__":
  main()
