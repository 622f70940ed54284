"""Tiny VQ-VAE configs, images and training steps shared by the model, objective, training and
toolbox tests."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dvq_jax.vqvae import defaults
from dvq_jax.vqvae import objective
from tests import config_files

IMAGE_SHAPE = (8, 8, 3)  # 2 downsamples -> 2x2 latent positions


def tiny_config(quantizer: str = "dvq", likelihood: str = "categorical256", **model):
  """hidden 16, residual 8, one residual block, K=16, L=2, D=4, two mixture components."""
  config = defaults.learned_prior()
  defaults.shrink(config)
  config.quantizer = quantizer
  config.likelihood = likelihood
  config.model.num_mixtures = 2
  config.model.update(model)
  return config


def tiny_images(batch: int = 2, seed: int = 0) -> jax.Array:
  rng = np.random.default_rng(seed)
  return jnp.asarray(rng.integers(0, 256, (batch, *IMAGE_SHAPE)), jnp.uint8)


def init(model, images, seed: int = 0):
  return model.init(jax.random.key(seed, impl="rbg"), images)["params"]


def smooth_images() -> jax.Array:
  """4 smooth 8x8 images, a colour plus a horizontal ramp each: easy to learn on."""
  rng = np.random.default_rng(0)
  base = rng.integers(60, 190, (4, 1, 1, 3))
  ramp = np.arange(8)[None, None, :, None] * rng.integers(-6, 7, (4, 1, 1, 3))
  return jnp.asarray(np.broadcast_to(base + ramp, (4, *IMAGE_SHAPE)), jnp.uint8)


def adam_steps(model, params, images, steps: int, learning_rate: float = 1e-3):
  """`steps` jitted Adam steps on one batch -> (losses, recon bits/dim), one entry a step."""
  tx = optax.adam(learning_rate)

  @jax.jit
  def step(params, opt_state):
    (loss, aux), grads = jax.value_and_grad(objective.loss_fn, has_aux=True)(
        params, model, images)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss, aux

  opt_state = tx.init(params)
  losses, bits = [], []
  for _ in range(steps):
    params, opt_state, loss, aux = step(params, opt_state)
    losses.append(float(loss))
    bits.append(float(aux["recon_bits_per_dim"]))
  return losses, bits


def small(name: str = "cifar10", **overrides):
  """`configs/<name>.py:small` with dotted `overrides` (`"model.hidden_channels": 8`) set."""
  return config_files.load_with(f"configs/{name}.py:small", **overrides)
