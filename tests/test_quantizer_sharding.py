"""Data-parallel quantization on 8 simulated CPU devices: each device searches its own rows.

The check runs in a subprocess (`XLA_FLAGS` must give it 8 devices before jax starts; the rest
of the suite keeps one). For every quantizer it compiles `jax.grad` of `sum(quantized) + loss`
with z sharded over a `data` mesh axis and the codebooks replicated, and asserts that the HLO
holds no all-gather (the search used to gather the latents and loop over the global rows) and
that the codes equal the unsharded codes (for DVQ with both search forms). The same for the
gradient of the VQ-VAE loss of `configs/cifar10.py:small`, whole and in two microbatches.
"""

import json

import pytest

from tests.conftest import run_on_8_devices

SCRIPT = r'''
import json, os, re
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from dvq_jax import flat_random
from dvq_jax import quantizers as q
from dvq_jax.vqvae import build_model, objective
from tests import config_files

assert jax.device_count() == 8
mesh = Mesh(np.array(jax.devices()), ("data",))
data, replicated = NamedSharding(mesh, P("data")), NamedSharding(mesh, P())
COLLECTIVES = ("all-gather", "all-reduce", "collective-permute", "all-to-all", "reduce-scatter")

def collectives(compiled):
  # An op's shape may be a tuple with spaces: match the opcode itself, e.g. " all-reduce(".
  ops = re.findall(r"\s(" + "|".join(COLLECTIVES) + r")(?:-start)?\(", compiled.as_text())
  return {name: ops.count(name) for name in COLLECTIVES if name in ops}

normal = lambda seed, shape: flat_random.normal(jax.random.key(seed), shape)
cases = {
    "depthwise_quantize": (q.depthwise_quantize, normal(0, (128, 8, 8, 64)), normal(1, (8, 512, 8))),
    "multi_codebook_quantize": (q.multi_codebook_quantize, normal(0, (128, 8, 8, 8)),
                                normal(1, (8, 512, 8))),
    "vector_quantize": (q.vector_quantize, normal(0, (128, 8, 8, 8)), normal(1, (512, 8))),
    "spatial_quantize": (q.spatial_quantize, normal(0, (128, 64, 8)), normal(1, (8, 512, 8))),
}
# The accelerators' search form too (this runs on CPU, whose default is "two_pass").
cases["depthwise_quantize argmin"] = cases["depthwise_quantize"]
report = {}
for name, (quantize, z, codebooks) in cases.items():
  os.environ["DVQ_NEAREST_SEARCH"] = "argmin" if name.endswith("argmin") else "two_pass"
  def objective_fn(z, e, quantize=quantize):
    out = quantize(z, e)
    return jnp.sum(out.quantized) + out.loss
  grad = jax.jit(jax.grad(objective_fn, argnums=(0, 1)), in_shardings=(data, replicated))
  forward = jax.jit(lambda z, e, quantize=quantize: quantize(z, e).codes,
                    in_shardings=(data, replicated))
  sharded_codes = forward(z, codebooks)
  report[name] = {
      "grad": collectives(grad.lower(z, codebooks).compile()),
      "forward": collectives(forward.lower(z, codebooks).compile()),
      "codes_equal": bool(np.array_equal(sharded_codes, jax.jit(lambda z, e, quantize=quantize:
                                                              quantize(z, e).codes)(z, codebooks))),
      "codes_sharded": len(sharded_codes.sharding.device_set) == 8,
  }

del os.environ["DVQ_NEAREST_SEARCH"]

config = config_files.load("configs/cifar10.py:small")
model = build_model(config, (32, 32, 3))
images = jnp.asarray(np.random.default_rng(2).integers(0, 256, (16, 32, 32, 3)), jnp.uint8)
params = jax.jit(model.init)(jax.random.key(3), images)["params"]
loss_grad = jax.jit(jax.grad(objective.loss_fn, has_aux=True), static_argnums=1,
                    in_shardings=(replicated, data))
report["cifar10_small_loss_grad"] = {"grad": collectives(loss_grad.lower(params, model, images).compile())}
micro_grad = jax.jit(lambda p, x: objective.loss_and_gradient(p, model, x, microbatches=2)[1],
                     in_shardings=(replicated, data))
report["cifar10_small_microbatched_grad"] = {
    "grad": collectives(micro_grad.lower(params, images).compile())}
print("REPORT " + json.dumps(report))
'''


@pytest.mark.slow
def test_sharded_quantizers_search_only_their_own_rows():
  proc = run_on_8_devices(SCRIPT)
  assert proc.returncode == 0, proc.stderr[-3000:]
  report = json.loads(proc.stdout.split("REPORT ", 1)[1])
  for name, found in report.items():
    assert "all-gather" not in found["grad"], (name, found)
    if name.startswith("cifar10_small"):  # parameter gradients: all-reduces only (1 measured);
      # microbatches are strided slices of each device's own rows: no gather either
      assert set(found["grad"]) == {"all-reduce"}, (name, found)
      continue
    assert found["codes_equal"] and found["codes_sharded"], (name, found)
    # The forward search needs no collective; code statistics (perplexity, usage) and the
    # losses are global means: all-reduces of (L, K) counts and scalars, never a gather.
    assert set(found["forward"]) <= {"all-reduce"}, (name, found)
    # The codebook gradient is one all-reduce of the scatter-added partial sums.
    assert set(found["grad"]) == {"all-reduce"}, (name, found)
