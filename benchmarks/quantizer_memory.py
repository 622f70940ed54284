"""Peak memory of a quantizer where an (L, N, K) distance matrix cannot exist.

N = 1,048,576 vectors, L = 8 codebooks of K = 65,536 codes, D = 4 (so z is (N, 32) float32,
128 MiB). The full distance matrix would be L*N*K*4 bytes = 2 TiB; the nearest-code kernel
streams it in blocks, so the process must stay far below 4 GB of resident memory.

    python benchmarks/quantizer_memory.py            # the full size, several minutes on 2 cores
    python benchmarks/quantizer_memory.py --vectors 65536   # a quick smaller run

`--family rvq` times `residual_quantize` instead (z (N, D), L stages of K codes: each stage's
search is blocked like DVQ's), `--family lfq` `lookup_free_quantize` on z (N, log2 K) (its batch
entropy needs the (N, K) soft assignment, streamed in row blocks), `bsq`
`binary_spherical_quantize` likewise, `rlfq` `residual_lookup_free_quantize` (L stages of
log2 K bits), `rfsq` `residual_finite_scalar_quantize` (L stages, levels (8, 5, 5, 5)), `simvq`
DVQ over `simvq_codebook` (L bases of K codes and L (D, D) maps), `stochastic` DVQ with
`stochastic_quantize` codes (Gumbel-softmax relaxation, row-blocked) and `entropy` DVQ plus
`codebook_entropy_penalty` on every slice (row-blocked); `--grad` measures
forward+backward of sum(quantized) + loss instead of the forward alone. `--family` takes a
comma-separated list: each family then runs in its own process (a clean peak RSS) and
`--output` gets one row per family.

    python benchmarks/quantizer_memory.py --vectors 262144 --codes 1024 --grad --family lfq,bsq
"""

import argparse
import datetime
import json
import pathlib
import platform
import resource
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import psutil

import results_file
from dvq_jax import quantizers

LIMIT_BYTES = 4 * 10**9
FAMILIES = ("dvq", "rvq", "lfq", "bsq", "rlfq", "rfsq", "simvq", "stochastic", "entropy")


def peak_rss_bytes() -> int:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--vectors", type=int, default=1 << 20, help="N")
  parser.add_argument("--codebooks", type=int, default=8, help="L")
  parser.add_argument("--codes", type=int, default=1 << 16, help="K")
  parser.add_argument("--dim", type=int, default=4, help="D per codebook")
  parser.add_argument("--family", default="dvq", help="one of " + ", ".join(FAMILIES)
                      + ", or several, comma-separated")
  parser.add_argument("--grad", action="store_true", help="forward+backward, not forward alone")
  results_file.add_flag(parser)
  args = parser.parse_args()
  families = args.family.split(",")
  if unknown := [f for f in families if f not in FAMILIES]:
    parser.error(f"--family {','.join(unknown)}: choose from {', '.join(FAMILIES)}")
  if len(families) > 1:
    return each_in_its_process(families, args.output)
  num, levels, size, dim = args.vectors, args.codebooks, args.codes, args.dim
  # The residual families run L stages (rvq: its L codebooks); the others one.
  stages = levels if args.family in ("rvq", "rlfq", "rfsq") else 1
  if args.family in ("lfq", "bsq", "rlfq"):
    levels, dim = 1, size.bit_length() - 1
    if 1 << dim != size or dim > 16:
      parser.error(f"--family {args.family} needs --codes a power of two <= 65536, not {size}")
  if args.family == "rfsq":
    levels, dim, size = 1, 4, 1000
  print(f"# quantizer_memory {args.family}{' fwd+bwd' if args.grad else ' fwd'}: N={num} vectors,"
        f" L={levels}, K={size}, D={dim};"
        f" {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC;"
        f" {psutil.cpu_count()} CPUs,"
        f" python {platform.python_version()}, jax {jax.__version__}")

  key_z, key_e = jax.random.split(jax.random.key(0))
  width = dim if args.family == "rvq" else levels * dim
  z = jax.random.normal(key_z, (num, width), jnp.float32)
  codebooks = jax.random.normal(key_e, (levels, size, dim), jnp.float32)
  if args.family == "simvq":  # the learned maps, one per slice; the bases are `codebooks`
    codebooks = (codebooks, jnp.broadcast_to(jnp.eye(dim), (levels, dim, dim)))
  slices = lambda z: z.reshape(num, levels, dim)
  quantize = {
      "dvq": quantizers.depthwise_quantize,
      "rvq": quantizers.residual_quantize,
      "lfq": lambda z, e: quantizers.lookup_free_quantize(z),
      "bsq": lambda z, e: quantizers.binary_spherical_quantize(z),
      "rlfq": lambda z, e: quantizers.residual_lookup_free_quantize(z, stages),
      "rfsq": lambda z, e: quantizers.residual_finite_scalar_quantize(z, (8, 5, 5, 5), stages),
      "simvq": lambda z, e: quantizers.depthwise_quantize(z, quantizers.simvq_codebook(*e)),
      "stochastic": lambda z, e: quantizers.depthwise(quantizers.stochastic_quantize, levels)(
          z, e, key=jax.random.key(1), relaxation="gumbel_softmax"),
      "entropy": lambda z, e: (lambda out: out._replace(loss=out.loss + jnp.sum(jax.vmap(
          quantizers.codebook_entropy_penalty, in_axes=(1, 0))(slices(z), e))))(
              quantizers.depthwise_quantize(z, e)),
  }[args.family]
  if args.grad:
    def objective(z, e):
      out = quantize(z, e)
      return jnp.sum(out.quantized) + out.loss, out
    forward = jax.jit(jax.grad(objective, argnums=(0, 1), has_aux=True))
  else:
    forward = jax.jit(quantize)
  start = time.perf_counter()
  compiled = forward.lower(z, codebooks).compile()
  compile_s = time.perf_counter() - start
  rss_before = peak_rss_bytes()
  start = time.perf_counter()
  out = jax.block_until_ready(compiled(z, codebooks))
  if args.grad:
    out = out[1]
  run_s = time.perf_counter() - start
  peak = peak_rss_bytes()

  distances = num * max(levels, 1) * size
  print(f"full distance matrix would be {4 * distances / 2**40:.3f} TiB")
  print(f"compile {compile_s:.1f} s; {'forward+backward' if args.grad else 'forward'} {run_s:.1f} s"
        f" ({distances / run_s / 1e9:.2f} G distances/s,"
        f" {2 * distances * dim / run_s / 1e9:.1f} GFLOP/s)")
  print(f"peak RSS {peak / 2**30:.2f} GiB (before the forward call: {rss_before / 2**30:.2f} GiB);"
        f" limit {LIMIT_BYTES / 1e9:.0f} GB: {'OK' if peak < LIMIT_BYTES else 'EXCEEDED'}")
  print(f"codes {out.codes.shape}, perplexity {np.round(np.asarray(out.perplexity), 1).tolist()}")
  results_file.write(args.output, [{
      "family": args.family, "grad": args.grad, "vectors": num,
      "codebooks": 1 if args.family == "rvq" else levels,
      "stages": stages,
      "codes": size, "dim": dim, "dense_distances_gib": 4 * distances / 2**30,
      "compile_s": compile_s, "run_s": run_s,
      "peak_rss_gib": peak / 2**30, "rss_before_gib": rss_before / 2**30}])


def each_in_its_process(families: list[str], output: str | None) -> None:
  """Runs this script once a family, in a fresh process each, and writes their rows together."""
  rows = []
  argv = sys.argv[1:]
  for family in families:
    with tempfile.TemporaryDirectory() as tmp:
      path = f"{tmp}/rows.json"
      command = [sys.executable, __file__, *_replace_flags(argv, family, path)]
      subprocess.run(command, check=True)
      rows += json.loads(pathlib.Path(path).read_text(encoding="utf-8"))["rows"]
  results_file.write(output, rows)


def _replace_flags(argv: list[str], family: str, output: str) -> list[str]:
  """`argv` with `--family` set to one family and `--output` to a file of its own."""
  kept, skip = [], False
  for arg in argv:
    if skip:
      skip = False
    elif arg in ("--family", "--output"):
      skip = True
    elif not arg.startswith(("--family=", "--output=")):
      kept.append(arg)
  return [*kept, f"--family={family}", f"--output={output}"]


if __name__ == "__main__":
  main()
