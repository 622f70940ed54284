"""The nearest-code search forms: time on this backend, or memory when compiled for a TPU.

Times `search_slices` (the search of `depthwise_quantize`, L codebooks) in each form, the forms
taking turns round after round so that load drift hits all alike; reports the best and median
wall time of each and whether its codes equal the first form's. The forms:

* `two_pass`, `argmin`: `dvq_jax.quantizers._nearest`'s two forms (the module docstring);
* `fused`: a baseline that is fast on XLA:CPU but not exact: per codebook, one fusion of the
  x.e matmul and two min-reductions, the second over `iota + K * sign(score - min)`, streams the
  distance tile through cache without writing it. The second reduction recomputes the scores,
  and when the compiler rounds them differently there
  (`XLA_FLAGS=--xla_backend_optimization_level=0`) it returns wrong codes.

`--aot_topology v5e:1x1` instead compiles the forms ahead of time for that one-chip TPU
topology, on any host with `jax[tpu]` installed (`JAX_PLATFORMS=cpu TPU_SKIP_MDS_QUERY=1`), and
prints XLA's temporary memory, which must not grow with N*K.

    python benchmarks/search_forms.py                  # S1 and a large K, two_pass vs fused
    python benchmarks/search_forms.py --sizes 8192,8,32,512 --forms two_pass,fused,argmin
    JAX_PLATFORMS=cpu TPU_SKIP_MDS_QUERY=1 python benchmarks/search_forms.py \
        --aot_topology v5e:1x1 --sizes 262144,8,32,512 262144,8,4,65536 --forms argmin
"""

import argparse
import datetime
import os
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

import results_file
from dvq_jax.quantizers import _nearest

SEARCH_BYTES = 4 << 20  # the fused baseline's tile, as it was tuned


def _fused_first_min_index(scores: jax.Array) -> jax.Array:
  """`(R, C)` -> `(R,)` first row-minimum index, if both reductions see the same score bits."""
  row_min = jnp.min(scores, axis=-1, keepdims=True)
  index = jax.lax.broadcasted_iota(jnp.float32, scores.shape, 1)
  first = jnp.min(index + scores.shape[-1] * jnp.sign(scores - row_min), axis=-1)
  return first.astype(jnp.int32)


def fused_search(x: jax.Array, codebooks: jax.Array) -> jax.Array:
  """The baseline: `(N, G, D)`, `(G, K, D)` -> `(N, G)`, one 2-D search per codebook, row blocks
  of ~4 MiB of distances, codebook chunks with a recomputed-score merge (K <= 2**23)."""
  num_rows, _, dim = x.shape
  groups, size, _ = codebooks.shape
  num_chunks = -(-size * 256 * 4 // SEARCH_BYTES)
  chunk = -(-size // num_chunks)
  rows = min(num_rows, max(1, SEARCH_BYTES // (4 * chunk)))
  num_blocks = -(-num_rows // rows)
  blocks = jnp.pad(x, ((0, num_blocks * rows - num_rows), (0, 0), (0, 0))).reshape(
      rows, num_blocks, groups, dim)
  pad = num_chunks * chunk - size

  def one_codebook(g, codes):
    e = codebooks[g]
    e_sq = jnp.pad(jnp.sum(e * e, -1), (0, pad), constant_values=jnp.inf).reshape(-1, chunk)
    minus_two_e = jnp.pad(-2.0 * e, ((0, pad), (0, 0))).reshape(-1, chunk, dim)

    def one_block(b, codes):
      block = blocks[:, b, g]

      def chunk_best(c):
        scores = jnp.dot(block, minus_two_e[c].T, precision="highest") + e_sq[c]
        code = jnp.clip(_fused_first_min_index(scores), 0, chunk - 1)
        best = jnp.sum(block * minus_two_e[c][code], -1) + e_sq[c][code]
        return code, best

      def merge(c, carry):
        code, best = carry
        chunk_code, chunk_min = chunk_best(c)
        better = chunk_min < best
        return jnp.where(better, chunk_code + c * chunk, code), jnp.where(better, chunk_min, best)

      code, _ = jax.lax.fori_loop(1, num_chunks, merge, chunk_best(0))
      return codes.at[:, b, g].set(code)

    return jax.lax.fori_loop(0, num_blocks, one_block, codes)

  codes = jax.lax.fori_loop(0, groups, one_codebook,
                            jnp.zeros((rows, num_blocks, groups), jnp.int32))
  return codes.reshape(-1, groups)[:num_rows]


def make_search(form: str):
  if form == "fused":
    return jax.jit(fused_search)
  return jax.jit(lambda x, e: _nearest.search_slices(x, e, form=form))


def time_forms(sizes, forms, rounds: int) -> list[dict]:
  print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs,"
        f" backend {jax.default_backend()}, jax {jax.__version__};"
        f" {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC;"
        f" load {os.getloadavg()[0]:.2f}", flush=True)
  print("| form | N | L | D | K | best ms | median ms | codes equal to the first form's |")
  print("|---|---|---|---|---|---|---|---|")
  rows = []
  for num, levels, dim, size in sizes:
    x = jax.random.normal(jax.random.key(0), (num, levels, dim), jnp.float32)
    codebooks = jax.random.normal(jax.random.key(1), (levels, size, dim), jnp.float32)
    searches = {form: make_search(form) for form in forms}
    codes = {form: np.asarray(search(x, codebooks)) for form, search in searches.items()}
    times = {form: [] for form in forms}
    for _ in range(rounds):
      for form, search in searches.items():
        start = time.perf_counter()
        jax.block_until_ready(search(x, codebooks))
        times[form].append(time.perf_counter() - start)
    for form in forms:
      same = np.array_equal(codes[form], codes[forms[0]])
      print(f"| {form} | {num} | {levels} | {dim} | {size} | {1e3 * min(times[form]):.1f} |"
            f" {1e3 * statistics.median(times[form]):.1f} | {same} |", flush=True)
      rows.append({"form": form, "N": num, "L": levels, "D": dim, "K": size,
                   "best_ms": 1e3 * min(times[form]),
                   "median_ms": 1e3 * statistics.median(times[form]),
                   "codes_equal_first_form": bool(same)})
  print(f"# load {os.getloadavg()[0]:.2f} at the end", flush=True)
  return rows


def compile_for_tpu(topology: str, sizes, forms) -> list[dict]:
  from jax.sharding import Mesh, NamedSharding, PartitionSpec  # pylint: disable=g-import-not-at-top
  from dvq_jax.plan import chips  # pylint: disable=g-import-not-at-top
  device = chips.target(topology).devices[0]  # as `python -m dvq_jax.plan` gets it
  replicated = NamedSharding(Mesh(np.array([device]), ("data",)), PartitionSpec())
  print(f"# {device.device_kind}, jax {jax.__version__};"
        f" {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC", flush=True)
  print("| form | N | L | D | K | x MiB | temporaries MiB | N*K*L*4 MiB | compile s |")
  print("|---|---|---|---|---|---|---|---|---|")
  rows = []
  for num, levels, dim, size in sizes:
    x = jax.ShapeDtypeStruct((num, levels, dim), jnp.float32, sharding=replicated)
    codebooks = jax.ShapeDtypeStruct((levels, size, dim), jnp.float32, sharding=replicated)
    for form in forms:
      start = time.perf_counter()
      compiled = make_search(form).lower(x, codebooks).compile()
      memory = compiled.memory_analysis()
      compile_s = time.perf_counter() - start
      print(f"| {form} | {num} | {levels} | {dim} | {size} | {num * levels * dim * 4 / 2**20:.0f}"
            f" | {memory.temp_size_in_bytes / 2**20:.1f} | {num * size * levels * 4 / 2**20:,.0f}"
            f" | {compile_s:.0f} |", flush=True)
      rows.append({"form": form, "N": num, "L": levels, "D": dim, "K": size,
                   "device": device.device_kind,
                   "temporaries_mib": memory.temp_size_in_bytes / 2**20, "compile_s": compile_s})
  return rows


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--sizes", nargs="+", default=["8192,8,32,512", "16384,2,4,65536"],
                      help="N,L,D,K per size")
  # argmin is several times slower on XLA:CPU (a variadic reduction runs as scalar code).
  parser.add_argument("--forms", default="two_pass,fused")
  parser.add_argument("--rounds", type=int, default=5)
  parser.add_argument("--aot_topology", default=None, help="e.g. v5e:1x1: compile, do not run")
  results_file.add_flag(parser)
  args = parser.parse_args()
  sizes = [tuple(int(v) for v in s.split(",")) for s in args.sizes]
  forms = args.forms.split(",")
  if args.aot_topology:
    rows = compile_for_tpu(args.aot_topology, sizes, forms)
  else:
    rows = time_forms(sizes, forms, args.rounds)
  results_file.write(args.output, rows, rounds=args.rounds, aot_topology=args.aot_topology,
                     xla_flags=os.environ.get("XLA_FLAGS", ""))


if __name__ == "__main__":
  main()
