"""Every batch statistic of the toolbox is global: a batch-sharded jit on 8 simulated CPU devices
equals the unsharded computation (EMA update, dead-code restart, k-means init, LFQ entropy, RVQ).

One subprocess, so XLA_FLAGS can give it 8 devices while the rest of the suite keeps one.
"""

from tests.conftest import run_on_8_devices

_SCRIPT = r"""
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from dvq_jax import quantizers as q

assert jax.device_count() == 8
mesh = Mesh(np.array(jax.devices()), ("data",))
data, rep = NamedSharding(mesh, P("data")), NamedSharding(mesh, P())
rng = np.random.default_rng(0)
L, K, D = 3, 16, 4
slices = jnp.asarray(rng.normal(size=(64, L, D)), jnp.float32)
codebooks = jnp.asarray(rng.normal(size=(L, K, D)), jnp.float32)
key = jax.random.key(1)

def step(key, slices, codebooks):
  ema = q.ema_codebooks(0.9)
  out = q.depthwise_quantize(slices.reshape(-1, L * D), codebooks)
  new, state = ema.update(slices, out.codes, ema.init(codebooks))
  restart = q.restart_dead_codes(key, new, state.cluster_size, slices, threshold=1.0,
                                 ema_state=state)
  lfq = q.lookup_free_quantize(slices.reshape(-1, L * D)[:, :10])
  rvq = q.depthwise_residual_quantize(slices.reshape(-1, L * D), jnp.stack([codebooks] * 2, 1))
  init = q.kmeans_init(key, slices, K, num_iters=2)
  return new, state, restart, lfq.loss, rvq.loss, rvq.perplexity, init

one = jax.jit(step)(key, slices, codebooks)
sharded = jax.jit(step, in_shardings=(rep, data, rep), out_shardings=rep)(
    key, jax.device_put(slices, data), jax.device_put(codebooks, rep))
assert int(one[2].num_restarted) > 0
for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(sharded), strict=True):
  np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
print("OK")
"""


def test_toolbox_statistics_are_global_on_8_devices():
  proc = run_on_8_devices(_SCRIPT)
  assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr[-3000:]
