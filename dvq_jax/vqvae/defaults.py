"""Default settings of the learned-prior (DVQ-VAE) experiment; `configs/*.py` start from these.

Every experiment reads alike from the command line: the top-level fields below are the contract
(`--config.quantizer=vq`, `--config.num_codebooks=4`, ...); model widths sit in `config.model`.
"""

import ml_collections


def learned_prior() -> ml_collections.ConfigDict:
  """The paper's CIFAR-10 setting (Table 1): K=512, L=8, batch 128, 100k steps, Adam 2e-4."""
  config = ml_collections.ConfigDict()
  config.experiment = "learned_prior"
  # Data: a TFDS name (cifar10, imagenet_resized/32x32, imagenet_resized/64x64), npz:PATH,
  # folder:PATH or demo (photographs bundled with scikit-image, offline).
  config.dataset = "cifar10"
  config.data_dir = ""  # TFDS data_dir; "" = TFDS default (~/tensorflow_datasets or $TFDS_DATA_DIR)
  config.train_split = "train"
  config.test_split = "test"
  config.max_eval_examples = 0  # 0 = the whole test split; >0 evaluates its first N examples
  config.grain_workers = 0

  # Quantizer: dvq | mvq | vq | svq (see README, "Quantizers").
  config.quantizer = "dvq"
  config.num_codebooks = 8  # L
  config.codebook_size = 512  # K
  config.codebook_dim = 8  # D; dvq latents have L*D channels, mvq/vq/svq latents have D
  # True: every quantizer's encoder emits L*D channels; vq/svq/mvq codebook vectors are then
  # L*D wide (VQ quantizes the whole L*D vector), so a comparison changes only the quantizer.
  # False: vq/svq/mvq latents and codebook vectors are D wide (the paper's baselines).
  config.equal_width = False
  # Weight of the commitment (encoder) term ||z - sg(e)||^2 (van den Oord et al.); the DVQ
  # paper gives no value, the official DVQ code uses 1.0.
  config.beta = 0.25
  # Reduction of the codebook and commitment terms over a position's features:
  # sum_features (squared distance summed over the quantized vector's C_q features) |
  # mean_elements (divided by C_q: the per-element mean of the official DVQ code and Sonnet).
  # Both are means over latent positions; only the scale against the reconstruction differs.
  config.quantizer_loss_reduction = "sum_features"
  # Likelihood head: categorical256 (paper's bits/dim) | logistic_mixture | mse.
  config.likelihood = "categorical256"

  config.batch_size = 128  # global, over all devices and hosts
  config.eval_batch_size = 0  # 0 = batch_size
  config.num_train_steps = 100_000
  config.learning_rate = 2e-4
  config.lr_schedule = "constant"  # constant | cosine
  config.warmup_steps = 0
  config.seed = 0

  config.model = ml_collections.ConfigDict()
  config.model.hidden_channels = 256
  config.model.residual_channels = 64
  config.model.num_downsamples = 2
  config.model.num_residual_blocks = 2
  config.model.latent_channels = 0  # 0 = derived (dvq: L*D, others: D); set to check it
  config.model.upsample = "subpixel"  # subpixel (fast everywhere) | transpose (4x4 ConvTranspose)
  config.model.num_mixtures = 10  # logistic_mixture components
  config.model.codebook_init = "truncated_normal"
  config.model.dtype = "float32"  # compute dtype: float32 | bfloat16 (params stay float32)

  config.log_every_steps = 100
  config.eval_every_steps = 5_000
  config.checkpoint_every_steps = 5_000
  config.keep_checkpoints = 3
  config.num_recon_images = 8
  # Multi-host: jax.distributed.initialize() runs when `distributed` is True or the environment
  # sets JAX_COORDINATOR_ADDRESS. Cloud TPU/SLURM fill in the rest; elsewhere give all three.
  config.distributed = False
  config.coordinator_address = ""  # e.g. "10.0.0.2:1234"; "" = auto-detect
  config.num_processes = 0  # 0 = auto-detect
  config.process_id = -1  # -1 = auto-detect
  return config


def shrink(config: ml_collections.ConfigDict) -> None:
  """Turns any learned-prior config into a seconds-long one for tests and smoke runs."""
  config.batch_size = 8
  config.num_train_steps = 4
  config.codebook_size = 16
  config.num_codebooks = 2
  config.codebook_dim = 4
  config.max_eval_examples = 16
  config.model.hidden_channels = 16
  config.model.residual_channels = 8
  config.model.num_residual_blocks = 1
  config.log_every_steps = 2
  config.eval_every_steps = 4
  config.checkpoint_every_steps = 2
  config.num_recon_images = 4
