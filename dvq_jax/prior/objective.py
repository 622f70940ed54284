"""The prior's training loss, the sums its evaluation accumulates, and the bits/dim bookkeeping.

All rates are code lengths of a VQ-VAE's codes divided by the H*W*C subpixels of the *images*,
so they add to the VQ-VAE's reconstruction bits/dim: `elbo = recon + rate_prior` bounds the
test NLL of the images (the encoder is deterministic, so the KL term is exactly the codes' code
length under the prior).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np

from dvq_jax import categorical
from dvq_jax import metrics


def token_nll(params, model, tokens, *, deterministic=True, dropout_key=None) -> jax.Array:
  """-log p(token t | tokens < t) in nats: int `(B, T)` -> float32 `(B, T)`.

  logsumexp(logits) - logits[token] from the model's logits (`categorical.log_probs`, in the
  backend's form), with no log-softmax tensor.
  """
  rngs = None if dropout_key is None else {"dropout": dropout_key}
  logits = model.apply({"params": params}, tokens, deterministic=deterministic, rngs=rngs,
                       method=model.logits)
  return -categorical.log_probs(logits, tokens[..., None])[..., 0]


def loss_fn(params, model, tokens, dropout_key) -> tuple[jax.Array, dict]:
  """Mean NLL per token (nats) of a batch `(B, T)`, with dropout; aux `bits_per_code`."""
  nll = token_nll(params, model, tokens, deterministic=False, dropout_key=dropout_key)
  loss = jnp.mean(nll)
  return loss, {"bits_per_code": loss / math.log(2)}


def eval_sums(params, model, tokens, mask, codebook_of_token) -> dict:
  """Sums over the real (mask = 1) sequences of a padded batch.

  Args:
    params: the prior's params.
    model: the `CodePrior`.
    tokens: int `(B, T)`.
    mask: `(B,)` bool or 0/1.
    codebook_of_token: `(T,)` int, the codebook l of each token.

  Returns:
    float32 `nll_nats` `(L,)` (the NLL of codebook l's tokens, summed over tokens and
    sequences) and `count` (sequences).
  """
  weight = jnp.asarray(mask, jnp.float32)
  per_token = jnp.sum(token_nll(params, model, tokens) * weight[:, None], axis=0)  # (T,)
  one_hot = jax.nn.one_hot(jnp.asarray(codebook_of_token), model.num_codebooks)  # (T, L)
  return {"nll_nats": per_token @ one_hot, "count": jnp.sum(weight)}


def rate_metrics(nll_nats, count, *, num_tokens: int, codebook_size: int, image_dims: int,
                 unigram_bits: float | None = None, recon_bits_per_dim: float | None = None) -> dict:
  """The eval.json numbers from summed test NLLs.

  Args:
    nll_nats: `(L,)` summed NLL (nats) of each codebook's test tokens under the prior.
    count: number of test images.
    num_tokens: T = h * w * L codes per image.
    codebook_size: K.
    image_dims: H * W * C of the images.
    unigram_bits: `metrics.unigram_code_bits` of the test codes (summed over images), if known.
    recon_bits_per_dim: the VQ-VAE's test reconstruction bits/dim, if known.

  Returns:
    rate_prior_bits_per_dim, rate_bits_per_dim (uniform), nll_nats_per_code,
    prior_bits_per_code `(L,)` and, when the optional inputs are given,
    rate_unigram_bits_per_dim, recon_bits_per_dim and elbo_bits_per_dim (recon + rate_prior).

  >>> out = rate_metrics(np.array([2.0, 4.0]) * math.log(2), 1, num_tokens=2, codebook_size=4,
  ...                    image_dims=3)
  >>> out["rate_prior_bits_per_dim"], out["prior_bits_per_code"].tolist()
  (2.0, [2.0, 4.0])
  """
  nll_nats = np.asarray(nll_nats, np.float64)
  count = float(count)
  total_bits = float(np.sum(nll_nats)) / math.log(2)
  per_codebook_tokens = num_tokens / len(nll_nats)
  out = {
      "rate_prior_bits_per_dim": total_bits / (count * image_dims),
      "rate_bits_per_dim": metrics.rate_bits_per_dim(num_tokens, codebook_size, image_dims),
      "nll_nats_per_code": float(np.sum(nll_nats)) / (count * num_tokens),
      "prior_bits_per_code": nll_nats / math.log(2) / (count * per_codebook_tokens),
  }
  if unigram_bits is not None:
    out["rate_unigram_bits_per_dim"] = float(unigram_bits) / (count * image_dims)
  if recon_bits_per_dim is not None:
    out["recon_bits_per_dim"] = float(recon_bits_per_dim)
    out["elbo_bits_per_dim"] = float(recon_bits_per_dim) + out["rate_prior_bits_per_dim"]
  return out


def code_counts(codes: np.ndarray, codebook_size: int) -> np.ndarray:
  """How often each code of each codebook occurs: codes `(..., L)` -> `(L, K)` float64."""
  flat = np.asarray(codes).reshape(-1, codes.shape[-1])
  return np.stack([np.bincount(flat[:, l], minlength=codebook_size)
                   for l in range(codes.shape[-1])]).astype(np.float64)
