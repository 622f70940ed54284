"""Peak memory of `depthwise_quantize` forward where an (L, N, K) distance matrix cannot exist.

N = 1,048,576 vectors, L = 8 codebooks of K = 65,536 codes, D = 4 (so z is (N, 32) float32,
128 MiB). The full distance matrix would be L*N*K*4 bytes = 2 TiB; the nearest-code kernel
streams it in blocks, so the process must stay far below 4 GB of resident memory.

    python benchmarks/quantizer_memory.py            # the full size, several minutes on 2 cores
    python benchmarks/quantizer_memory.py --vectors 65536   # a quick smaller run
"""

import argparse
import datetime
import platform
import resource
import time

import jax
import jax.numpy as jnp
import numpy as np
import psutil

from dvq_jax.quantizers import depthwise_quantize

LIMIT_BYTES = 4 * 10**9


def peak_rss_bytes() -> int:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--vectors", type=int, default=1 << 20, help="N")
  parser.add_argument("--codebooks", type=int, default=8, help="L")
  parser.add_argument("--codes", type=int, default=1 << 16, help="K")
  parser.add_argument("--dim", type=int, default=4, help="D per codebook")
  args = parser.parse_args()
  num, levels, size, dim = args.vectors, args.codebooks, args.codes, args.dim
  print(f"# quantizer_memory: N={num} vectors, L={levels}, K={size}, D={dim};"
        f" {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC;"
        f" {psutil.cpu_count()} CPUs,"
        f" python {platform.python_version()}, jax {jax.__version__}")

  key_z, key_e = jax.random.split(jax.random.key(0))
  z = jax.random.normal(key_z, (num, levels * dim), jnp.float32)
  codebooks = jax.random.normal(key_e, (levels, size, dim), jnp.float32)
  forward = jax.jit(lambda z, e: depthwise_quantize(z, e))
  start = time.perf_counter()
  compiled = forward.lower(z, codebooks).compile()
  compile_s = time.perf_counter() - start
  rss_before = peak_rss_bytes()
  start = time.perf_counter()
  out = jax.block_until_ready(compiled(z, codebooks))
  run_s = time.perf_counter() - start
  peak = peak_rss_bytes()

  distances = num * levels * size
  print(f"full distance matrix would be {4 * distances / 2**40:.3f} TiB")
  print(f"compile {compile_s:.1f} s; forward {run_s:.1f} s"
        f" ({distances / run_s / 1e9:.2f} G distances/s,"
        f" {2 * distances * dim / run_s / 1e9:.1f} GFLOP/s)")
  print(f"peak RSS {peak / 2**30:.2f} GiB (before the forward call: {rss_before / 2**30:.2f} GiB);"
        f" limit {LIMIT_BYTES / 1e9:.0f} GB: {'OK' if peak < LIMIT_BYTES else 'EXCEEDED'}")
  print(f"codes {out.codes.shape}, perplexity {np.round(np.asarray(out.perplexity), 1).tolist()}")


if __name__ == "__main__":
  main()
