"""Speed of `depthwise_quantize` (DVQ) against PyTorch peers and the machine's fp32 GEMM peak.

Times the forward pass and forward+backward (`jax.value_and_grad` of `sum(quantized) + loss` with
respect to z and the codebooks) on the same data, in one process, against:

* vector-quantize-pytorch `VectorQuantize(heads=L, separate_codebook_per_head=True, ...)`, the
  closest published peer to DVQ (one codebook per slice of the feature axis);
* a plain PyTorch DVQ written here (bmm distances, argmin, gather, straight-through);
* a plain JAX DVQ written here (vmapped einsum distances, jnp.argmin, take): what XLA makes of
  the textbook formulation, to show what dvq_jax's kernel adds;
* a 4096^3 fp32 matmul in torch and in JAX (the machine's GEMM peak).

Implementations take turns; in each turn one is called once untimed after a short pause, then
timed over a few back-to-back calls (steady state, as in a training loop). The machine may be
shared, and PyTorch's OpenMP threads slow down several-fold when another process takes a core,
so every call also records whether any other process used CPU meanwhile; the reported time is
the minimum over the quiet calls (over all calls, marked '*', if none was quiet), and the CPU time
other processes used during the whole run is printed.

    python benchmarks/quantizer_bench.py                 # setting S1: N=8192, L=8, D=32, K=512
    python benchmarks/quantizer_bench.py --setting S2    # N=32768, K=4096, no vq-pytorch
"""

import argparse
import datetime
import functools
import importlib.metadata
import os
import platform
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import psutil
import torch
from vector_quantize_pytorch import VectorQuantize

import results_file
from dvq_jax.quantizers import depthwise_quantize

# name -> (N vectors, L codebooks, D per codebook, K codes per codebook, with vq-pytorch)
SETTINGS = {
    "S1": (8192, 8, 32, 512, True),
    # vector-quantize-pytorch would hold several (L, N, K) float32/int64 tensors of 4-8 GiB each.
    "S2": (32768, 8, 32, 4096, False),
}
BETA = 0.25
# Each turn: a pause (so that the previous library's worker threads go idle), one untimed call
# (after a pause, thread pools and caches are cold: XLA:CPU calls then take ~2x longer), then
# CALLS_PER_TURN timed calls back-to-back, as in a training loop.
PAUSE_S = 0.05
CALLS_PER_TURN = 3
# A timed call is "quiet" if other processes used at most this much CPU during it.
QUIET_CPU_S = 0.02


def jax_dvq(z: jax.Array, codebooks: jax.Array):
  out = depthwise_quantize(z, codebooks, beta=BETA)
  return out.quantized, out.codes, out.loss


def jax_plain_dvq(z: jax.Array, codebooks: jax.Array):
  """Textbook JAX DVQ: full (L, N, K) distances, jnp.argmin, take, straight-through."""
  num_codebooks, _, dim = codebooks.shape
  x = z.reshape(-1, num_codebooks, dim).transpose(1, 0, 2)
  sg = jax.lax.stop_gradient

  def one(x, e):
    scores = jnp.sum(e * e, -1) - 2.0 * jnp.dot(sg(x), sg(e).T, precision="highest")
    codes = jnp.argmin(scores, axis=-1)
    chosen = jnp.take(e, codes, axis=0)
    loss = jnp.mean(jnp.sum((sg(x) - chosen) ** 2, -1)) + BETA * jnp.mean(
        jnp.sum((x - sg(chosen)) ** 2, -1))
    return x + sg(chosen - x), codes, loss

  quantized, codes, loss = jax.vmap(one)(x, codebooks)
  return quantized.transpose(1, 0, 2).reshape(z.shape), codes.T, jnp.sum(loss)


def jax_fns(impl: Callable):
  def objective(z, codebooks):
    quantized, _, loss = impl(z, codebooks)
    return jnp.sum(quantized) + loss

  return jax.jit(impl), jax.jit(jax.value_and_grad(objective, argnums=(0, 1)))


def torch_plain_dvq(z: torch.Tensor, codebooks: torch.Tensor):
  """Plain PyTorch DVQ: bmm distances, argmin, gather, straight-through, Eq. 4 losses."""
  num_codebooks, size, dim = codebooks.shape
  x = z.view(-1, num_codebooks, dim).transpose(0, 1)  # (L, N, D)
  with torch.no_grad():
    e_sq = (codebooks * codebooks).sum(-1)
    scores = torch.baddbmm(e_sq[:, None, :], x, codebooks.transpose(1, 2), alpha=-2.0)
    codes = scores.argmin(-1)  # (L, N); ties: first index
  chosen = torch.gather(codebooks, 1, codes[..., None].expand(-1, -1, dim))
  codebook_loss = ((x.detach() - chosen) ** 2).sum(-1).mean(-1).sum()
  commitment_loss = ((x - chosen.detach()) ** 2).sum(-1).mean(-1).sum()
  counts = torch.zeros(num_codebooks, size).scatter_add_(1, codes, torch.ones(codes.shape))
  probs = counts / codes.shape[1]
  perplexity = torch.exp(-torch.special.xlogy(probs, probs).sum(-1))
  quantized = (x + (chosen - x).detach()).transpose(0, 1).reshape(z.shape)
  return quantized, codes.T, codebook_loss + BETA * commitment_loss, perplexity


def make_vqtorch(num_codebooks: int, dim: int, size: int, codebooks: np.ndarray) -> VectorQuantize:
  vq = VectorQuantize(
      dim=num_codebooks * dim, codebook_size=size, heads=num_codebooks,
      separate_codebook_per_head=True, codebook_dim=dim, learnable_codebook=True,
      ema_update=False, rotation_trick=False)
  with torch.no_grad():
    vq.codebook = torch.from_numpy(codebooks)
  return vq.train()


def torch_fns(impl: Callable, codebooks: torch.Tensor):
  """Forward (no autograd graph) and forward+backward (gradients w.r.t. z and the codebooks)."""

  def forward(z):
    with torch.no_grad():
      return impl(z)

  def forward_backward(z):
    z = z.detach().requires_grad_(True)
    codebooks.grad = None
    out = impl(z)
    value = out[0].sum() + out[2]
    value.backward()
    return value, z.grad, codebooks.grad

  return forward, forward_backward


class OtherLoad:
  """CPU-seconds used by processes other than this one since construction (system-wide)."""

  def __init__(self):
    self._me = psutil.Process()
    self._busy0, self._mine0, self._wall0 = self._busy(), self._mine(), time.perf_counter()

  @staticmethod
  def _busy() -> float:
    t = psutil.cpu_times()
    return t.user + t.nice + t.system + t.irq + t.softirq

  def _mine(self) -> float:
    t = self._me.cpu_times()
    return t.user + t.system

  def other_cpu_s(self) -> float:
    return max(0.0, (self._busy() - self._busy0) - (self._mine() - self._mine0))

  def report(self) -> str:
    other, wall = self.other_cpu_s(), time.perf_counter() - self._wall0
    return (f"other processes used {other:.1f} CPU-s over {wall:.1f} s wall"
            f" ({100 * other / (wall * psutil.cpu_count()):.0f}% of the machine);"
            f" load average {os.getloadavg()[0]:.2f}")


def timed(fn: Callable, *args, block: Callable = lambda out: out) -> list[tuple[float, bool]]:
  """Seconds for each of CALLS_PER_TURN back-to-back calls after a pause and an untimed call,
  and whether no other process ran meanwhile (the kernel's CPU accounting ticks are 10 ms)."""
  time.sleep(PAUSE_S)
  block(fn(*args))
  samples = []
  for _ in range(CALLS_PER_TURN):
    others = OtherLoad()
    start = time.perf_counter()
    block(fn(*args))
    elapsed = time.perf_counter() - start
    samples.append((elapsed, others.other_cpu_s() <= QUIET_CPU_S))
  return samples


def best_time(samples: list[tuple[float, bool]]) -> float:
  """Min over the quiet samples, or over all of them when none was quiet."""
  quiet = [t for t, q in samples if q]
  return min(quiet or [t for t, _ in samples])


def gemm_peak(repeats: int) -> dict[str, float]:
  """fp32 GFLOP/s of a 4096^3 matmul, min time over repeats, torch and JAX interleaved."""
  n = 4096
  rng = np.random.default_rng(1)
  a, b = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
  ta, tb = torch.from_numpy(a), torch.from_numpy(b)
  ja, jb = jnp.asarray(a), jnp.asarray(b)
  jdot = jax.jit(lambda x, y: jnp.dot(x, y, precision="highest"))
  jdot(ja, jb).block_until_ready()
  torch.mm(ta, tb)
  times = {"torch": [], "jax": []}
  for _ in range(repeats):
    times["torch"] += timed(torch.mm, ta, tb)
    times["jax"] += timed(jdot, ja, jb, block=jax.block_until_ready)
  return {k: 2 * n**3 / best_time(v) / 1e9 for k, v in times.items()}


def code_disagreements(name: str, codes: np.ndarray, ref: np.ndarray, x: np.ndarray,
                       codebooks: np.ndarray) -> str:
  """How many codes differ from dvq_jax's, and whether each is a float32 near-tie."""
  diff = np.argwhere(codes != ref)
  if not len(diff):
    return f"  codes {name:26s}: identical to dvq_jax ({codes.size} codes)"
  gaps = []
  for row, level in diff:
    e = codebooks[level].astype(np.float64)
    d_ref = np.sum((x[row, level] - e[ref[row, level]]) ** 2)
    d_other = np.sum((x[row, level] - e[codes[row, level]]) ** 2)
    gaps.append(abs(d_other - d_ref) / max(d_ref, 1e-30))
  return (f"  codes {name:26s}: {len(diff)} of {codes.size} differ; float64 relative distance gap"
          f" at those: max {max(gaps):.1e} (float32 eps = 1.2e-07: near-ties)")


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--setting", choices=sorted(SETTINGS), default="S1")
  parser.add_argument("--repeats", type=int, default=10)
  parser.add_argument("--gemm-repeats", type=int, default=3)
  results_file.add_flag(parser)
  args = parser.parse_args()
  num, levels, dim, size, with_vqtorch = SETTINGS[args.setting]

  now = datetime.datetime.now(datetime.timezone.utc)
  print(f"# quantizer_bench {args.setting}: N={num} vectors, L={levels}, D={dim}"
        f" (L*D={levels * dim}), K={size}, beta={BETA}; {now:%Y-%m-%d %H:%M} UTC")
  print(f"# {platform.processor() or platform.machine()}, {psutil.cpu_count()} CPUs,"
        f" {psutil.virtual_memory().total / 2**30:.0f} GiB; python {platform.python_version()},"
        f" jax {jax.__version__}, torch {torch.__version__} ({torch.get_num_threads()} threads),"
        f" vector-quantize-pytorch {importlib.metadata.version('vector-quantize-pytorch')}")
  load = OtherLoad()

  rng = np.random.default_rng(0)
  z_np = rng.standard_normal((num, levels * dim), dtype=np.float32)
  codebooks_np = rng.standard_normal((levels, size, dim), dtype=np.float32)
  z, codebooks = jnp.asarray(z_np), jnp.asarray(codebooks_np)
  z_t = torch.from_numpy(z_np)
  codebooks_t = torch.from_numpy(codebooks_np.copy()).requires_grad_(True)

  # name -> (zero-argument call, function that blocks until its result is computed)
  forward, backward = {}, {}
  for name, impl in [("dvq_jax", jax_dvq), ("plain JAX (vmap, argmin)", jax_plain_dvq)]:
    fwd, fwd_bwd = jax_fns(impl)
    forward[name] = (functools.partial(fwd, z, codebooks), jax.block_until_ready)
    backward[name] = (functools.partial(fwd_bwd, z, codebooks), jax.block_until_ready)
  plain = functools.partial(torch_plain_dvq, codebooks=codebooks_t)
  torch_impls = {"plain PyTorch": (plain, codebooks_t)}
  if with_vqtorch:
    vq = make_vqtorch(levels, dim, size, codebooks_np)
    # vq._codebook.embed: the learnable (L, K, D) codebooks
    torch_impls["vector-quantize-pytorch"] = (lambda x: vq(x[None]), vq._codebook.embed)
  for name, (impl, params) in torch_impls.items():
    fwd, fwd_bwd = torch_fns(impl, params)
    forward[name] = (functools.partial(fwd, z_t), lambda out: out)
    backward[name] = (functools.partial(fwd_bwd, z_t), lambda out: out)

  # Codes first (also compiles and warms every implementation).
  ref = np.asarray(forward["dvq_jax"][0]()[1])
  x64 = z_np.reshape(num, levels, dim)
  print("# agreement of codes (ties go to the lowest index everywhere)")
  codes_equal = {}
  for name, (fn, _) in forward.items():
    codes = fn()[1]
    codes = np.asarray(codes.numpy() if isinstance(codes, torch.Tensor) else codes)
    codes_equal[name] = int(np.sum(codes.reshape(num, levels) == ref))
    print(code_disagreements(name, codes.reshape(num, levels), ref, x64, codebooks_np))
  for fn, block in backward.values():
    block(fn())

  kinds = (("fwd", forward), ("fwd+bwd", backward))
  times = {(kind, name): [] for kind, fns in kinds for name in fns}
  for _ in range(args.repeats):
    for kind, fns in kinds:
      for name, (fn, block) in fns.items():
        times[kind, name] += timed(fn, block=block)
  peak = gemm_peak(args.gemm_repeats)
  best = {key: best_time(samples) for key, samples in times.items()}

  flops = 2 * num * size * levels * dim
  machine_peak = max(peak.values())
  print(f"# fp32 GEMM peak (4096^3, best of {CALLS_PER_TURN * args.gemm_repeats}):"
        f" torch {peak['torch']:.0f} GFLOP/s,"
        f" jax {peak['jax']:.0f} GFLOP/s")
  print(f"# ms over {args.repeats} interleaved turns of {CALLS_PER_TURN} calls:"
        f" min over the quiet calls"
        f" (no other process ran;"
        f" '*' = none was quiet, min over all), median over all, [quiet count]."
        f" Distance GEMM = {flops / 1e9:.2f} GFLOP")
  print(f"{'implementation':26s} {'fwd':>22s} {'fwd+bwd':>22s}"
        f"  {'fwd GFLOP/s':>11s} {'% of peak':>9s}")
  for name in forward:
    cells = []
    for kind in ("fwd", "fwd+bwd"):
      samples = times[kind, name]
      quiet = sum(q for _, q in samples)
      cells.append(f"{1e3 * best[kind, name]:8.1f}{'*' if not quiet else ' '}"
                   f" ({1e3 * np.median([t for t, _ in samples]):6.1f}) [{quiet:2d}]")
    gflops = flops / best["fwd", name] / 1e9
    print(f"{name:26s} {cells[0]} {cells[1]}  {gflops:11.0f} {100 * gflops / machine_peak:8.0f}%")
  print("# dvq_jax speedup (peer time / dvq_jax time, the min times above)")
  for name in forward:
    if name != "dvq_jax":
      print(f"  vs {name:26s} fwd {best['fwd', name] / best['fwd', 'dvq_jax']:5.1f}x   fwd+bwd"
            f" {best['fwd+bwd', name] / best['fwd+bwd', 'dvq_jax']:5.1f}x")
  print(f"# {load.report()}")
  results_file.write(args.output, [
      {"implementation": name, "codes_equal_dvq_jax": codes_equal[name], "codes": ref.size,
       **{f"{kind}_{stat}_ms": 1e3 * value for kind in ("fwd", "fwd+bwd") for stat, value in (
           ("min", best[kind, name]),
           ("median", float(np.median([t for t, _ in times[kind, name]]))))},
       **{f"{kind}_quiet_calls": sum(q for _, q in times[kind, name]) for kind in ("fwd", "fwd+bwd")},
       "fwd_gflops": flops / best["fwd", name] / 1e9,
       **{f"{kind}_time_over_dvq_jax": best[kind, name] / best[kind, "dvq_jax"]
          for kind in ("fwd", "fwd+bwd")}} for name in forward],
                     setting=args.setting, N=num, L=levels, D=dim, K=size, repeats=args.repeats,
                     gemm_peak_gflops=peak, other_load=load.report())


if __name__ == "__main__":
  main()
