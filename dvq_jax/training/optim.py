"""The optimizer and the gradient step every model of the project trains with."""

from collections.abc import Callable

import jax
import ml_collections
import optax


def make_optimizer(config: ml_collections.ConfigDict) -> optax.GradientTransformation:
  """Adam with a constant or cosine learning rate, after an optional linear warmup.

  Reads `learning_rate`, `lr_schedule` ("constant" | "cosine"), `warmup_steps` and
  `num_train_steps` (the cosine's length).
  """
  if config.lr_schedule == "cosine":
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, config.learning_rate, config.warmup_steps, config.num_train_steps)
  elif config.warmup_steps:
    schedule = optax.linear_schedule(0.0, config.learning_rate, config.warmup_steps)
  else:
    schedule = config.learning_rate
  return optax.adam(schedule)


def gradient_step(loss_fn: Callable, tx: optax.GradientTransformation) -> Callable:
  """A train step `(state, batch) -> (state, metrics)` for the loop in `training.loop`.

  Args:
    loss_fn: `(params, batch) -> (loss, aux)`, a scalar loss and a dict of float32 metrics.
    tx: the optimizer, e.g. `make_optimizer(config)`.

  Returns:
    A pure function of `state = {"step", "params", "opt_state"}` and a batch that takes one
    step of `tx` on the gradient of the loss; its metrics are `{"loss", "grad_norm", **aux}`
    (the gradient's global L2 norm, before the update).
  """
  def train_step(state, batch):
    (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"], batch)
    return apply_gradients(state, grads, tx), {"loss": loss, "grad_norm": optax.tree.norm(grads),
                                               **aux}

  return train_step


def apply_gradients(state: dict, grads, tx: optax.GradientTransformation) -> dict:
  """`state` after one step of `tx` on `grads`: new "params" and "opt_state", "step" + 1.

  Other entries of `state` (e.g. a VQ-VAE's "codebook_state") are kept as they are.
  """
  updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
  return {**state, "step": state["step"] + 1,
          "params": optax.apply_updates(state["params"], updates), "opt_state": opt_state}
