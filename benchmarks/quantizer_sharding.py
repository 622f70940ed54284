"""Data-parallel `depthwise_quantize` on 1, 2, 4, 8 simulated CPU devices, fixed per-device batch.

Each device count runs in its own subprocess (`--xla_force_host_platform_device_count`). z is
`(16 * devices, 8, 8, L*D)` sharded over a `data` mesh axis, codebooks `(L, K, D)` replicated
(L=8, K=512, D=8: the issue-9 setting per device). Two variants are timed per device count:

* sharded: the library as is -- each device searches only its own rows;
* gathered: z is first constrained to be replicated, so every device searches the whole global
  batch (what the search compiled to before it stopped gathering).

Simulated devices share this machine's cores, so the figure to compare is wall time divided by
the number of devices ("per device"): flat for the sharded search, growing with the device count
for the gathered one.

    python benchmarks/quantizer_sharding.py            # ~2-4 min on 2 cores
"""

import argparse
import json
import os
import subprocess
import sys
import time

CHILD = r'''
import json, sys, time
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from dvq_jax import quantizers as q
per_device, repeats = int(sys.argv[1]), int(sys.argv[2])
devices = jax.device_count()
mesh = Mesh(np.array(jax.devices()), ("data",))
data, replicated = NamedSharding(mesh, P("data")), NamedSharding(mesh, P())
z = jax.device_put(jax.random.normal(jax.random.key(0), (per_device * devices, 8, 8, 64)), data)
codebooks = jax.device_put(jax.random.normal(jax.random.key(1), (8, 512, 8)), replicated)

def step(z, e, gather):
  if gather:
    z = jax.lax.with_sharding_constraint(z, replicated)
  out = q.depthwise_quantize(z, e)
  return jnp.sum(out.quantized) + out.loss

result = {"devices": devices}
for gather in (False, True):
  for name, fn in (("forward", lambda z, e, g=gather: q.depthwise_quantize(
                        jax.lax.with_sharding_constraint(z, replicated) if g else z, e).codes),
                   ("fwd+bwd", jax.grad(lambda z, e, g=gather: step(z, e, g), argnums=(0, 1)))):
    compiled = jax.jit(fn, in_shardings=(data, replicated)).lower(z, codebooks).compile()
    jax.block_until_ready(compiled(z, codebooks))
    times = []
    for _ in range(repeats):
      start = time.perf_counter()
      jax.block_until_ready(compiled(z, codebooks))
      times.append(time.perf_counter() - start)
    gathers = compiled.as_text().count(" all-gather(") + compiled.as_text().count(" all-gather-start(")
    result[f"{'gathered' if gather else 'sharded'} {name}"] = (min(times), gathers)
print("RESULT " + json.dumps(result))
'''


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--per_device_batch", type=int, default=16, help="images of 8x8 latents")
  parser.add_argument("--repeats", type=int, default=10)
  args = parser.parse_args()
  print(f"# quantizer_sharding: per-device batch {args.per_device_batch} x 8x8 positions, L=8,"
        f" K=512, D=8; {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC;"
        f" {os.cpu_count()} CPUs; load {os.getloadavg()}")
  print("| devices | variant | forward ms (per device) | fwd+bwd ms (per device) | all-gathers |")
  print("|---|---|---|---|---|")
  for devices in (1, 2, 4, 8):
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    proc = subprocess.run([sys.executable, "-c", CHILD, str(args.per_device_batch),
                           str(args.repeats)], env=env, capture_output=True, text=True,
                          check=True)
    result = json.loads(proc.stdout.split("RESULT ", 1)[1])
    for variant in ("sharded", "gathered"):
      (fwd, fwd_gathers), (bwd, bwd_gathers) = (result[f"{variant} forward"],
                                                result[f"{variant} fwd+bwd"])
      print(f"| {devices} | {variant} | {1e3 * fwd:.1f} ({1e3 * fwd / devices:.1f}) |"
            f" {1e3 * bwd:.1f} ({1e3 * bwd / devices:.1f}) | {fwd_gathers} / {bwd_gathers} |",
            flush=True)
  print(f"load {os.getloadavg()}")


if __name__ == "__main__":
  main()
