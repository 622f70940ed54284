r"""Trains the code prior on a VQ-VAE run's codes through the shared loop (`training.loop`).

  python -m dvq_jax.main --config=configs/prior.py --config.vqvae_workdir=W --workdir=P

1. The tokenizer of W (checkpoint `config.vqvae_step`, 0 = newest) encodes W's train and test
   splits once; the codes are cached in `P/codes.npz` (+ `P/codes.json`) and reused while the
   checkpoint's digest matches.
2. `training.loop.run` trains the `CodePrior` (state `{"step", "params", "opt_state"}`, batches
   a pure function of (seed, step), dropout keys folded from (seed, step): exact resume).
3. Each evaluation writes P/eval.json: the prior's test code length as bits/dim of the images,
   beside the unigram and uniform rates, W's reconstruction bits/dim and their sum, the ELBO.
"""

import json
import math
from collections.abc import Callable

import jax
import ml_collections
import numpy as np
from etils import epath

from dvq_jax import backends
from dvq_jax import data as data_lib
from dvq_jax import metrics
from dvq_jax import tokenizer as tokenizer_lib
from dvq_jax.errors import ConfigError
from dvq_jax.prior import objective
from dvq_jax.prior.model import CONDITIONS
from dvq_jax.prior.model import build_prior
from dvq_jax.prior.ordering import ORDERS
from dvq_jax.prior.ordering import Ordering
from dvq_jax.training import loop
from dvq_jax.training import optim
from dvq_jax.training import sharding
from dvq_jax.training import validation
from dvq_jax.vqvae import evaluate as vqvae_evaluate
from dvq_jax.vqvae import likelihoods

CODES_FILE = "codes.npz"


def check_config(config: ml_collections.ConfigDict) -> None:
  """The prior's own fields and the shared training fields, before any compute."""
  if not config.vqvae_workdir:
    raise ConfigError("config.vqvae_workdir is empty; pass --config.vqvae_workdir=W, the"
                      " --workdir of a trained VQ-VAE run")
  check_model_config(config)


def check_model_config(config: ml_collections.ConfigDict) -> None:
  """`check_config` but for `vqvae_workdir`: what a prior needs before its codes exist."""
  validation.require_choice(config, "order", ORDERS)
  validation.require_choice(config, "condition_on", CONDITIONS)
  validation.require_choice(config, "model.dtype", backends.COMPUTE_DTYPES)
  if config.condition_on == "earlier_positions" and config.order != "position_major":
    raise ConfigError("config.condition_on = 'earlier_positions' needs config.order ="
                      " 'position_major'; set --config.order=position_major")
  validation.require_int(config, "vqvae_step", 0)
  validation.require_int(config, "tokenizer_batch_size", 1)
  for field in ("model.width", "model.depth", "model.heads"):
    validation.require_int(config, field, 1)
  if config.model.width % config.model.heads:
    raise ConfigError(f"config.model.width = {config.model.width} is not divisible by"
                      f" config.model.heads = {config.model.heads}; change one of them")
  if not 0.0 <= config.model.dropout < 1.0:
    raise ConfigError(f"config.model.dropout = {config.model.dropout!r} must be in [0, 1)")
  validation.check_training(config)


def load_or_extract_codes(workdir: str, tokenizer) -> tuple[dict, dict]:
  """`({"train", "test"} codes, codes.json metadata)`, cached in `workdir/codes.npz`."""
  path = epath.Path(workdir) / CODES_FILE
  meta_path = path.with_suffix(".json")
  if path.exists() and meta_path.exists():
    try:
      metadata = json.loads(meta_path.read_text())
      if metadata.get("checkpoint_digest") == tokenizer.checkpoint_digest:
        return data_lib.read_npz(str(path), ("train", "test"), str(path), ""), metadata
    except (ConfigError, ValueError) as e:  # a damaged cache is rebuilt, never trusted
      print(f"{path} is damaged ({str(e).split(';')[0]}); encoding the codes again", flush=True)
  data = data_lib.load(tokenizer.config)
  codes = tokenizer_lib.encode_splits(tokenizer, data)
  metadata = tokenizer.metadata(data.name, data.num_train, data.num_test)
  tokenizer_lib.write_codes(str(path), codes, metadata, flag="--workdir")
  return codes, metadata


def vqvae_recon_bits_per_dim(tokenizer, vqvae_workdir: str) -> float:
  """W's test reconstruction bits/dim at the tokenizer's checkpoint: from W/eval.json when it
  was written at that step, else computed on the same test split."""
  path = epath.Path(vqvae_workdir) / "eval.json"
  if path.exists():
    saved = json.loads(path.read_text())
    if saved.get("step") == tokenizer.checkpoint_step and "recon_bits_per_dim" in saved:
      return float(saved["recon_bits_per_dim"])
  config = ml_collections.ConfigDict(tokenizer.config.to_dict())
  config.num_recon_images = 0  # write nothing into W
  evaluator = vqvae_evaluate.Evaluator(config, tokenizer.model, data_lib.load(config),
                                       tokenizer.mesh, vqvae_workdir)
  return float(evaluator.run(tokenizer.params, tokenizer.checkpoint_step)["recon_bits_per_dim"])


def padded_batches(tokens: np.ndarray, global_batch_size: int):
  """This process's rows of each padded global batch: yields `(tokens, mask)`."""
  local = global_batch_size // jax.process_count()
  offset = jax.process_index() * local
  for start in range(0, len(tokens), global_batch_size):
    rows = tokens[start + offset:start + offset + local]
    batch = np.zeros((local, tokens.shape[1]), np.int32)
    batch[:len(rows)] = rows
    yield batch, np.arange(local) < len(rows)


def training_parts(config: ml_collections.ConfigDict, model, num_tokens: int):
  """The loop's `init_state(key) -> state` and `train_step(state, tokens) -> (state, metrics)`
  for a prior over `(batch, num_tokens)` int32 token sequences; `dvq_jax.plan` compiles the same
  step ahead of time. Dropout keys are folded from (seed, step), so a resumed run is exact."""
  tx = optim.make_optimizer(config)
  example = np.zeros((1, num_tokens), np.int32)

  def init_state(key):
    params = model.init(key, example)["params"]
    return {"step": jax.numpy.zeros((), jax.numpy.int32), "params": params,
            "opt_state": tx.init(params)}

  dropout_root = jax.random.fold_in(jax.random.key(config.seed), 1)

  def train_step(state, tokens):
    key = jax.random.fold_in(dropout_root, state["step"])
    loss = lambda params, batch: objective.loss_fn(params, model, batch, key)
    return optim.gradient_step(loss, tx)(state, tokens)

  return init_state, train_step


def jit_eval_sums(model, ordering: Ordering, mesh) -> Callable:
  """The evaluation step: `(params, tokens, mask) -> objective.eval_sums`, the batch sharded on
  `data` and the params replicated."""
  replicated, batch_sharding = sharding.replicated(mesh), sharding.batch_sharding(mesh)
  return jax.jit(
      lambda params, tokens, mask: objective.eval_sums(params, model, tokens, mask,
                                                       ordering.codebook),
      in_shardings=(replicated, batch_sharding, batch_sharding), out_shardings=replicated)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Extracts (or reuses) the codes, trains to `config.num_train_steps`, returns the last eval."""
  # ---------------------------------------------------------------- checks, codes
  check_config(config)
  sharding.maybe_initialize_distributed(config)
  validation.check_devices(config)
  validation.check_workdir(workdir, config)
  tokenizer = tokenizer_lib.Tokenizer.from_workdir(
      config.vqvae_workdir, config.vqvae_step or None, batch_size=config.tokenizer_batch_size)
  validation.create_workdir(workdir)  # the codes are cached there
  codes, metadata = load_or_extract_codes(workdir, tokenizer)
  model = build_prior(config, tokenizer)
  ordering = Ordering(config.order, tuple(tokenizer.grid), tokenizer.num_codebooks)
  train_tokens = ordering.to_sequence(codes["train"].astype(np.int32))
  test_tokens = ordering.to_sequence(codes["test"].astype(np.int32))
  train_data = data_lib.ImageData("codes", train_tokens.shape[1:], len(train_tokens),
                                  len(train_tokens), train_tokens, train_tokens)

  # ---------------------------------------------------------------- fixed eval numbers
  image_dims = math.prod(tokenizer.image_shape)
  counts = {split: objective.code_counts(tokenizer.codes_by_codebook(codes[split]),
                                        tokenizer.codebook_size) for split in ("train", "test")}
  unigram_bits = metrics.unigram_code_bits(counts["train"], counts["test"])
  recon = vqvae_recon_bits_per_dim(tokenizer, config.vqvae_workdir)

  # ---------------------------------------------------------------- the loop's four parts
  init_state, train_step = training_parts(config, model, ordering.num_tokens)

  def batches(start_step):
    for step in range(start_step, config.num_train_steps):  # batch of step s+1 = train_batch(s)
      yield data_lib.train_batch(train_data, step=step, global_batch_size=config.batch_size,
                                 seed=config.seed, process_index=jax.process_index(),
                                 process_count=jax.process_count())

  mesh = sharding.make_mesh()
  sums_fn = jit_eval_sums(model, ordering, mesh)

  def evaluate(state, step):  # pylint: disable=unused-argument
    totals = None
    for tokens, mask in padded_batches(test_tokens, config.eval_batch_size or config.batch_size):
      sums = jax.device_get(sums_fn(state["params"], sharding.global_batch(mesh, tokens),
                                    sharding.global_batch(mesh, mask)))
      totals = sums if totals is None else jax.tree.map(np.add, totals, sums)
    result = objective.rate_metrics(
        totals["nll_nats"], totals["count"], num_tokens=ordering.num_tokens,
        codebook_size=tokenizer.codebook_size, image_dims=image_dims,
        unigram_bits=unigram_bits, recon_bits_per_dim=recon)
    if tokenizer.likelihood in likelihoods.CONTEXT_NAMES:  # a compressor's cost: say so
      result["context_recon_bits_per_dim"] = result["recon_bits_per_dim"]
      result["context_elbo_bits_per_dim"] = result["elbo_bits_per_dim"]
    result["num_examples"] = int(totals["count"])
    result["vqvae_checkpoint_step"] = tokenizer.checkpoint_step
    return result

  description = (f"{config.order} ({config.condition_on}) prior over {metadata['quantizer']} codes"
                 f" {tuple(tokenizer.grid)} x L={tokenizer.num_codebooks}, K={tokenizer.codebook_size}"
                 f" of {metadata['dataset']}")
  return loop.run(config, workdir, init_state=init_state, train_step=train_step,
                  batches=batches, evaluate=evaluate, description=description)
