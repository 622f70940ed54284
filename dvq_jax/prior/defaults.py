"""Default settings of the code-prior experiment; `configs/prior.py` starts from these.

  python -m dvq_jax.main --config=configs/prior.py --config.vqvae_workdir=W --workdir=P

The training fields keep the VQ-VAE's names (`dvq_jax/vqvae/defaults.py`); the Transformer's
sit in `config.model`.
"""

import ml_collections


def code_prior() -> ml_collections.ConfigDict:
  """A prior sized for the demo VQ-VAE (8x8 positions, L = 4: T = 256 tokens)."""
  config = ml_collections.ConfigDict()
  config.experiment = "code_prior"
  config.vqvae_workdir = ""  # the --workdir of a trained VQ-VAE (learned_prior) run; required
  config.vqvae_step = 0  # its checkpoint to tokenize with; 0 = the newest
  # position_major: raster over positions, the L codes of a position consecutive;
  # codebook_major: all positions of codebook 0, then codebook 1, ... (see prior/ordering.py).
  config.order = "position_major"
  # all_earlier_codes: token t sees every token < t. earlier_positions (position_major only): the
  # L codes of a position see only earlier positions, not each other; its extra bits against
  # all_earlier_codes are what the dependence between codebooks at one position is worth.
  config.condition_on = "all_earlier_codes"
  config.tokenizer_batch_size = 64  # images per jitted encoder call while extracting codes

  config.model = ml_collections.ConfigDict()
  config.model.width = 128  # model width (embeddings, attention, residual stream)
  config.model.depth = 4  # Transformer blocks
  config.model.heads = 4  # attention heads; width must divide by heads
  config.model.dropout = 0.1  # embeddings, attention weights, residual branches
  # Compute dtype: auto (bfloat16 on TPU/GPU, float32 on CPU) | float32 | bfloat16. Params,
  # optimizer state, LayerNorm statistics, the attention softmax's sums and the loss's
  # log-sum-exp stay float32.
  config.model.dtype = "auto"

  config.batch_size = 32  # code grids per step, global over devices and hosts
  config.eval_batch_size = 0  # 0 = batch_size
  config.num_train_steps = 2_000
  config.learning_rate = 3e-4
  config.lr_schedule = "cosine"  # constant | cosine
  config.warmup_steps = 100
  config.seed = 0
  config.log_every_steps = 50
  config.eval_every_steps = 1_000
  config.checkpoint_every_steps = 500
  config.keep_checkpoints = 3
  # Multi-host, as for the VQ-VAE (training/sharding.maybe_initialize_distributed).
  config.distributed = False
  config.coordinator_address = ""
  config.num_processes = 0
  config.process_id = -1
  return config


def shrink(config: ml_collections.ConfigDict) -> None:
  """Seconds-long settings for tests and smoke runs."""
  config.batch_size = 8
  config.num_train_steps = 4
  config.warmup_steps = 0
  config.model.width = 16
  config.model.depth = 1
  config.model.heads = 2
  config.model.dropout = 0.0
  config.log_every_steps = 2
  config.eval_every_steps = 4
  config.checkpoint_every_steps = 2
