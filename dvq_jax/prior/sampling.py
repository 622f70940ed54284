"""Ancestral sampling from the code prior inside one jitted `lax.fori_loop` over the T tokens.

With the KV cache (the default) step t costs one token's attention over t keys; without it,
every step reruns the teacher-forced model on the whole (partly filled) sequence, T times the
work, kept for the benchmark and as a check that both give the same samples.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np


def _choose(key, log_probs, temperature, top_k: int):
  """One draw per row from softmax(log_probs / temperature), restricted to the top_k codes."""
  logits = log_probs / temperature
  if top_k:
    kth = jax.lax.top_k(logits, top_k)[0][..., -1:]
    logits = jnp.where(logits >= kth, logits, -jnp.inf)
  return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)


@functools.partial(jax.jit, static_argnames=("model", "num_samples", "top_k", "use_cache"))
def sample_tokens(params, key, temperature, *, model, num_samples: int, top_k: int = 0,
                  use_cache: bool = True) -> jax.Array:
  """Draws `(num_samples, T)` int32 token sequences from the prior.

  Args:
    params: the `CodePrior`'s params.
    key: a PRNG key; token t uses `fold_in(key, t)`, so both paths draw the same noise.
    temperature: > 0; divides the log-probs (1 = the model's distribution).
    model: the `CodePrior` (static).
    num_samples: B (static).
    top_k: 0 = all K codes; else only the k most likely of each step (static).
    use_cache: step with the KV cache (True) or rerun the full model per token (False).
  """
  num_tokens = model.ordering.num_tokens
  tokens = jnp.zeros((num_samples, num_tokens), jnp.int32)

  if use_cache:
    def body(t, carry):
      tokens, cache = carry
      previous = jax.lax.dynamic_index_in_dim(tokens, jnp.maximum(t - 1, 0), 1, keepdims=False)
      log_probs, cache = model.apply({"params": params}, cache, previous, t, method=model.step)
      choice = _choose(jax.random.fold_in(key, t), log_probs, temperature, top_k)
      return jax.lax.dynamic_update_index_in_dim(tokens, choice, t, 1), cache
    tokens, _ = jax.lax.fori_loop(0, num_tokens, body, (tokens, model.init_cache(num_samples)))
    return tokens

  def body_without_cache(t, tokens):
    log_probs = jax.lax.dynamic_index_in_dim(model.apply({"params": params}, tokens), t, 1,
                                             keepdims=False)
    choice = _choose(jax.random.fold_in(key, t), log_probs, temperature, top_k)
    return jax.lax.dynamic_update_index_in_dim(tokens, choice, t, 1)
  return jax.lax.fori_loop(0, num_tokens, body_without_cache, tokens)


def sample(loaded, num_samples: int, *, temperature: float = 1.0, top_k: int = 0,
           seed: int = 0, use_cache: bool = True) -> tuple[np.ndarray, np.ndarray]:
  """Codes and decoded images drawn from a loaded prior (`prior.load`).

  Returns:
    `(codes, images)`: int32 `(num_samples, h, w, L)` and uint8 `(num_samples, H, W, C)`.

  Raises:
    ValueError: temperature not finite or <= 0, top_k outside [0, K], or num_samples < 1.
  """
  if not (np.isfinite(temperature) and temperature > 0):  # inf would sample uniformly
    raise ValueError(f"temperature = {temperature!r} must be finite and > 0 (1 samples the"
                     " prior itself)")
  if not 0 <= top_k <= loaded.tokenizer.codebook_size:
    raise ValueError(f"top_k = {top_k} must be in [0, K = {loaded.tokenizer.codebook_size}];"
                     " 0 keeps every code")
  if num_samples < 1:
    raise ValueError(f"num_samples = {num_samples} must be >= 1")
  tokens = sample_tokens(loaded.params, jax.random.key(seed), jnp.float32(temperature),
                         model=loaded.model, num_samples=int(num_samples), top_k=int(top_k),
                         use_cache=use_cache)
  codes = loaded.from_sequence(np.asarray(jax.device_get(tokens)))
  return codes, loaded.tokenizer.decode(codes)
