"""Speed of the toolbox's quantizer families against vector-quantize-pytorch, same process.

Four matched pairs, forward and forward+backward (gradients w.r.t. the input, and the codebooks
where they are learned), implementations taking turns as in `quantizer_bench.py` (whose timing
and load accounting this script reuses):

* EMA DVQ: `depthwise_quantize` + `ema_codebooks().update` in one jitted step against
  `VectorQuantize(heads=L, separate_codebook_per_head=True, ema_update=True)` (which updates its
  EMA codebooks inside every training-mode forward);
* RVQ: `residual_quantize` against `ResidualVQ(learnable_codebook=True, ema_update=False)`;
* FSQ: `finite_scalar_quantize` against `FSQ`;
* LFQ: `lookup_free_quantize` against `LFQ` (same entropy weights, inverse temperature 100).

Codes are compared on the first call (same codebooks, same data): all four algorithms are
deterministic, so any difference would be a float32 near-tie.

    PYTHONPATH=. python benchmarks/toolbox_bench.py [--repeats 5]
"""

import argparse
import datetime
import functools
import importlib.metadata
import platform

import jax
import jax.numpy as jnp
import numpy as np
import psutil
import torch
from quantizer_bench import OtherLoad
from quantizer_bench import best_time
from quantizer_bench import timed
from vector_quantize_pytorch import FSQ
from vector_quantize_pytorch import LFQ
from vector_quantize_pytorch import ResidualVQ
from vector_quantize_pytorch import VectorQuantize

from dvq_jax import quantizers as q

BETA = 0.25
EMA = dict(num=8192, levels=8, dim=32, size=512, decay=0.99)
RVQ = dict(num=8192, dim=64, stages=8, size=1024)
FSQ_LEVELS = (8, 5, 5, 5)
FSQ_NUM = 262144
LFQ_BITS, LFQ_NUM = 10, 16384


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
  # vector-quantize-pytorch puts dimension 0 in the most significant bit, dvq_jax in the least.
  ours_codes = np.asarray(jax.jit(forward)(jnp.asarray(z))[0])
  ours_msb = sum(((ours_codes >> i) & 1) << (LFQ_BITS - 1 - i) for i in range(LFQ_BITS))
  peer = _torch_pair(module, z_t, lambda out: out[0].sum() + out[2])
  return ours, peer, (ours_msb, peer_codes)


FAMILIES = {"EMA DVQ": ema_dvq, "RVQ": rvq, "FSQ": fsq, "LFQ": lfq}
SETTINGS = {
    "EMA DVQ": (f"N={EMA['num']}, L={EMA['levels']}, D={EMA['dim']}, K={EMA['size']},"
                f" decay={EMA['decay']}"),
    "RVQ": f"N={RVQ['num']}, D={RVQ['dim']}, M={RVQ['stages']} stages, K={RVQ['size']}",
    "FSQ": f"N={FSQ_NUM}, levels={FSQ_LEVELS}",
    "LFQ": f"N={LFQ_NUM}, D={LFQ_BITS} bits (K=2^{LFQ_BITS})",
}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--families", default=",".join(FAMILIES))
  args = parser.parse_args()
  now = datetime.datetime.now(datetime.timezone.utc)
  print(f"# toolbox_bench {now:%Y-%m-%d %H:%M} UTC; {psutil.cpu_count()} CPUs; python"
        f" {platform.python_version()}, jax {jax.__version__}, torch {torch.__version__}"
        f" ({torch.get_num_threads()} threads), vector-quantize-pytorch"
        f" {importlib.metadata.version('vector-quantize-pytorch')}")
  load = OtherLoad()
  rng = np.random.default_rng(0)
  calls = {}
  for name in args.families.split(","):
    ours, peer, (ours_codes, peer_codes) = FAMILIES[name](rng)
    ours_codes, peer_codes = np.asarray(ours_codes), np.asarray(peer_codes)
    same = np.count_nonzero(ours_codes.reshape(peer_codes.shape) == peer_codes)
    print(f"# {name} ({SETTINGS[name]}): codes agree {same} of {peer_codes.size}")
    for label, (fwd, bwd) in (("dvq_jax", ours), ("vq-pytorch", peer)):
      fwd(), bwd()  # compile / warm up
      calls[name, label, "fwd"] = fwd
      calls[name, label, "fwd+bwd"] = bwd
  times = {key: [] for key in calls}
  for _ in range(args.repeats):
    for key, fn in calls.items():
      times[key] += timed(fn)
  print("# ms: min over the quiet calls ('*': none quiet, min over all), [quiet count]")
  print(f"{'family':10s} {'kind':8s} {'dvq_jax':>12s} {'vq-pytorch':>12s} {'speedup':>8s}")
  for name in dict.fromkeys(k[0] for k in calls):
    for kind in ("fwd", "fwd+bwd"):
      cells = []
      for label in ("dvq_jax", "vq-pytorch"):
        samples = times[name, label, kind]
        quiet = sum(s for _, s in samples)
        cells.append(f"{1e3 * best_time(samples):8.1f}{' ' if quiet else '*'}[{quiet:2d}]")
      ratio = best_time(times[name, "vq-pytorch", kind]) / best_time(times[name, "dvq_jax", kind])
      print(f"{name:10s} {kind:8s} {cells[0]:>12s} {cells[1]:>12s} {ratio:7.1f}x")
  print(f"# {load.report()}")


if __name__ == "__main__":
  main()
