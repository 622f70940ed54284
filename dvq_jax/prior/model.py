"""The code prior (linen): a decoder-only causal Transformer over a VQ-VAE's code sequence.

Token t of the sequence (`ordering.Ordering`) is predicted from tokens < t. The input at t is the
embedding of token t-1 in a table of its own codebook (code k of codebook l means nothing to
codebook l', so the table has L*K rows, plus one for the BOS input at t = 0) plus learned
embeddings of token t's row, column and codebook; then `depth` pre-LayerNorm blocks (causal
multi-head self-attention, a 4x GELU MLP), a final LayerNorm and an output head per codebook,
`(L, width, K)`.

`condition_on = "earlier_positions"` (position_major only) restricts the prior to
p(codes of position p | codes of positions < p): the L codes of one position are predicted
independently given the earlier positions, so the prior's gain over it measures what modelling
the dependence between the codebooks at a position is worth. An attention mask alone cannot do
this: the residual stream of token t carries its own input, token t-1, a code of the same
position when l > 0. Instead the input of every token of position p is the sum of the
embeddings of position p-1's L codes (BOS at p = 0), and the usual causal mask keeps later
positions out; tokens of position p then see nothing of position p.

The same parameters run in three ways:

  `model.apply(v, tokens)`                      teacher forcing: log-probs `(B, T, K)` of every token;
  `model.apply(v, tokens, method=model.logits)` teacher forcing: the logits, for the loss
                                                (`objective.token_nll`);
  `model.apply(v, cache, prev, t, method=model.step)`   one token with a KV cache, for sampling
                                                and entropy coding (`init_cache` makes the cache).

`dtype` is the compute dtype: the blocks' matmuls, the residual stream, the attention weights
and the KV cache run in it, while the parameters, the embedding lookups, the LayerNorm
statistics and the attention softmax's max, exp and sum stay float32. A bfloat16 model's
logits are bfloat16 where `backends.bfloat16_logits` says so (accelerators); log-probs are
float32 whatever the dtype.
"""

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from dvq_jax import backends
from dvq_jax import flat_random
from dvq_jax.prior.ordering import Ordering

_NEG = -1e30  # logit of a masked attention entry: exp underflows to exactly 0
CONDITIONS = ("all_earlier_codes", "earlier_positions")


# Flax's default Dense kernel init, drawn flat (dvq_jax.flat_random); the embeddings' too.
Dense = functools.partial(nn.Dense, kernel_init=flat_random.lecun_normal())


@jax.custom_vjp
def attention_weights(scores: jax.Array, mask: jax.Array) -> jax.Array:
  """softmax over the keys of the unmasked scores, in the scores' dtype.

  Args:
    scores: `(batch, heads, queries, keys)`, the compute dtype, already scaled.
    mask: bool, broadcastable to `scores`; False entries get weight 0.

  The max, exp and sum run in float32. The gradient, w * (g - sum(g * w)), is formed from the
  returned weights, so a bfloat16 model keeps only bfloat16 weights for its backward pass
  (plain autodiff of a float32 softmax kept a float32 copy of every layer's weights: on a TPU
  the largest tensors of the prior's step).

  >>> import jax.numpy as jnp
  >>> attention_weights(jnp.zeros((1, 1, 2, 2)), jnp.tril(jnp.ones((2, 2), bool))).tolist()
  [[[[1.0, 0.0], [0.5, 0.5]]]]
  """
  return _attention_weights_fwd(scores, mask)[0]


def _attention_weights_fwd(scores, mask):
  masked = jnp.where(mask, scores.astype(jnp.float32), _NEG)
  weights = jax.nn.softmax(masked, axis=-1).astype(scores.dtype)
  return weights, weights


def _attention_weights_bwd(weights, g):
  w, g = weights.astype(jnp.float32), g.astype(jnp.float32)
  return (w * (g - jnp.sum(g * w, axis=-1, keepdims=True))).astype(weights.dtype), None


attention_weights.defvjp(_attention_weights_fwd, _attention_weights_bwd)


class CausalSelfAttention(nn.Module):
  """Multi-head self-attention; token t attends to tokens <= t."""

  width: int
  heads: int
  dropout: float = 0.0
  dtype: jnp.dtype = jnp.float32

  def setup(self):
    self.qkv = Dense(3 * self.width, dtype=self.dtype)
    self.out = Dense(self.width, dtype=self.dtype)
    self.drop = nn.Dropout(self.dropout)

  def _qkv(self, x):
    batch, length, _ = x.shape
    q, k, v = jnp.split(self.qkv(x), 3, axis=-1)
    shape = (batch, length, self.heads, self.width // self.heads)
    return q.reshape(shape), k.reshape(shape), v.reshape(shape)

  def _attend(self, q, k, v, mask, deterministic):
    scores = jnp.einsum("bqhd,bkhd->bhqk", q / math.sqrt(q.shape[-1]), k)
    weights = attention_weights(scores, mask)
    weights = self.drop(weights, deterministic=deterministic)
    out = jnp.einsum("bhqk,bkhd->bqhd", weights, v)
    return self.out(out.reshape(*out.shape[:2], self.width))

  def __call__(self, x, deterministic: bool = True):
    """`(B, T, width)` -> `(B, T, width)`."""
    q, k, v = self._qkv(x)
    length = x.shape[1]
    mask = jnp.tril(jnp.ones((length, length), bool))
    return self._attend(q, k, v, mask, deterministic)

  def step(self, x, cache, t):
    """One token `(B, 1, width)` at position t; cache `{"k", "v"}` `(B, T, heads, width/heads)`."""
    q, k, v = self._qkv(x)
    keys = jax.lax.dynamic_update_slice_in_dim(cache["k"], k, t, axis=1)
    values = jax.lax.dynamic_update_slice_in_dim(cache["v"], v, t, axis=1)
    mask = (jnp.arange(keys.shape[1]) <= t)[None, :]
    return self._attend(q, keys, values, mask, True), {"k": keys, "v": values}


class Block(nn.Module):
  """Pre-LayerNorm Transformer block: x + attn(LN(x)), then x + MLP(LN(x))."""

  width: int
  heads: int
  dropout: float = 0.0
  dtype: jnp.dtype = jnp.float32

  def setup(self):
    self.norm1 = nn.LayerNorm(dtype=self.dtype)
    self.attn = CausalSelfAttention(self.width, self.heads, self.dropout, self.dtype)
    self.norm2 = nn.LayerNorm(dtype=self.dtype)
    self.fc1 = Dense(4 * self.width, dtype=self.dtype)
    self.fc2 = Dense(self.width, dtype=self.dtype)
    self.drop = nn.Dropout(self.dropout)

  def _mlp(self, x, deterministic):
    return self.drop(self.fc2(nn.gelu(self.fc1(self.norm2(x)))), deterministic=deterministic)

  def __call__(self, x, deterministic: bool = True):
    x = x + self.drop(self.attn(self.norm1(x), deterministic), deterministic=deterministic)
    return x + self._mlp(x, deterministic)

  def step(self, x, cache, t):
    attended, cache = self.attn.step(self.norm1(x), cache, t)
    x = x + attended
    return x + self._mlp(x, True), cache


class CodePrior(nn.Module):
  """p(tokens) = prod_t p(token t | tokens < t) over a code grid `(h, w, L)` read in `order`.

  Attributes:
    codebook_size: K.
    num_codebooks: L (the codes' last axis; 1 for vq and svq).
    grid: `(h, w)`.
    order: position_major | codebook_major (see `ordering`).
    width, depth, heads: the Transformer's model width, number of blocks and attention heads
      (width divisible by heads).
    dropout: rate on the embeddings, attention weights and residual branches (training only).
    condition_on: all_earlier_codes (token t sees every token < t) | earlier_positions (the
      codes of position p see only positions < p; position_major only).
    dtype: compute dtype name, float32 | bfloat16 (`build_prior` resolves the config's "auto"
      by backend, `dvq_jax.backends.compute_dtype`); params are float32.

  >>> model = CodePrior(codebook_size=5, num_codebooks=2, grid=(2, 2), width=8, depth=1, heads=2)
  >>> tokens = jnp.zeros((3, 8), jnp.int32)
  >>> params = model.init(jax.random.key(0), tokens)["params"]
  >>> model.apply({"params": params}, tokens).shape
  (3, 8, 5)
  """

  codebook_size: int
  num_codebooks: int
  grid: tuple[int, int]
  order: str = "position_major"
  width: int = 128
  depth: int = 4
  heads: int = 4
  dropout: float = 0.0
  condition_on: str = "all_earlier_codes"
  dtype: str = "float32"

  @property
  def ordering(self) -> Ordering:
    return Ordering(self.order, tuple(self.grid), self.num_codebooks)

  def setup(self):
    if self.width % self.heads:
      raise ValueError(f"width {self.width} is not divisible by heads {self.heads}")
    if self.condition_on not in CONDITIONS:
      raise ValueError(f"condition_on {self.condition_on!r} is unknown; use one of"
                       f" {', '.join(CONDITIONS)}")
    if self.condition_on == "earlier_positions" and self.order != "position_major":
      raise ValueError("condition_on = 'earlier_positions' needs order = 'position_major'"
                       " (the L codes of a position consecutive)")
    embed = lambda n: nn.Embed(n, self.width, embedding_init=flat_random.normal_init(0.02))
    num_codes = self.num_codebooks * self.codebook_size
    self.token_embed = embed(num_codes + 1)  # codebook l's code k at row l*K + k; BOS last
    self.row_embed = embed(self.grid[0])
    self.column_embed = embed(self.grid[1])
    self.codebook_embed = embed(self.num_codebooks)
    self.drop = nn.Dropout(self.dropout)
    dtype = jnp.dtype(self.dtype)
    self.blocks = [Block(self.width, self.heads, self.dropout, dtype) for _ in range(self.depth)]
    self.final_norm = nn.LayerNorm(dtype=dtype)
    # Zero-initialised heads: the untrained prior is uniform, log K nats per code.
    self.head_kernel = self.param("head_kernel", nn.initializers.zeros,
                                  (self.num_codebooks, self.width, self.codebook_size))
    self.head_bias = self.param("head_bias", nn.initializers.zeros,
                                (self.num_codebooks, self.codebook_size))

  def _position_embeddings(self):
    o = self.ordering
    return self.row_embed(o.row) + self.column_embed(o.column) + self.codebook_embed(o.codebook)

  def _input_ids(self, tokens):
    """Token t-1 in its codebook's rows (BOS at t = 0): `(B, T)` -> `(B, T)`."""
    offsets = jnp.asarray(self.ordering.codebook[:-1] * self.codebook_size)
    previous = tokens[:, :-1] + offsets
    bos = jnp.full((tokens.shape[0], 1), self.num_codebooks * self.codebook_size, tokens.dtype)
    return jnp.concatenate([bos, previous], axis=1)

  def _token_inputs(self, tokens):
    """The embedded input of every token, `(B, T)` -> `(B, T, width)` (see the module doc)."""
    if self.condition_on == "all_earlier_codes":
      return self.token_embed(self._input_ids(tokens))
    batch, num_tokens = tokens.shape
    ids = tokens + jnp.asarray(self.ordering.codebook * self.codebook_size)
    positions = self.token_embed(ids).reshape(batch, -1, self.num_codebooks, self.width).sum(2)
    bos = self.token_embed(jnp.full((batch, 1), self.num_codebooks * self.codebook_size))
    previous = jnp.concatenate([bos, positions[:, :-1]], axis=1)  # (B, h*w, width)
    return jnp.repeat(previous, self.num_codebooks, axis=1)

  def _head_params(self):
    """The heads' kernel `(L, width, K)` and bias `(L, K)` in the logits' dtype: the compute
    dtype, but float32 where bfloat16 logits are slower (`backends.bfloat16_logits`)."""
    dtype = jnp.dtype(self.dtype) if backends.bfloat16_logits() else jnp.dtype(jnp.float32)
    return self.head_kernel.astype(dtype), self.head_bias.astype(dtype)

  def logits(self, tokens, deterministic: bool = True):
    """int `(B, T)` -> logits `(B, T, K)` (`_head_params`' dtype): row t scores token t given
    tokens < t."""
    x = self._token_inputs(tokens) + self._position_embeddings()[None]
    x = self.drop(x, deterministic=deterministic).astype(self.dtype)
    for block in self.blocks:
      x = block(x, deterministic)
    kernel, bias = self._head_params()
    x = self.final_norm(x).astype(kernel.dtype)
    # Each token through its own codebook's head as one matmul batched over the L codebooks:
    # the order puts codebook l at t % L (position_major) or in the l-th block of h*w tokens
    # (codebook_major), so a reshape groups the tokens by codebook without gathers or scatters
    # (per-codebook gathers and scatters were a tenth of a TPU step's memory traffic).
    batch, num_tokens = tokens.shape
    if self.order == "position_major":
      grouped = x.reshape(batch, -1, self.num_codebooks, self.width)
      logits = jnp.einsum("bplw,lwk->bplk", grouped, kernel) + bias
    else:
      grouped = x.reshape(batch, self.num_codebooks, -1, self.width)
      logits = jnp.einsum("blpw,lwk->blpk", grouped, kernel) + bias[:, None]
    return logits.reshape(batch, num_tokens, self.codebook_size)

  def __call__(self, tokens, deterministic: bool = True):
    """int `(B, T)` -> float32 log-probs `(B, T, K)`: row t is p(token t | tokens < t)."""
    return jax.nn.log_softmax(self.logits(tokens, deterministic).astype(jnp.float32), axis=-1)

  def init_cache(self, batch_size: int):
    """Zeros for `step`: `{"layers": per block {"k", "v"} (batch, T, heads, width / heads)` in
    the compute dtype`}`; with earlier_positions also `"pending"` (the embeddings of this
    position's codes so far) and `"position_input"` (this position's input), float32
    `(batch, width)`."""
    shape = (batch_size, self.ordering.num_tokens, self.heads, self.width // self.heads)
    dtype = jnp.dtype(self.dtype)
    cache = {"layers": [{"k": jnp.zeros(shape, dtype), "v": jnp.zeros(shape, dtype)}
                        for _ in range(self.depth)]}
    if self.condition_on == "earlier_positions":
      cache["pending"] = jnp.zeros((batch_size, self.width), jnp.float32)
      cache["position_input"] = jnp.zeros((batch_size, self.width), jnp.float32)
    return cache

  def _step_input(self, cache, previous_tokens, t):
    """Token t's embedded input `(B, width)` and the cache entries it updates."""
    codebook = jnp.asarray(self.ordering.codebook)
    bos = self.token_embed(jnp.full(previous_tokens.shape, self.num_codebooks * self.codebook_size))
    previous = self.token_embed(codebook[jnp.maximum(t - 1, 0)] * self.codebook_size
                                + previous_tokens)
    if self.condition_on == "all_earlier_codes":
      return jnp.where(t == 0, bos, previous), {}
    # Sum position p-1's L codes as they arrive; the first token of p takes the sum and every
    # token of p reuses it.
    pending = cache["pending"] + jnp.where(t == 0, 0.0, previous)
    first_of_position = codebook[t] == 0
    position_input = jnp.where(first_of_position, jnp.where(t == 0, bos, pending),
                               cache["position_input"])
    return position_input, {"pending": jnp.where(first_of_position, 0.0, pending),
                            "position_input": position_input}

  def step(self, cache, previous_tokens, t):
    """log p(token t | tokens < t) from token t-1 and the cache of tokens < t-1.

    Args:
      cache: from `init_cache` (t = 0) or the previous `step` (a pytree; pass it through).
      previous_tokens: int `(B,)`, token t-1 (ignored at t = 0, where the input is BOS).
      t: int scalar (may be traced), 0 <= t < T.

    Returns:
      `(log_probs, cache)`: float32 `(B, K)` and the cache with position t filled in.
    """
    codebook = jnp.asarray(self.ordering.codebook)
    token_input, new_cache = self._step_input(cache, previous_tokens, t)
    position = jax.lax.dynamic_index_in_dim(self._position_embeddings(), t, keepdims=False)
    x = (token_input + position[None])[:, None].astype(self.dtype)
    new_cache["layers"] = []
    for block, layer_cache in zip(self.blocks, cache["layers"]):
      x, layer_cache = block.step(x, layer_cache, t)
      new_cache["layers"].append(layer_cache)
    kernel, bias = self._head_params()
    x = self.final_norm(x)[:, 0].astype(kernel.dtype)
    logits = x @ kernel[codebook[t]] + bias[codebook[t]]
    return jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1), new_cache


def build_prior(config, tokenizer) -> CodePrior:
  """The `CodePrior` a code-prior config (`prior.defaults`) describes over a tokenizer's grid."""
  return CodePrior(
      codebook_size=tokenizer.codebook_size, num_codebooks=tokenizer.num_codebooks,
      grid=tuple(tokenizer.grid), order=config.order, width=config.model.width,
      depth=config.model.depth, heads=config.model.heads, dropout=float(config.model.dropout),
      # Runs from before these fields existed condition on every earlier code, in float32.
      condition_on=config.get("condition_on", "all_earlier_codes"),
      dtype=backends.compute_dtype(config.model.get("dtype", "float32")))
