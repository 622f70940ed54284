"""Codebooks trained alone on Gaussian blobs, all repetitions of one setting at once.

A setting is one model (VQ, DVQ or VQ^K+) at one (D, K, L, N_G). Its R repetitions differ in
their data and init seeds and run under `jax.vmap`: draw the blobs, draw the codebooks, train
them by gradient descent on the quantization objective (paper Eq. 1 without an encoder:
||sg(z) - e||^2, the `codebook_loss` of the quantizers) and measure the test loss. Settings that
differ only in K run as one jitted program too, their codebooks padded to the largest K with
code vectors that can never be chosen (exactly equivalent; see `simulate`).

The loss reported everywhere is the mean squared error per feature between a test point and its
quantized value, mean over points and over the D features: `codebook_loss / D`.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from dvq_jax.quantizers import depthwise_quantize
from dvq_jax.quantizers import init_codebooks
from dvq_jax.static_prior.blobs import Blobs
from dvq_jax.static_prior.blobs import make_blobs

# Value of every feature of a padding code vector; see `simulate`.
PAD_VALUE = 1e18


class Shape(NamedTuple):
  """One setting: N_G blobs in D features, L codebooks of K vectors of D/L features each."""

  num_factors: int
  dim: int
  num_codebooks: int
  codebook_size: int


class Group(NamedTuple):
  """Settings that differ only in K (`codebook_sizes`): they run as one padded program."""

  num_factors: int
  dim: int
  num_codebooks: int
  codebook_sizes: tuple[int, ...]


class Recipe(NamedTuple):
  """Training and data settings shared by every setting of a study (hashable: static args)."""

  steps: int
  learning_rate: float
  points_per_centre: int
  test_points_per_centre: int
  sigma: float
  init: str
  init_std: float


class Outcome(NamedTuple):
  """Results of repetitions of settings; `simulate` adds leading (S, R) axes to each field.

  Attributes:
    random_loss: test loss of the untrained initial codebooks (the random baseline).
    loss: test loss after training.
    curve: `(steps,)` training loss before each step.
    codebooks: `(L, K, D/L)` trained codebooks.
    codes_used: distinct trained code vectors chosen by the test points, mean over the L
      codebooks (codes that are never nearest to a training point get no gradient).
  """

  random_loss: jax.Array
  loss: jax.Array
  curve: jax.Array
  codebooks: jax.Array
  codes_used: jax.Array


def quantization_mse(codebooks: jax.Array, points: jax.Array) -> jax.Array:
  """Mean squared error per feature between `points` `(N, L*D)` and their DVQ quantization.

  With L = 1 this is plain VQ. Gradients reach the codebooks `(L, K, D)` only.

  >>> import jax.numpy as jnp
  >>> codebooks = jnp.array([[[0.], [1.]], [[0.], [1.]]])  # L=2, K=2, D=1
  >>> float(quantization_mse(codebooks, jnp.array([[0.5, 1.0]])))
  0.125
  """
  return depthwise_quantize(points, codebooks).codebook_loss / points.shape[-1]


def _fit(codebooks: jax.Array, blobs: Blobs, recipe: Recipe) -> Outcome:
  """Trains `(L, K, D/L)` codebooks on `blobs.train`, full batch, and scores them on the test."""
  optimizer = optax.adam(optax.cosine_decay_schedule(recipe.learning_rate, recipe.steps))
  loss_and_grad = jax.value_and_grad(quantization_mse)

  def step(carry, _):
    params, opt_state = carry
    loss, grads = loss_and_grad(params, blobs.train)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), loss

  (trained, _), curve = jax.lax.scan(step, (codebooks, optimizer.init(codebooks)), None,
                                     length=recipe.steps)
  test = depthwise_quantize(blobs.test, trained)
  return Outcome(random_loss=quantization_mse(codebooks, blobs.test),
                 loss=test.codebook_loss / blobs.test.shape[-1], curve=curve, codebooks=trained,
                 codes_used=jnp.mean(test.usage * trained.shape[1]))


def _blobs(data_key: jax.Array, num_factors: int, dim: int, recipe: Recipe) -> Blobs:
  return make_blobs(data_key, num_factors, dim, points_per_centre=recipe.points_per_centre,
                    test_points_per_centre=recipe.test_points_per_centre, sigma=recipe.sigma)


def _init(init_key: jax.Array, num_codebooks: int, codebook_size: int, dim: int,
          recipe: Recipe) -> jax.Array:
  return init_codebooks(init_key, num_codebooks, codebook_size, dim // num_codebooks,
                        scheme=recipe.init, scale=recipe.init_std)


def simulate_one(data_key: jax.Array, init_key: jax.Array, shape: Shape,
                 recipe: Recipe) -> Outcome:
  """One repetition of one setting, unbatched and unpadded: the reference `simulate` matches.

  Fields of the returned Outcome lack the leading (S, R) axes; codebooks are `(L, K, D/L)`.
  """
  blobs = _blobs(data_key, shape.num_factors, shape.dim, recipe)
  codebooks = _init(init_key, shape.num_codebooks, shape.codebook_size, shape.dim, recipe)
  return _fit(codebooks, blobs, recipe)


@functools.partial(jax.jit, static_argnames=("group", "recipe"))
def simulate(data_keys: jax.Array, init_keys: jax.Array, group: Group,
             recipe: Recipe) -> Outcome:
  """All S settings x R repetitions of a group as one program (nested `jax.vmap`).

  Setting s has K = `group.codebook_sizes[s]`; its codebooks are drawn at that K, exactly as
  `simulate_one` draws them, then padded to the group's largest K with rows at +`PAD_VALUE`.
  A padded row is never the nearest code of any point (its squared norm is (D/L) * 1e36, or inf
  in float32 for D/L > 340, against O(D/L * init_std^2) for real codes), so it gets an exactly
  zero gradient and Adam leaves it in place: every setting trains as if unpadded, and the S
  settings share one compiled program (the config check caps init_std at 1e6 to keep this so).
  Repetition r uses the same blobs (`data_keys[r]`) in every setting of the group.

  Args:
    data_keys: `(R,)` PRNG keys of the blobs.
    init_keys: `(S, R)` PRNG keys of the initial codebooks.
    group: N_G, D, L and the S codebook sizes K.
    recipe: steps, learning rate, points per centre, sigma and init scheme.

  Returns:
    Outcome with leading `(S, R)` axes; codebooks `(S, R, L, max K, D/L)`, padded rows included.

  >>> import jax
  >>> recipe = Recipe(steps=5, learning_rate=0.1, points_per_centre=4, test_points_per_centre=4,
  ...                 sigma=0.01, init="normal", init_std=1.0)
  >>> keys = jax.random.split(jax.random.key(0), 3)
  >>> out = simulate(keys, jax.numpy.stack([keys, keys]), Group(5, 4, 2, (3, 6)), recipe)
  >>> out.curve.shape, out.codebooks.shape
  ((2, 3, 5), (2, 3, 2, 6, 2))
  """
  blobs = jax.vmap(lambda key: _blobs(key, group.num_factors, group.dim, recipe))(data_keys)
  max_size = max(group.codebook_sizes)
  padded = []
  for keys, size in zip(init_keys, group.codebook_sizes):
    codebooks = jax.vmap(lambda key: _init(key, group.num_codebooks, size, group.dim, recipe))(
        keys)
    padded.append(jnp.pad(codebooks, ((0, 0), (0, 0), (0, max_size - size), (0, 0)),
                          constant_values=PAD_VALUE))
  over_repeats = jax.vmap(lambda c, b: _fit(c, b, recipe))
  return jax.vmap(over_repeats, in_axes=(0, None))(jnp.stack(padded), blobs)


def repeat_keys(seed: int, repeats: int, *ids: int) -> jax.Array:
  """`(repeats,)` keys, one per repetition, for the stream named by the integers `ids`.

  The same (seed, ids) always gives the same keys, whatever else runs in the study.

  >>> repeat_keys(0, 4, 1, 2).shape
  (4,)
  """
  key = jax.random.key(seed)
  for i in ids:
    key = jax.random.fold_in(key, i)
  return jax.random.split(key, repeats)
