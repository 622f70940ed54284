"""The log-probability log softmax(logits)[x] of integer targets under K-way categoricals.

The VQ-VAE's 256-way head scores every subpixel with it (`vqvae.likelihoods`, C = 3 channels of
K = 256 values per pixel), the code prior every token (C = 1, K codes). Each is
logits[x] - logsumexp(logits): no log-softmax tensor and no one-hot is formed. The form
depends on the backend (`dvq_jax.backends.categorical_fused`):

  accelerators: `fused_log_probs`, the target's logit picked by a select against an iota and a
    hand-written gradient, one pass over the logits each way. A TPU lowers a gather of one
    element per row, and plain autodiff revisits the logits several times: with them the
    CIFAR-10 step's memory traffic was 89 GB on a TPU v5e (benchmarks/RESULTS.md).
  XLA:CPU: a gather and plain autodiff, whose value and gradient ran ~1.8x faster there than
    the select-sum and ~3x faster than one_hot * log_softmax.

Logits may be any float dtype (bfloat16 on accelerators); the log-sum-exp and the picked logit
are accumulated in float32, and the result is float32.
"""

import jax
import jax.numpy as jnp

from dvq_jax import backends


def _num_classes(logits: jax.Array, values: jax.Array) -> int:
  num_classes, rest = divmod(logits.shape[-1], values.shape[-1])
  if rest or logits.shape[:-1] != values.shape[:-1]:
    raise ValueError(f"logits {logits.shape} must be (..., C*K) for values (..., C), got values"
                     f" {values.shape}")
  return num_classes


def log_probs(logits: jax.Array, values: jax.Array) -> jax.Array:
  """log softmax(logits_c)[x_c], float32 `(..., C)`, in the backend's form (see the module doc).

  Args:
    logits: `(..., C*K)`, any float dtype; categorical c's logits are
      `logits[..., c*K:(c+1)*K]`.
    values: ints `(..., C)` in [0, K).

  >>> import jax.numpy as jnp
  >>> log_probs(jnp.zeros((2, 3 * 4)), jnp.array([[0, 1, 3], [2, 2, 2]])).shape
  (2, 3)
  """
  num_classes = _num_classes(logits, values)
  if backends.categorical_fused():
    return fused_log_probs(logits, values.astype(jnp.int32))
  grouped = logits.astype(jnp.float32).reshape(*logits.shape[:-1], values.shape[-1], num_classes)
  picked = jnp.take_along_axis(grouped, values.astype(jnp.int32)[..., None], axis=-1)[..., 0]
  return picked - jax.nn.logsumexp(grouped, axis=-1)


def _logsumexp(logits: jax.Array) -> jax.Array:
  """logsumexp over the last axis, accumulated in float32 whatever the logits' dtype."""
  top = jnp.max(logits, axis=-1, keepdims=True)
  total = jnp.sum(jnp.exp(logits.astype(jnp.float32) - top), axis=-1)
  return jnp.log(total) + top[..., 0].astype(jnp.float32)


def _slices(logits: jax.Array, num_categoricals: int) -> list[jax.Array]:
  # Lane-aligned slices of the logits, never a (..., C, K) view: on a TPU that view pads
  # C = 3 to 8-row tiles and relayouts the logits, several times the memory traffic.
  size = logits.shape[-1] // num_categoricals
  return [logits[..., c * size:(c + 1) * size] for c in range(num_categoricals)]


def _per_lane(x: jax.Array, num_classes: int) -> jax.Array:
  """`(..., C)` -> `(..., C*K)`, each categorical's entry over its K lanes (no relayout)."""
  categorical = jnp.arange(num_classes * x.shape[-1]) // num_classes
  out = x[..., :1]
  for c in range(1, x.shape[-1]):
    out = jnp.where(categorical == c, x[..., c:c + 1], out)
  return out


@jax.custom_vjp
def fused_log_probs(logits: jax.Array, values: jax.Array) -> jax.Array:
  """`log_probs`' accelerator form: float32 `(..., C)` for logits `(..., C*K)`, int32 values.

  The target's logit is picked by a select against an iota; the gradient with respect to the
  logits, onehot(x) - softmax(logits), is formed in one elementwise pass from the saved
  logsumexp and comes back in the logits' dtype.

  >>> import jax.numpy as jnp
  >>> float(fused_log_probs(jnp.zeros((1, 256)), jnp.array([[2]]))[0, 0])  # log(1/256)
  -5.545177459716797
  """
  return _fused_log_probs_fwd(logits, values)[0]


def _fused_log_probs_fwd(logits, values):
  num_classes = _num_classes(logits, values)
  slices = _slices(logits, values.shape[-1])
  lse = jnp.stack([_logsumexp(x) for x in slices], axis=-1)
  hit = lambda v: jnp.arange(num_classes, dtype=v.dtype) == v[..., None]
  picked = jnp.stack([jnp.sum(jnp.where(hit(values[..., c]), x, 0), axis=-1, dtype=jnp.float32)
                      for c, x in enumerate(slices)], axis=-1)
  return picked - lse, (logits, values, lse)


def _fused_log_probs_bwd(residuals, g):
  logits, values, lse = residuals
  num_classes = logits.shape[-1] // values.shape[-1]
  # One elementwise pass over all the logits: per-categorical slices would be concatenated after.
  lane = jnp.arange(logits.shape[-1], dtype=values.dtype) % num_classes
  onehot = (lane == _per_lane(values, num_classes)).astype(jnp.float32)
  softmax = jnp.exp(logits.astype(jnp.float32) - _per_lane(lse, num_classes))
  return (_per_lane(g, num_classes) * (onehot - softmax)).astype(logits.dtype), None


fused_log_probs.defvjp(_fused_log_probs_fwd, _fused_log_probs_bwd)
