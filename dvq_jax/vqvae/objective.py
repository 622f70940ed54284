"""The training loss of the DVQ-VAE and the per-batch sums its evaluation accumulates.

Both are pure functions of `(params, model, images)`; `params` is the `"params"` collection,
`model.init(key, images)["params"]`, and the model a `VQVAE` from `vqvae.build_model`.
"""

import jax
import jax.numpy as jnp

from dvq_jax.vqvae import likelihoods
from dvq_jax import metrics
from dvq_jax.vqvae.model import VQVAE
from dvq_jax.vqvae.bottleneck import codes_by_codebook
from dvq_jax.vqvae.hierarchy import split_levels
from dvq_jax.vqvae.model_fields import codes_per_image

__all__ = ["code_counts", "codes_per_image", "encode_code_counts", "eval_stats",
           "loss_and_gradient", "loss_and_output", "loss_fn"]

# aux entries that are batch means (a microbatched step averages them); the rest are
# histogram statistics, recomputed from the whole batch's codes.
_MEAN_AUX = ("recon_bits_per_dim", "vq_loss", "codebook_loss", "commitment_loss")


def loss_fn(params, model: VQVAE, images: jax.Array) -> tuple[jax.Array, dict[str, jax.Array]]:
  """Loss of one batch and its diagnostics, for `jax.value_and_grad(loss_fn, has_aux=True)`.

  loss = mean over images of `likelihoods.train_loss` / (H*W*C) + quantizer loss
  (codebook_loss + beta * commitment_loss, beta on the commitment/encoder term as in van den
  Oord et al.; the DVQ paper's Eq. 2/4 print beta on d(sg(z), z_q); reduced over features as
  `config.quantizer_loss_reduction` says). Dividing by H*W*C makes the
  reconstruction term nats per subpixel (for mse: the mean squared error in [-1, 1] units), so
  its scale against the quantizer loss and the learning rate do not depend on the resolution.

  Args:
    params: the model's `"params"` collection.
    model: the VQVAE.
    images: uint8 `(batch, height, width, C)`.

  Returns:
    `(loss, aux)`: loss a float32 scalar; aux float32 `recon_bits_per_dim` (batch mean of the
    head's NLL), `vq_loss`, `codebook_loss`, `commitment_loss` scalars and `perplexity`,
    `usage` `(L,)` over the batch (`(1,)` for vq).
  """
  loss, aux, _ = loss_and_output(params, model, images)
  return loss, aux


def loss_and_output(params, model: VQVAE, images: jax.Array, *, codebook_loss: bool = True,
                    key: jax.Array | None = None):
  """`loss_fn`'s `(loss, aux)` and the model's output (latents and codes included).

  With `codebook_loss=False` the loss leaves out the codebook term (its gradient reaches only
  the codebooks), for codebooks learned otherwise (EMA, `vqvae.codebook_learning`); the
  commitment term still trains the encoder and `aux["vq_loss"]` still reports both terms.
  `key` is the `"codes"` rng of sampled codes (`config.code_temperature > 0`).
  """
  out = model.apply({"params": params}, images, rngs=None if key is None else {"codes": key})
  dims = images.shape[1] * images.shape[2] * images.shape[3]
  train = likelihoods.train_loss(model.likelihood, out.head, images)
  nll = likelihoods.nll(model.likelihood, out.head, images)
  quantizer_loss = out.quant.loss if codebook_loss else model.beta * out.quant.commitment_loss
  loss = jnp.mean(train) / dims + quantizer_loss
  aux = {
      "recon_bits_per_dim": metrics.recon_bits_per_dim(jnp.mean(nll), dims),
      "vq_loss": out.quant.loss,
      "codebook_loss": out.quant.codebook_loss,
      "commitment_loss": out.quant.commitment_loss,
      "perplexity": out.quant.perplexity,
      "usage": out.quant.usage,
  }
  return loss, jax.tree.map(lambda x: x.astype(jnp.float32), aux), out


def loss_and_gradient(params, model: VQVAE, images: jax.Array, *, microbatches: int = 1,
                      codebook_loss: bool = True, key: jax.Array | None = None):
  """The loss, aux and gradient of `loss_and_output` over a batch, in `microbatches` passes.

  With `microbatches = M > 1` the batch is split into M strided slices (`images[i::M]`, so
  each device's rows stay on it under a batch-sharded jit) that run forward and backward one
  after another, unrolled in the jitted step (a `lax.scan` runs XLA:CPU's convolutions ~6x
  slower, benchmarks/RESULTS.md). Every term of the loss is a mean over images, so the mean of
  the M slices' losses and gradients is the whole batch's, up to float rounding; the mean aux
  entries are averaged likewise, and `perplexity` / `usage` come from the code counts of the
  whole batch. It is for speed on CPUs, not memory: XLA schedules the unrolled passes freely
  (the `:official` step's temporaries at batch 128: 1,882 MiB whole, 1,647 MiB in 4 passes).
  lfq's entropy penalty, which has a batch-entropy term, is not a mean over images
  (`validation` rejects lfq with M > 1).

  Args:
    params: the model's `"params"` collection.
    model: the VQVAE.
    images: uint8 `(batch, height, width, C)`, batch divisible by `microbatches`.
    microbatches: M >= 1.
    codebook_loss: as in `loss_and_output`.
    key: as in `loss_and_output` (pass i of M uses `fold_in(key, i)`).

  Returns:
    `((loss, aux), grads, (latents, codes))`: `loss_fn`'s loss and aux, the gradient of the
    loss with respect to `params`, and the model's latents and codes for the whole batch in its
    original order (for codebook statistics, `vqvae.codebook_learning`).
  """
  def value(p, x, k):
    loss, aux, out = loss_and_output(p, model, x, codebook_loss=codebook_loss, key=k)
    return loss, (aux, out.latents, out.quant.codes)

  value_and_grad = jax.value_and_grad(value, has_aux=True)
  pass_key = lambda i: None if key is None else jax.random.fold_in(key, i)
  if microbatches == 1:
    (loss, (aux, latents, codes)), grads = value_and_grad(params, images, key)
    return (loss, aux), grads, (latents, codes)
  batch = images.shape[0]
  if batch % microbatches:
    raise ValueError(f"batch {batch} is not divisible by microbatches = {microbatches}")
  strided = images.reshape(batch // microbatches, microbatches, *images.shape[1:])
  passes = (value_and_grad(params, strided[:, i], pass_key(i)) for i in range(microbatches))
  losses, auxes, latents, codes, grads = zip(*(
      (loss, aux, latents, codes, grads) for (loss, (aux, latents, codes)), grads in passes))

  def mean(*xs):
    return sum(xs) / microbatches

  def unstride(*xs):  # slice i's row j is the batch's row j*M + i
    return jnp.stack(xs, axis=1).reshape(batch, *xs[0].shape[1:])

  latents, codes = unstride(*latents), unstride(*codes)
  aux = {k: mean(*(a[k] for a in auxes)) for k in _MEAN_AUX}
  counts = code_counts(model, codes, jnp.ones((batch,), bool))
  aux["perplexity"] = metrics.perplexity_from_counts(counts)
  aux["usage"] = metrics.usage_from_counts(counts).astype(jnp.float32)
  loss, grads = mean(*losses), jax.tree.map(mean, *grads)
  return (loss, aux), grads, (latents, codes)


def eval_stats(params, model: VQVAE, images: jax.Array, mask: jax.Array) -> dict[str, jax.Array]:
  """Sums over the real (mask = 1) images of a padded batch, to add up over a whole test set.

  Args:
    params: the model's `"params"` collection.
    model: the VQVAE.
    images: uint8 `(batch, height, width, C)`.
    mask: `(batch,)` bool or 0/1; padding examples (0) count nowhere.

  Returns:
    float32 `nll_nats` (NLL summed over images and subpixels), `sq_error` (squared error of
    `likelihoods.mean_image` in [0, 255] units, summed likewise), `ssim` (`metrics.ssim` of it,
    summed over images), `count` (number of images) scalars and `code_counts` `(L, K)` (`(1, K)`
    for vq): how often each code of each codebook was chosen. Over a test set: bits/dim = `metrics.recon_bits_per_dim(nll_nats, count*H*W*C)`,
    PSNR = `metrics.psnr_from_mse(sq_error / (count*H*W*C))`, SSIM = ssim / count,
    `metrics.usage_from_counts` and `metrics.perplexity_from_counts` of code_counts.
    Context heads (`vqvae.context`): the mean image is decoded from the codes alone, group by
    group, and `shuffled_nll_nats` adds the NLL of each real image under the next real
    image's codes (the last under the first's; the real images must come first in the batch).
  """
  out = model.apply({"params": params}, images, jnp.asarray(mask).astype(bool))
  weight = jnp.asarray(mask).astype(jnp.float32)
  nll = likelihoods.nll(model.likelihood, out.head, images)
  stats = {}
  if model.likelihood in likelihoods.CONTEXT_NAMES:
    # The reconstruction from the codes alone (out.head saw the true neighbours), and the NLL
    # with every image's codes replaced by the next real image's.
    base = model.apply({"params": params}, out.quant.codes, method=model.decode)
    recon = model.apply({"params": params}, base, method=model.mean_image)
    count = jnp.maximum(jnp.sum(jnp.asarray(mask).astype(jnp.int32)), 1)
    others = base[(jnp.arange(images.shape[0]) + 1) % count]  # real images form a prefix
    shuffled = model.apply({"params": params}, others, images, method=model.conditioned_head)
    stats["shuffled_nll_nats"] = jnp.sum(weight * likelihoods.nll(model.likelihood, shuffled,
                                                                  images))
  else:
    recon = likelihoods.mean_image(model.likelihood, out.head, images.shape[-1])
  sq_error = jnp.sum(jnp.square(recon - images.astype(jnp.float32)), axis=(1, 2, 3))
  return {
      "nll_nats": jnp.sum(weight * nll),
      "sq_error": jnp.sum(weight * sq_error),
      "ssim": jnp.sum(weight * metrics.ssim(recon, images)),
      "count": jnp.sum(weight),
      "code_counts": code_counts(model, out.quant.codes, mask),
      **stats,
  }


def code_counts(model: VQVAE, codes: jax.Array, mask: jax.Array) -> jax.Array:
  """How often each code of each codebook occurs in the real (mask = 1) images of a batch.

  Args:
    model: the VQVAE.
    codes: the layout `model.encode` returns, `(batch, h, w, L)` or `(batch, h, w)`.
    mask: `(batch,)` bool or 0/1.

  Returns:
    float32 `(L, K)` (`(1, K)` for vq, `(L*M, K)` for rvq, `(L, prod(fsq_levels))` for fsq,
    `(L, 2^D)` for lfq), pooled over the latent positions; with `levels` = 2 the top level's
    rows follow the bottom's (`2L` rows).
  """
  if getattr(model, "levels", 1) == 2:
    # One histogram per codebook: the bottom level's L, then the top level's own L.
    return jnp.concatenate([_level_counts(model, level, mask) for level in split_levels(codes)])
  return _level_counts(model, codes, mask)


def _level_counts(model: VQVAE, codes: jax.Array, mask: jax.Array) -> jax.Array:
  weight = jnp.asarray(mask).astype(jnp.float32)
  num_codebooks = model.num_codebooks if model.quantizer == "svq" else model.codes_per_position
  codes = codes_by_codebook(model.quantizer, codes, num_codebooks)  # (B, N, L)
  return jnp.zeros((num_codebooks, model.alphabet_size), jnp.float32).at[
      jnp.arange(num_codebooks), codes].add(jnp.broadcast_to(weight[:, None, None], codes.shape))


def encode_code_counts(params, model: VQVAE, images: jax.Array, mask: jax.Array) -> jax.Array:
  """`code_counts` of a padded batch of uint8 images, running the encoder only."""
  codes = model.apply({"params": params}, images, method=model.encode)
  return code_counts(model, codes, mask)
