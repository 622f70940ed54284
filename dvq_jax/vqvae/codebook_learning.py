"""Stateful codebook learning in the VQ-VAE trainer: EMA codebooks, k-means init, dead-code restart.

Wires the pure functions of `dvq_jax.quantizers` (`ema_codebooks`, `kmeans_init`,
`restart_dead_codes`) into the train state and step. Config fields (see `defaults.py`):

  codebook_update = "gradient" | "ema", ema_decay, ema_epsilon
      "ema": the codebooks are not trained by the optimizer (the loss drops the codebook term,
      the commitment term still trains the encoder) but by the EMA of the batch's slices and
      codes; the EMA state is `state["codebook_state"]` = {"cluster_size" (L, K),
      "embed_sum" (L, K, D)}.
  kmeans_init, kmeans_iterations, kmeans_batches
      before step 1, k-means on the encoder outputs of the first `kmeans_batches` batches sets
      the codebooks (`kmeans_state`; the loop checkpoints the result as step 0).
  dead_code_threshold (0 = off)
      after every step, codes whose usage (the EMA cluster size; with gradient codebooks an EMA of
      the per-batch counts with decay `ema_decay`, `state["codebook_state"]["cluster_size"]`)
      is below the threshold move onto random batch vectors of their slice, drawn with the key
      `fold_in(fold_in(key(seed), 1), step)`; metric `codes_restarted` (codes per step).

Every quantizer's latents are seen as depthwise slices `(..., L, D)` with codes `(..., L)`
(`depthwise_view`): dvq's L feature slices; mvq's whole vector, once per codebook; vq's vector
with L = 1; svq's positions in L groups. All statistics are plain reductions over the batch, so
under the batch-sharded jit of `training.loop` they are over the global batch.
"""

import jax
import jax.numpy as jnp
import ml_collections
import optax

from dvq_jax import quantizers as q
from dvq_jax.training import optim
from dvq_jax.vqvae import objective
from dvq_jax.vqvae.bottleneck import codes_by_codebook
from dvq_jax.vqvae.model import VQVAE

CODEBOOK_UPDATES = ("gradient", "ema")
_RESTART_STREAM, _KMEANS_STREAM = 1, 2  # fold_in streams of key(seed), apart from model init


def is_stateful(config: ml_collections.ConfigDict) -> bool:
  """Whether the train state needs `"codebook_state"` (EMA codebooks or dead-code restart)."""
  return config.codebook_update == "ema" or config.dead_code_threshold > 0


def depthwise_view(model: VQVAE, latents: jax.Array, codes: jax.Array | None = None):
  """The latents as the slices `(..., L, D)` each codebook quantizes, and codes `(..., L)`.

  Args:
    model: the VQVAE (its quantizer kind, L and D).
    latents: float `(batch, h, w, C)` encoder output.
    codes: the quantizer's codes (`(batch, h, w, L)` or `(batch, h, w)`), or None.

  Returns:
    `(slices, codes)`: slices float32 `(..., L, D)` (l2-normalised when the model has cosine
    codes, whose search compares unit vectors), codes int32 `(..., L)` or None.
  """
  kind, dim = model.quantizer, model.codebook_dim
  num_codebooks = 1 if kind == "vq" else model.num_codebooks
  z = latents.astype(jnp.float32)
  batch = z.shape[0]
  if kind == "dvq":
    slices = z.reshape(*z.shape[:-1], num_codebooks, dim)
  elif kind == "mvq":
    slices = jnp.broadcast_to(z[..., None, :], (*z.shape[:-1], num_codebooks, dim))
  elif kind == "vq":
    slices = z[..., None, :]
  else:  # svq: the h*w positions, row-major, in L contiguous groups
    slices = z.reshape(batch, num_codebooks, -1, dim).transpose(0, 2, 1, 3)
  if getattr(model, "cosine", False):
    slices = q.l2_normalize(slices)
  if codes is None:
    return slices, None
  codes = codes_by_codebook(kind, codes, num_codebooks).reshape(slices.shape[:-1])
  return slices, codes


def init_codebook_state(config: ml_collections.ConfigDict, codebooks: jax.Array) -> dict:
  """`state["codebook_state"]` for codebooks `(L, K, D)`: every code one pseudo-vector of itself."""
  state = {"cluster_size": jnp.ones(codebooks.shape[:2], jnp.float32)}
  if config.codebook_update == "ema":
    state["embed_sum"] = codebooks.astype(jnp.float32)
  return state


def _with_codebooks(params: dict, codebooks: jax.Array) -> dict:
  return {**params, "quantize": {**params["quantize"], "codebooks": codebooks}}


def update_codebooks(config: ml_collections.ConfigDict, codebooks: jax.Array,
                     codebook_state: dict, slices: jax.Array, codes: jax.Array, key: jax.Array):
  """One step of EMA learning and/or dead-code restart.

  Args:
    config: reads codebook_update, ema_decay, ema_epsilon, dead_code_threshold.
    codebooks: `(L, K, D)` float32, after the optimizer's step.
    codebook_state: `init_codebook_state`'s dict.
    slices, codes: `depthwise_view` of the batch.
    key: the restart key of this step.

  Returns:
    `(codebooks, codebook_state, metrics)`; metrics has `codes_restarted` (float32) when
    restart is on.
  """
  ema_state = None
  if config.codebook_update == "ema":
    ema = q.ema_codebooks(config.ema_decay, config.ema_epsilon)
    codebooks, ema_state = ema.update(slices, codes, q.EmaState(**codebook_state))
    cluster_size = ema_state.cluster_size
  else:  # the same EMA of the per-code counts, for the restart to read
    num_codebooks, codebook_size = codebooks.shape[:2]
    flat = codes.reshape(-1, num_codebooks)
    counts = jnp.zeros((num_codebooks, codebook_size), jnp.float32).at[
        jnp.broadcast_to(jnp.arange(num_codebooks), flat.shape), flat].add(1.0)
    decay = config.ema_decay
    cluster_size = decay * codebook_state["cluster_size"] + (1.0 - decay) * counts
  metrics = {}
  threshold = config.dead_code_threshold
  if threshold > 0:
    out = q.restart_dead_codes(key, codebooks, cluster_size, slices, threshold=threshold,
                               ema_state=ema_state)
    codebooks = out.codebooks
    if ema_state is not None:
      ema_state = out.ema_state
      cluster_size = ema_state.cluster_size
    else:  # as restart_dead_codes resets an EMA state: the new code counts as max(threshold, 1)
      cluster_size = jnp.where(out.dead, max(float(threshold), 1.0), cluster_size)
    metrics["codes_restarted"] = out.num_restarted.astype(jnp.float32)
  new_state = {"cluster_size": cluster_size}
  if ema_state is not None:
    new_state["embed_sum"] = ema_state.embed_sum
  return codebooks, new_state, metrics


def train_step(state: dict, images: jax.Array, *, model: VQVAE, tx: optax.GradientTransformation,
               config: ml_collections.ConfigDict):
  """The VQ-VAE step with stateful codebooks: `(state, images) -> (state, metrics)`.

  The optimizer steps on the loss (without its codebook term for EMA codebooks, whose gradient
  is then zero; in `config.microbatches` passes, `objective.loss_and_gradient`), then
  `update_codebooks` writes the EMA / restarted codebooks into the params; their statistics
  are over the whole batch.
  """
  (value, aux), grads, (latents, codes) = objective.loss_and_gradient(
      state["params"], model, images, microbatches=config.microbatches,
      codebook_loss=config.codebook_update != "ema")
  stepped = optim.apply_gradients(state, grads, tx)
  slices, codes = depthwise_view(model, jax.lax.stop_gradient(latents), codes)
  key = jax.random.fold_in(jax.random.fold_in(jax.random.key(config.seed), _RESTART_STREAM),
                           state["step"])
  codebooks, codebook_state, restart_metrics = update_codebooks(
      config, stepped["params"]["quantize"]["codebooks"], state["codebook_state"], slices,
      codes, key)
  new_state = {**stepped, "params": _with_codebooks(stepped["params"], codebooks),
               "codebook_state": codebook_state}
  metrics = {"loss": value, "grad_norm": optax.tree.norm(grads), **aux, **restart_metrics}
  return new_state, metrics


def kmeans_state(state: dict, images: jax.Array, *, model: VQVAE,
                 config: ml_collections.ConfigDict) -> dict:
  """The step-0 state with k-means codebooks from the encoder outputs of `images`.

  Runs `kmeans_init` (k-means++ and `config.kmeans_iterations` Lloyd steps, key
  `fold_in(key(seed), 2)`) per codebook on `depthwise_view` of the latents, writes the result
  into the params and restarts `codebook_state` from it. Jittable; `images` uint8
  `(N, H, W, C)`, e.g. the first `kmeans_batches` batches.
  """
  latents = model.apply({"params": state["params"]}, images, method=model.latents)
  slices, _ = depthwise_view(model, latents)
  key = jax.random.fold_in(jax.random.key(config.seed), _KMEANS_STREAM)
  codebooks = q.kmeans_init(key, slices, model.codebook_size,
                            num_iters=config.kmeans_iterations).astype(jnp.float32)
  new_state = {**state, "params": _with_codebooks(state["params"], codebooks)}
  if "codebook_state" in state:
    new_state["codebook_state"] = init_codebook_state(config, codebooks)
  return new_state
