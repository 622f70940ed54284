"""Gradient estimators through the code choice: straight-through and the rotation trick.

Both estimators return exactly the chosen code vector e in the forward pass; they differ in the
gradient that reaches the encoder output z:

* straight-through (van den Oord et al. 2017): dL/dz = dL/dq;
* rotation trick (Fifty et al. 2024, "Restructuring Vector Quantization with the Rotation
  Trick"): q = sg(lambda R) z with lambda = ||e|| / ||z|| and R the rotation taking z/||z|| to
  e/||e|| (Eq. 4 of the paper, R = I - 2 r r^T + 2 e_hat z_hat^T, r = (z_hat + e_hat) /
  ||z_hat + e_hat||), so dL/dz = lambda R^T dL/dq: the output gradient carried back by the
  rotation, treated as a constant.
"""

import jax
import jax.numpy as jnp

GRADIENT_ESTIMATORS = ("straight_through", "rotation")

# Norms below this count as zero: the rotation of a zero vector is the identity.
_TINY = 1e-12


def check_gradient_estimator(gradient_estimator: str) -> None:
  if gradient_estimator not in GRADIENT_ESTIMATORS:
    raise ValueError(
        f"unknown gradient_estimator {gradient_estimator!r}; choose one of {GRADIENT_ESTIMATORS}"
    )


def straight_through(z: jax.Array, e: jax.Array) -> jax.Array:
  """Value e, gradient w.r.t. z the identity: `sg(e) + z - sg(z)`; shapes `(..., D)`."""
  sg = jax.lax.stop_gradient
  return sg(e) + (z - sg(z))


def _rotate(z: jax.Array, e: jax.Array) -> jax.Array:
  """lambda R z with lambda, R from sg(z), sg(e), applied without forming the D x D matrix."""
  sg = jax.lax.stop_gradient
  z0, e0 = sg(z), sg(e)
  z_norm = jnp.linalg.norm(z0, axis=-1, keepdims=True)
  e_norm = jnp.linalg.norm(e0, axis=-1, keepdims=True)
  z_hat = z0 / jnp.maximum(z_norm, _TINY)
  e_hat = e0 / jnp.maximum(e_norm, _TINY)
  both = z_hat + e_hat
  # z_hat = -e_hat leaves r undefined; r = 0 then still maps z_hat to e_hat (R z_hat = z_hat +
  # 2 e_hat), which is the limit the gradient would need anyway.
  r = both / jnp.maximum(jnp.linalg.norm(both, axis=-1, keepdims=True), _TINY)
  scale = jnp.where(z_norm > _TINY, e_norm / jnp.maximum(z_norm, _TINY), 1.0)

  def dot(a, b):
    return jnp.sum(a * b, axis=-1, keepdims=True)

  return scale * (z - 2.0 * r * dot(r, z) + 2.0 * e_hat * dot(z_hat, z))


def rotation_trick(z: jax.Array, e: jax.Array) -> jax.Array:
  """Value e, gradient w.r.t. z = lambda R^T times the output gradient (Fifty et al. 2024).

  Args:
    z: `(..., D)` encoder outputs.
    e: `(..., D)` the chosen codebook vectors (no gradient reaches them through this function).

  Returns:
    `(..., D)` in z's dtype, equal to e.

  >>> import jax, jax.numpy as jnp
  >>> z, e = jnp.array([2.0, 0.0]), jnp.array([0.0, 1.0])  # R = 90 degree turn, lambda = 1/2
  >>> jax.grad(lambda z: rotation_trick(z, e) @ jnp.array([1.0, 0.0]))(z).round(6).tolist()
  [0.0, -0.5]
  """
  sg = jax.lax.stop_gradient
  rotated = _rotate(z.astype(jnp.float32), e.astype(jnp.float32)).astype(z.dtype)
  return sg(e).astype(z.dtype) + (rotated - sg(rotated))


def estimate(gradient_estimator: str, z: jax.Array, e: jax.Array) -> jax.Array:
  """Applies the named estimator to `(..., D)` vectors z and their chosen codes e."""
  check_gradient_estimator(gradient_estimator)
  if gradient_estimator == "rotation":
    return rotation_trick(z, e)
  return straight_through(z, e)

