"""A trained code prior with its tokenizer, for evaluation, sampling and entropy coding.

  loaded = dvq_jax.prior.load("/tmp/dvq_demo_prior")
  tokens = loaded.to_sequence(loaded.tokenizer.encode(images))          # (B, T)
  log_probs = loaded.log_probs(tokens)                                  # (B, T, K), teacher forced
  cache = loaded.init_cache(B)
  for t in range(loaded.num_tokens):                                    # or one token at a time
    log_probs_t, cache = loaded.step(cache, tokens[:, t - 1] if t else zeros, t)

`step` is one jitted function of fixed shapes (t is traced): the same inputs give the same bits
on the same machine and batch size, which an entropy coder needs at both ends.
"""

import json

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from etils import epath

from dvq_jax import tokenizer as tokenizer_lib
from dvq_jax.errors import ConfigError
from dvq_jax.prior.model import build_prior
from dvq_jax.prior.ordering import Ordering
from dvq_jax.training import checkpointing
from dvq_jax.training import sharding


class LoadedPrior:
  """A `CodePrior`'s params, its `Ordering` and the `Tokenizer` of the VQ-VAE it models.

  Attributes:
    config: the prior run's ConfigDict.
    tokenizer: the VQ-VAE's `Tokenizer`, at the checkpoint the prior was trained on.
    model: the `CodePrior`; `params` its parameters.
    ordering: the `Ordering` of the code grid.
    num_tokens: T = h * w * L.
    codebook_of_token: `(T,)` int32, the codebook l of token t.
    checkpoint_step: the prior's training step; `checkpoint_digest` SHA-256 of its params.
  """

  def __init__(self, config, tokenizer, params, *, checkpoint_step: int, batch_size: int = 64):
    self.config = config
    self.tokenizer = tokenizer
    self.model = build_prior(config, tokenizer)
    self.ordering = Ordering(config.order, tuple(tokenizer.grid), tokenizer.num_codebooks)
    self.num_tokens = self.ordering.num_tokens
    self.codebook_of_token = self.ordering.codebook
    self.checkpoint_step = int(checkpoint_step)
    self.checkpoint_digest = checkpointing.state_digest(params)
    self.params = params
    self.mesh = sharding.make_mesh()
    devices = jax.device_count()
    self.batch_size = max(devices, -(-int(batch_size) // devices) * devices)
    model = self.model
    self._step = jax.jit(
        lambda params, cache, previous, t: model.apply({"params": params}, cache, previous, t,
                                                       method=model.step))
    replicated, batch = sharding.replicated(self.mesh), sharding.batch_sharding(self.mesh)
    self._log_probs = jax.jit(lambda params, tokens: model.apply({"params": params}, tokens),
                              in_shardings=(replicated, batch), out_shardings=replicated)

  def to_sequence(self, codes) -> np.ndarray:
    """Codes `(B, h, w, L)` -> int32 tokens `(B, T)` in the prior's order."""
    return self.ordering.to_sequence(self.tokenizer.check_codes(codes))

  def from_sequence(self, tokens) -> np.ndarray:
    """Tokens `(B, T)` -> int32 codes `(B, h, w, L)`."""
    tokens = np.asarray(tokens)
    if tokens.ndim != 2 or tokens.shape[1] != self.num_tokens:
      raise ValueError(f"tokens must be (batch, T = {self.num_tokens}), got {tokens.shape}")
    return self.ordering.from_sequence(tokens)

  def init_cache(self, batch_size: int):
    """The empty cache for `step` (`CodePrior.init_cache`; a pytree to pass through)."""
    return self.model.init_cache(batch_size)

  def step(self, cache, previous_tokens, t):
    """`(log_probs (B, K) float32 of token t, new cache)` given token t-1 (ignored at t = 0)."""
    return self._step(self.params, cache, jnp.asarray(previous_tokens, jnp.int32),
                      jnp.asarray(t, jnp.int32))

  def log_probs(self, tokens) -> np.ndarray:
    """Teacher-forced float32 log-probs `(B, T, K)`: row t is log p(token t | tokens < t)."""
    tokens = np.asarray(tokens, np.int32)
    if tokens.ndim != 2 or tokens.shape[1] != self.num_tokens:
      raise ValueError(f"tokens must be (batch, T = {self.num_tokens}), got {tokens.shape}")
    out = np.empty((*tokens.shape, self.tokenizer.codebook_size), np.float32)
    for start in range(0, len(tokens), self.batch_size):
      chunk = tokens[start:start + self.batch_size]
      padded = np.zeros((self.batch_size, self.num_tokens), np.int32)
      padded[:len(chunk)] = chunk
      result = self._log_probs(self.params, jax.device_put(padded,
                                                           sharding.batch_sharding(self.mesh)))
      out[start:start + len(chunk)] = np.asarray(jax.device_get(result))[:len(chunk)]
    return out


def load(prior_workdir: str, step: int | None = None) -> LoadedPrior:
  """The prior trained in `prior_workdir` (checkpoint `step`, default the newest).

  The tokenizer is rebuilt from the prior's `config.vqvae_workdir` at the VQ-VAE checkpoint
  recorded in `codes.json`, and must match the digest recorded there.

  Raises:
    ConfigError: no config.json, codes.json or checkpoint, or the VQ-VAE checkpoint changed.
  """
  workdir = epath.Path(prior_workdir)
  config_path, codes_path = workdir / "config.json", workdir / "codes.json"
  missing = "does not exist; give the workdir a code prior was trained in"
  if not config_path.exists():
    raise ConfigError(f"{config_path} {missing}")
  config = ml_collections.ConfigDict(json.loads(config_path.read_text()))
  if config.get("experiment") != "code_prior":
    raise ConfigError(f"{prior_workdir} holds a {config.get('experiment')!r} run; give the"
                      " workdir a code_prior run was trained in")
  if not codes_path.exists():
    raise ConfigError(f"{codes_path} {missing}")
  metadata = json.loads(codes_path.read_text())
  tokenizer = tokenizer_lib.Tokenizer.from_workdir(
      config.vqvae_workdir, metadata["checkpoint_step"], image_shape=metadata["image_shape"])
  if tokenizer.checkpoint_digest != metadata["checkpoint_digest"]:
    raise ConfigError(f"the VQ-VAE checkpoint {metadata['checkpoint_step']} in"
                      f" {config.vqvae_workdir} changed since the prior was trained; retrain it")
  if not (workdir / "checkpoints").exists():
    raise ConfigError(f"no checkpoint in {workdir / 'checkpoints'}; train the prior first")
  checkpointer = checkpointing.Checkpointer(str(workdir), config.keep_checkpoints)
  try:
    step = checkpointer.steps()[-1] if step is None and checkpointer.steps() else step
    state = checkpointer.restore_arrays(step)
  finally:
    checkpointer.close()
  return LoadedPrior(config, tokenizer, state["params"], checkpoint_step=step)
