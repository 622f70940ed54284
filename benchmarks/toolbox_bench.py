"""Speed of the toolbox's quantizer families against vector-quantize-pytorch, same process.

Matched pairs, forward and forward+backward (gradients w.r.t. the input, and the codebooks
where they are learned), implementations taking turns as in `quantizer_bench.py` (whose timing
and load accounting this script reuses):

* EMA DVQ: `depthwise_quantize` + `ema_codebooks().update` in one jitted step against
  `VectorQuantize(heads=L, separate_codebook_per_head=True, ema_update=True)` (which updates its
  EMA codebooks inside every training-mode forward);
* RVQ: `residual_quantize` against `ResidualVQ(learnable_codebook=True, ema_update=False)`;
* FSQ: `finite_scalar_quantize` against `FSQ`;
* LFQ: `lookup_free_quantize` against `LFQ` (same entropy weights, inverse temperature 100);
* BSQ: `binary_spherical_quantize` (exact batch entropy) against `LFQ(spherical=True)`;
* SimVQ: `simvq_quantize` against `SimVQ(rotation_trick=False)` (same basis and map);
* RFSQ, RLFQ: `residual_finite_scalar_quantize` / `residual_lookup_free_quantize` against
  `ResidualFSQ` / `ResidualLFQ`;
* RVQ dropout: `residual_quantize(dropout_key=...)` against `ResidualVQ(quantize_dropout=True)`.
  dvq_jax draws the number of kept stages per example (SoundStream), so every stage runs for the
  examples that keep it; vector-quantize-pytorch draws one number for the whole batch and skips
  the stages after it. Its time is therefore the mean over the M equally likely draws, each timed
  on its own (a fixed dropout seed): what a training step costs on average;
* masked VQ: `vector_quantize(mask=...)` against `VectorQuantize(...)(x, mask=...)`, half the
  positions masked.

Codes are compared on the first call (same codebooks, same data): the algorithms are
deterministic (quantize dropout is off in the forward), so a difference is a float32 near-tie
or a different grid: vector-quantize-pytorch's ResidualFSQ runs its symmetric FSQ variant
(`preserve_symmetry=True`, another bound and rounding), so its residual-FSQ codes differ.

    PYTHONPATH=. python benchmarks/toolbox_bench.py [--repeats 5]
"""

import argparse
import datetime
import functools
import importlib.metadata
import platform
import random

import jax
import jax.numpy as jnp
import numpy as np
import psutil
import results_file
import torch
from quantizer_bench import OtherLoad
from quantizer_bench import best_time
from quantizer_bench import gemm_peak
from quantizer_bench import timed
from vector_quantize_pytorch import FSQ
from vector_quantize_pytorch import LFQ
from vector_quantize_pytorch import ResidualFSQ
from vector_quantize_pytorch import ResidualLFQ
from vector_quantize_pytorch import ResidualVQ
from vector_quantize_pytorch import SimVQ
from vector_quantize_pytorch import VectorQuantize

from dvq_jax import quantizers as q

BETA = 0.25
EMA = dict(num=8192, levels=8, dim=32, size=512, decay=0.99)
RVQ = dict(num=8192, dim=64, stages=8, size=1024)
FSQ_LEVELS = (8, 5, 5, 5)
FSQ_NUM = 262144
LFQ_BITS, LFQ_NUM = 10, 16384
SIMVQ = dict(num=8192, dim=32, size=1024)
RFSQ_LEVELS, RESIDUAL_STAGES = (7, 5, 5, 5), 4
MASKED = dict(batch=16, positions=1024, dim=64, size=1024)
ENTROPY = dict(entropy_weight=0.1, diversity_weight=1.0, inverse_temperature=100.0, beta=BETA)


def _jax_pair(forward, objective, *args):
  """(forward call, forward+backward call) of jitted JAX functions, blocking on the result."""
  fwd = jax.jit(forward)
  bwd = jax.jit(objective)
  return (lambda: jax.block_until_ready(fwd(*args)), lambda: jax.block_until_ready(bwd(*args)))


def _torch_pair(module, x, objective):
  def fwd():
    with torch.no_grad():
      return module(x)

  def bwd():
    leaf = x.detach().requires_grad_(True)
    module.zero_grad(set_to_none=True)
    value = objective(module(leaf))
    value.backward()
    return leaf.grad

  return fwd, bwd


def ema_dvq(rng):
  n, levels, dim, size = EMA["num"], EMA["levels"], EMA["dim"], EMA["size"]
  z = rng.standard_normal((n, levels * dim), dtype=np.float32)
  codebooks = rng.standard_normal((levels, size, dim), dtype=np.float32)
  ema = q.ema_codebooks(EMA["decay"])

  def step(z, codebooks, state):
    def objective(z):
      out = q.depthwise_quantize(z, codebooks, beta=BETA)
      return jnp.sum(out.quantized) + BETA * out.commitment_loss, out.codes

    (_, codes), grad = jax.value_and_grad(objective, has_aux=True)(z)
    new, state = ema.update(z.reshape(n, levels, dim), codes, state)
    return grad, new, state, codes

  def forward(z, codebooks, state):
    out = q.depthwise_quantize(z, codebooks, beta=BETA)
    return ema.update(z.reshape(n, levels, dim), out.codes, state), out.codes

  args = (jnp.asarray(z), jnp.asarray(codebooks), ema.init(jnp.asarray(codebooks)))
  ours = _jax_pair(forward, step, *args)
  vq = VectorQuantize(dim=levels * dim, codebook_size=size, heads=levels,
                      separate_codebook_per_head=True, codebook_dim=dim, decay=EMA["decay"],
                      ema_update=True, commitment_weight=BETA, rotation_trick=False).train()
  with torch.no_grad():
    vq._codebook.embed.copy_(torch.from_numpy(codebooks))
    vq._codebook.embed_avg.copy_(torch.from_numpy(codebooks))
  z_t = torch.from_numpy(z)[None]
  # First call of each: the codes of the same codebooks (before any EMA step).
  ours_codes = np.asarray(jax.jit(forward)(*args)[1])
  with torch.no_grad():
    peer_codes = vq(z_t)[1][0].numpy()
  peer = _torch_pair(vq, z_t, lambda out: out[0].sum() + out[2].sum())
  return ours, peer, (ours_codes, peer_codes)


def rvq(rng):
  n, dim, stages, size = RVQ["num"], RVQ["dim"], RVQ["stages"], RVQ["size"]
  z = rng.standard_normal((n, dim), dtype=np.float32)
  scales = 0.7 ** np.arange(stages, dtype=np.float32)[:, None, None]
  codebooks = rng.standard_normal((stages, size, dim), dtype=np.float32) * scales

  def forward(z, codebooks):
    return q.residual_quantize(z, codebooks, beta=BETA).codes

  def objective(z, codebooks):
    def value(z, codebooks):
      out = q.residual_quantize(z, codebooks, beta=BETA)
      return jnp.sum(out.quantized) + out.loss
    return jax.grad(value, argnums=(0, 1))(z, codebooks)

  args = (jnp.asarray(z), jnp.asarray(codebooks))
  ours = _jax_pair(forward, objective, *args)
  peer_module = ResidualVQ(dim=dim, num_quantizers=stages, codebook_size=size,
                           learnable_codebook=True, ema_update=False, rotation_trick=False,
                           commitment_weight=BETA).train()
  with torch.no_grad():
    for layer, codebook in zip(peer_module.layers, codebooks):
      layer._codebook.embed.copy_(torch.from_numpy(codebook)[None])
  z_t = torch.from_numpy(z)[None]
  with torch.no_grad():
    peer_codes = peer_module(z_t)[1][0].numpy()
  peer = _torch_pair(peer_module, z_t, lambda out: out[0].sum() + out[2].sum())
  return ours, peer, (np.asarray(jax.jit(forward)(*args)), peer_codes)


def fsq(rng):
  z = 2.0 * rng.standard_normal((FSQ_NUM, len(FSQ_LEVELS)), dtype=np.float32)

  def forward(z):
    return q.finite_scalar_quantize(z, FSQ_LEVELS).codes

  def objective(z):
    return jax.grad(lambda z: jnp.sum(q.finite_scalar_quantize(z, FSQ_LEVELS).quantized))(z)

  ours = _jax_pair(forward, objective, jnp.asarray(z))
  module = FSQ(levels=list(FSQ_LEVELS))
  z_t = torch.from_numpy(z)[None]
  with torch.no_grad():
    peer_codes = module(z_t)[1][0].numpy()
  peer = _torch_pair(module, z_t, lambda out: out[0].sum())
  return ours, peer, (np.asarray(jax.jit(forward)(jnp.asarray(z))), peer_codes)


def lfq(rng):
  z = 0.1 * rng.standard_normal((LFQ_NUM, LFQ_BITS), dtype=np.float32)
  kwargs = dict(entropy_weight=0.1, diversity_weight=1.0, inverse_temperature=100.0, beta=BETA)

  def forward(z):
    out = q.lookup_free_quantize(z, **kwargs)
    return out.codes, out.loss

  def objective(z):
    def value(z):
      out = q.lookup_free_quantize(z, **kwargs)
      return jnp.sum(out.quantized) + out.loss
    return jax.grad(value)(z)

  ours = _jax_pair(forward, objective, jnp.asarray(z))
  module = LFQ(dim=LFQ_BITS, codebook_size=2**LFQ_BITS, entropy_loss_weight=0.1,
               diversity_gamma=1.0, commitment_loss_weight=BETA).train()
  z_t = torch.from_numpy(z)[None]
  with torch.no_grad():
    peer_codes = module(z_t)[1][0].numpy()
  ours_codes = np.asarray(jax.jit(forward)(jnp.asarray(z))[0])
  peer = _torch_pair(module, z_t, lambda out: out[0].sum() + out[2])
  return ours, peer, (_msb_first(ours_codes, LFQ_BITS), peer_codes)


def _msb_first(codes, bits):
  """vector-quantize-pytorch puts dimension 0 in the most significant bit, dvq_jax in the least."""
  return sum(((codes >> i) & 1) << (bits - 1 - i) for i in range(bits))


def _grad_pair(quantize, *args):
  """(forward codes, d(sum(quantized) + loss)/d(all args)) of `quantize(*args)`."""
  def objective(*args):
    def value(*args):
      out = quantize(*args)
      return jnp.sum(out.quantized) + out.loss
    return jax.grad(value, argnums=tuple(range(len(args))))(*args)

  forward = lambda *args: quantize(*args).codes
  args = tuple(jnp.asarray(a) for a in args)
  return _jax_pair(forward, objective, *args), np.asarray(jax.jit(forward)(*args))


def _peer(module, x, *, loss=2, **kwargs):
  """(codes of the first no-grad call, (fwd, fwd+bwd)) of a vector-quantize-pytorch module."""
  x_t = torch.from_numpy(x)[None] if x.ndim == 2 else torch.from_numpy(x)
  with torch.no_grad():
    codes = module(x_t, **kwargs)[1].numpy()

  def bwd():
    leaf = x_t.detach().requires_grad_(True)
    module.zero_grad(set_to_none=True)
    out = module(leaf, **kwargs)
    (out[0].sum() + out[loss].sum()).backward()
    return leaf.grad

  def fwd():
    with torch.no_grad():
      return module(x_t, **kwargs)

  return codes.reshape(-1, *codes.shape[2:]) if x.ndim == 2 else codes, (fwd, bwd)


def bsq(rng):
  z = rng.standard_normal((LFQ_NUM, LFQ_BITS), dtype=np.float32)
  ours, codes = _grad_pair(lambda z: q.binary_spherical_quantize(z, **ENTROPY), z)
  module = LFQ(dim=LFQ_BITS, codebook_size=2**LFQ_BITS, spherical=True, entropy_loss_weight=0.1,
               diversity_gamma=1.0, commitment_loss_weight=BETA).train()
  peer_codes, peer = _peer(module, z)
  return ours, peer, (_msb_first(codes, LFQ_BITS), peer_codes)


def simvq(rng):
  n, dim, size = SIMVQ["num"], SIMVQ["dim"], SIMVQ["size"]
  z = rng.standard_normal((n, dim), dtype=np.float32)
  module = SimVQ(dim=dim, codebook_size=size, rotation_trick=False,
                 input_to_quantize_commit_loss_weight=BETA).train()
  basis = module.frozen_codebook.numpy()
  projection = module.code_transform.weight.detach().numpy().T.copy()  # codebook = basis @ W
  ours, codes = _grad_pair(lambda z, w: q.simvq_quantize(z, basis, w, beta=BETA), z, projection)
  peer_codes, peer = _peer(module, z)
  return ours, peer, (codes, peer_codes)


def rfsq(rng):
  z = rng.standard_normal((FSQ_NUM // 4, len(RFSQ_LEVELS)), dtype=np.float32)
  ours, codes = _grad_pair(
      lambda z: q.residual_finite_scalar_quantize(z, RFSQ_LEVELS, RESIDUAL_STAGES), z)
  module = ResidualFSQ(dim=len(RFSQ_LEVELS), levels=list(RFSQ_LEVELS),
                       num_quantizers=RESIDUAL_STAGES).train()
  peer_codes, peer = _peer(module, z, loss=0)
  return ours, peer, (codes, peer_codes)


def rlfq(rng):
  z = 0.1 * rng.standard_normal((LFQ_NUM, LFQ_BITS), dtype=np.float32)
  ours, codes = _grad_pair(
      lambda z: q.residual_lookup_free_quantize(z, RESIDUAL_STAGES, **ENTROPY), z)
  module = ResidualLFQ(dim=LFQ_BITS, codebook_size=2**LFQ_BITS, num_quantizers=RESIDUAL_STAGES,
                       entropy_loss_weight=0.1, diversity_gamma=1.0,
                       commitment_loss_weight=BETA).train()
  peer_codes, peer = _peer(module, z)
  return ours, peer, (_msb_first(codes, LFQ_BITS), peer_codes)


def _dropout_seeds(stages: int) -> list[int]:
  """For each number of kept stages, a seed with which ResidualVQ's quantize dropout keeps that
  many (it draws one number for the whole batch: `random.Random(seed).randrange(stages)` + 1)."""
  seeds = {}
  for seed in range(10_000):
    seeds.setdefault(random.Random(seed).randrange(stages), seed)
    if len(seeds) == stages:
      return [seeds[k] for k in range(stages)]
  raise RuntimeError("no seed for some number of stages")


def rvq_dropout(rng):
  n, dim, stages, size = RVQ["num"], RVQ["dim"], RVQ["stages"], RVQ["size"]
  z = rng.standard_normal((n, dim), dtype=np.float32)
  codebooks = (rng.standard_normal((stages, size, dim), dtype=np.float32)
               * 0.7 ** np.arange(stages, dtype=np.float32)[:, None, None])
  key = jax.random.key(0)
  _, codes = _grad_pair(lambda z, e: q.residual_quantize(z, e, beta=BETA), z, codebooks)
  ours, _ = _grad_pair(lambda z, e: q.residual_quantize(z, e, beta=BETA, dropout_key=key),
                       z, codebooks)
  module = ResidualVQ(dim=dim, num_quantizers=stages, codebook_size=size, quantize_dropout=True,
                      learnable_codebook=True, ema_update=False, rotation_trick=False,
                      commitment_weight=BETA).train()
  with torch.no_grad():
    for layer, codebook in zip(module.layers, codebooks):
      layer._codebook.embed.copy_(torch.from_numpy(codebook)[None])
  peer_codes, _ = _peer(module.eval(), z)  # no dropout: the codes of all stages
  module.train()
  # One batch-wide draw a call: time each outcome and average them (the expected call).
  peers = [_peer(module, z, rand_quantize_dropout_fixed_seed=seed)[1]
           for seed in _dropout_seeds(stages)]
  return ours, peers, (codes, peer_codes)


def masked_vq(rng):
  batch, positions, dim, size = (MASKED[k] for k in ("batch", "positions", "dim", "size"))
  z = rng.standard_normal((batch, positions, dim), dtype=np.float32)
  codebook = rng.standard_normal((size, dim), dtype=np.float32)
  mask = np.arange(positions)[None, :] < rng.integers(1, positions, (batch, 1))
  ours, codes = _grad_pair(lambda z, e: q.vector_quantize(z, e, beta=BETA, mask=mask), z,
                           codebook)
  module = VectorQuantize(dim=dim, codebook_size=size, learnable_codebook=True, ema_update=False,
                          rotation_trick=False, commitment_weight=BETA).train()
  with torch.no_grad():
    module._codebook.embed.copy_(torch.from_numpy(codebook)[None])
  peer_codes, peer = _peer(module, z, mask=torch.from_numpy(mask))
  return ours, peer, (codes[mask], peer_codes[mask])


FAMILIES = {"EMA DVQ": ema_dvq, "RVQ": rvq, "FSQ": fsq, "LFQ": lfq, "BSQ": bsq, "SimVQ": simvq,
            "RFSQ": rfsq, "RLFQ": rlfq, "RVQ drop": rvq_dropout, "masked VQ": masked_vq}
SETTINGS = {
    "EMA DVQ": (f"N={EMA['num']}, L={EMA['levels']}, D={EMA['dim']}, K={EMA['size']},"
                f" decay={EMA['decay']}"),
    "RVQ": f"N={RVQ['num']}, D={RVQ['dim']}, M={RVQ['stages']} stages, K={RVQ['size']}",
    "FSQ": f"N={FSQ_NUM}, levels={FSQ_LEVELS}",
    "LFQ": f"N={LFQ_NUM}, D={LFQ_BITS} bits (K=2^{LFQ_BITS})",
    "BSQ": f"N={LFQ_NUM}, D={LFQ_BITS} bits (K=2^{LFQ_BITS}), exact batch entropy",
    "SimVQ": f"N={SIMVQ['num']}, D={SIMVQ['dim']}, K={SIMVQ['size']}",
    "RFSQ": f"N={FSQ_NUM // 4}, levels={RFSQ_LEVELS}, M={RESIDUAL_STAGES} stages",
    "RLFQ": f"N={LFQ_NUM}, D={LFQ_BITS} bits, M={RESIDUAL_STAGES} stages",
    "RVQ drop": f"N={RVQ['num']}, D={RVQ['dim']}, M={RVQ['stages']} stages, K={RVQ['size']}",
    "masked VQ": (f"B={MASKED['batch']} x {MASKED['positions']} positions, D={MASKED['dim']},"
                  f" K={MASKED['size']}, a random prefix of each row unmasked"),
}

# GFLOP of a family's forward distance matmuls (2 N K D a codebook it searches), where it has them.
SEARCH_GFLOP = {
    "EMA DVQ": 2e-9 * EMA["num"] * EMA["levels"] * EMA["size"] * EMA["dim"],
    "RVQ": 2e-9 * RVQ["num"] * RVQ["stages"] * RVQ["size"] * RVQ["dim"],
    "SimVQ": 2e-9 * SIMVQ["num"] * SIMVQ["size"] * SIMVQ["dim"],
    "RVQ drop": 2e-9 * RVQ["num"] * RVQ["stages"] * RVQ["size"] * RVQ["dim"],
    "masked VQ": 2e-9 * MASKED["batch"] * MASKED["positions"] * MASKED["size"] * MASKED["dim"],
}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--families", default=",".join(FAMILIES))
  results_file.add_flag(parser)
  args = parser.parse_args()
  now = datetime.datetime.now(datetime.timezone.utc)
  print(f"# toolbox_bench {now:%Y-%m-%d %H:%M} UTC; {psutil.cpu_count()} CPUs; python"
        f" {platform.python_version()}, jax {jax.__version__}, torch {torch.__version__}"
        f" ({torch.get_num_threads()} threads), vector-quantize-pytorch"
        f" {importlib.metadata.version('vector-quantize-pytorch')}")
  load = OtherLoad()
  rng = np.random.default_rng(0)
  calls, agree = {}, {}
  for name in args.families.split(","):
    ours, peer, (ours_codes, peer_codes) = FAMILIES[name](rng)
    ours_codes, peer_codes = np.asarray(ours_codes), np.asarray(peer_codes)
    same = np.count_nonzero(ours_codes.reshape(peer_codes.shape) == peer_codes)
    print(f"# {name} ({SETTINGS[name]}): codes agree {same} of {peer_codes.size}")
    agree[name] = (int(same), int(peer_codes.size))
    # A peer given as a list of (fwd, fwd+bwd) pairs: outcomes of a random draw, timed apart.
    for label, pairs in (("dvq_jax", [ours]), ("vq-pytorch", peer if isinstance(peer, list)
                                                            else [peer])):
      for i, (fwd, bwd) in enumerate(pairs):
        fwd(), bwd()  # compile / warm up
        calls[name, label, "fwd", i] = fwd
        calls[name, label, "fwd+bwd", i] = bwd
  times = {key: [] for key in calls}
  for _ in range(args.repeats):
    for key, fn in calls.items():
      times[key] += timed(fn)
  peak = gemm_peak(args.repeats)
  print(f"# fp32 GEMM peak (4096^3 matmul): XLA {peak['jax']:.0f} GFLOP/s,"
        f" PyTorch {peak['torch']:.0f} GFLOP/s")

  def best(name, label, kind):
    """Min over the quiet calls; for a drawn peer, the mean of each outcome's."""
    outcomes = [v for k, v in times.items() if k[:3] == (name, label, kind)]
    return sum(best_time(v) for v in outcomes) / len(outcomes)

  def quiet(name, label, kind):
    return min(sum(s for _, s in v) for k, v in times.items() if k[:3] == (name, label, kind))
  print("# ms: min over the quiet calls ('*': none quiet, min over all), [quiet count]")
  print(f"{'family':10s} {'kind':8s} {'dvq_jax':>12s} {'vq-pytorch':>12s} {'speedup':>8s}")
  rows = []
  for name in dict.fromkeys(k[0] for k in calls):
    for kind in ("fwd", "fwd+bwd"):
      cells = []
      for label in ("dvq_jax", "vq-pytorch"):
        count = quiet(name, label, kind)
        cells.append(f"{1e3 * best(name, label, kind):8.1f}{' ' if count else '*'}[{count:2d}]")
      ratio = best(name, "vq-pytorch", kind) / best(name, "dvq_jax", kind)
      print(f"{name:10s} {kind:8s} {cells[0]:>12s} {cells[1]:>12s} {ratio:7.1f}x")
      row = {"family": name, "setting": SETTINGS[name], "kind": kind,
             "codes_agree": agree[name][0], "codes": agree[name][1],
             **{f"{label}_min_ms": 1e3 * best(name, label, kind)
                for label in ("dvq_jax", "vq-pytorch")},
             **{f"{label}_quiet_calls": quiet(name, label, kind)
                for label in ("dvq_jax", "vq-pytorch")},
             "speedup": ratio}
      if kind == "fwd" and name in SEARCH_GFLOP:
        # The distance matmuls alone at the machine's GEMM peak: no search runs faster.
        row["search_gflop"] = SEARCH_GFLOP[name]
        row["gemm_floor_ms"] = 1e3 * SEARCH_GFLOP[name] / peak["jax"]
        print(f"{'':10s} the forward's distance matmuls ({SEARCH_GFLOP[name]:.2f} GFLOP) take"
              f" {row['gemm_floor_ms']:.1f} ms at XLA's GEMM peak")
      rows.append(row)
  print(f"# {load.report()}")
  results_file.write(args.output, rows, repeats=args.repeats,
                     torch_threads=torch.get_num_threads(),
                     vector_quantize_pytorch=importlib.metadata.version("vector-quantize-pytorch"),
                     gemm_peak_gflop_per_s=peak, other_load=load.report())


if __name__ == "__main__":
  main()
