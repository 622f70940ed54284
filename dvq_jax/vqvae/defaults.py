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
  # The unigram rate's code histogram is taken over this many evenly spaced training images at
  # each evaluation (all of them if the split is smaller), so an evaluation's cost does not grow
  # with the training split; 0 = the whole split.
  config.unigram_train_examples = 50_000
  config.grain_workers = 0

  # Quantizer: dvq | mvq | vq | svq | rvq | fsq | lfq | bsq | rfsq | rlfq (see docs/quantizers.md
  # and docs/trainer.md). rvq, fsq, lfq, bsq, rfsq and rlfq are depthwise like dvq: the
  # L*D-channel latent splits into L slices of D. rvq: each slice an M-stage residual VQ
  # (num_stages), K codes a stage, L*M codes a position (L = 1: plain RVQ). fsq: each slice of
  # D = len(fsq_levels) dimensions rounded to a fixed grid of prod(fsq_levels) codes
  # (codebook_size, codebook_dim unused). lfq: each slice of D <= 16 dimensions quantized to its
  # signs, 2^D codes (D bits) a slice, L*D bits a position (codebook_size unused). bsq: lfq on
  # the unit sphere (binary spherical quantization). rfsq / rlfq: num_stages residual stages of
  # fsq / lfq a slice, L*M codes a position.
  config.quantizer = "dvq"
  config.num_codebooks = 8  # L
  config.codebook_size = 512  # K
  config.codebook_dim = 8  # D; dvq latents have L*D channels, mvq/vq/svq latents have D
  # True: every quantizer's encoder emits L*D channels; vq/svq/mvq codebook vectors are then
  # L*D wide (VQ quantizes the whole L*D vector), so a comparison changes only the quantizer.
  # False: vq/svq/mvq latents and codebook vectors are D wide (the paper's baselines).
  config.equal_width = False
  config.slice_sizes = ()  # dvq: L unequal slice widths D_l (paper Eq. 3), max = D; () = equal
  # split: codebook l quantizes channel slice l | learned: its own learned 1x1 projection (C -> D)
  # of the whole latent (Depthwise Quantization, Fostiropoulos & Boehm 2022); dvq, rvq, fsq, lfq.
  config.slice_projection = "split"
  # 1 | 2: a VQ-VAE-2-style top level at half resolution conditions the decoder (Razavi et al.
  # 2019); the rate counts both levels' codes. Not for vq/svq, EMA codebooks or the tokenizer.
  config.levels = 1
  # Cosine codes: l2-normalised slices and codebooks (dvq, mvq, vq, svq).
  config.cosine = False
  # Gradient to the encoder through the quantizer: straight_through | rotation (the rotation
  # trick of Fifty et al. 2024; dvq, mvq, vq, svq, rvq; fsq and lfq are straight-through).
  config.gradient_estimator = "straight_through"
  config.num_stages = 2  # rvq, rfsq, rlfq: M residual stages per slice
  config.fsq_levels = (8, 5, 5, 5)  # fsq, rfsq: grid values per slice dimension, each >= 2
  # lfq, bsq, rlfq: weight of the entropy penalty (MAGVIT-v2; BSQ).
  config.lfq_entropy_weight = 0.1
  # bsq: dimensions per group of its batch-entropy term (divides D, <= 16); 0 = D (exact).
  config.bsq_group_size = 0
  # Codebooks of dvq, mvq, vq, svq, rvq: direct (the param is the codebook) | simvq (a frozen
  # random basis times a learned (D, D) map, Zhu et al. 2024; codebook_update = gradient).
  config.codebook_parameterization = "direct"
  # > 0: dvq and vq sample each code from softmax(-||z - e||^2 / code_temperature) while
  # training (Gumbel-max; evaluation and encoding take the nearest code); 0 = nearest codes.
  config.code_temperature = 0.0
  # Gradient of sampled codes: straight_through | gumbel_softmax (the relaxation's gradient).
  config.code_relaxation = "straight_through"
  # Weight of the commitment (encoder) term ||z - sg(e)||^2 (van den Oord et al.); the DVQ
  # paper gives no value, the official DVQ code uses 1.0.
  config.beta = 0.25
  # Reduction of the codebook and commitment terms over a position's features:
  # sum_features (squared distance summed over the quantized vector's features) |
  # mean_elements (each codebook's per-element mean, summed over codebooks, i.e. divided by
  # the codebook dim D: the official DVQ code's L VQ layers each take tf.reduce_mean).
  # Both are means over latent positions; only the scale against the reconstruction differs.
  config.quantizer_loss_reduction = "sum_features"
  # Codebook learning (docs/trainer.md; dvq_jax.vqvae.codebook_learning):
  # gradient (the codebook loss trains the codebooks through the optimizer) | ema (the loss drops
  # the codebook term and each step sets the codebooks to an exponential moving average of the
  # batch vectors that chose them, van den Oord et al. App. A.1; the commitment term still
  # trains the encoder).
  config.codebook_update = "gradient"
  config.ema_decay = 0.99  # EMA decay in [0, 1): of the codebooks, and of the usage restart reads
  config.ema_epsilon = 1e-5  # > 0: Laplace smoothing of the EMA cluster sizes
  # True: before step 1, k-means++ and Lloyd iterations on the encoder outputs of the first
  # kmeans_batches batches set the codebooks (checkpointed as step 0, not redone on resume).
  config.kmeans_init = False
  config.kmeans_iterations = 10  # Lloyd iterations after the k-means++ seeding, >= 0
  config.kmeans_batches = 4  # batches of encoder outputs k-means sees (>= K vectors per codebook)
  # > 0: after every step, codes whose EMA usage (vectors per batch, decay ema_decay; starts at
  # 1) is below this move onto random batch vectors of their own slice; counted in the metric
  # train/codes_restarted (codes per step). 0 = off.
  config.dead_code_threshold = 0.0
  # Likelihood head: categorical256 (paper's bits/dim) | logistic_mixture | mse.
  config.likelihood = "categorical256"

  config.batch_size = 128  # global, over all devices and hosts
  # > 1: each step's gradient in this many sequential passes over equal slices of the batch (the
  # same gradient up to float rounding). For speed on CPUs: at batch 128, 4 passes train
  # 1.04-1.25x more images/s (docs/scaling.md, "CPU performance notes"). batch_size / microbatches must split
  # over the devices; not with lfq, whose entropy penalty is not a mean over images.
  config.microbatches = 1
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
  # vqvae (van den Oord et al.) | dvq_official (the official TF2 DVQVAE's layer order and widths).
  config.model.architecture = "vqvae"
  config.model.residual_style = "pre_activation"  # pre_activation (VQ-VAE) | post_activation (official)
  config.model.input_scaling = "symmetric"  # symmetric: x/127.5 - 1 | official: x/255 - 0.5
  config.model.pre_quantizer_kernel = 1  # k of the encoder's last kxk conv (official code: 3)
  # 2x upsampling: transpose_phases (the paper's 4x4 stride-2 ConvTranspose in each backend's
  # fastest form: four 2x2 sub-pixel phases on CPU, nn.ConvTranspose on TPU/GPU) | transpose
  # (nn.ConvTranspose everywhere; slow backward on XLA:CPU) | subpixel (a 3x3 conv +
  # depth-to-space; ~2x the FLOPs).
  config.model.upsample = "transpose_phases"
  config.model.num_mixtures = 10  # logistic_mixture components
  config.model.codebook_init = "truncated_normal"
  config.model.codebook_init_scale = 0.0  # 0 = the scheme's default (official code: normal, 0.1)
  # Compute dtype: auto (bfloat16 on TPU/GPU, float32 on CPU) | float32 | bfloat16. Params,
  # optimizer state, the quantizer's distances and the likelihood's reductions stay float32.
  config.model.dtype = "auto"
  # The last upsampling layer's compute dtype (the head: ~half the FLOPs): float32 | bfloat16;
  # "" = model.dtype. On XLA:CPU, which runs bfloat16 convolutions in float32, dtype float32 with
  # a bfloat16 head trained ~1.2x faster than either alone (docs/scaling.md, "CPU performance notes").
  config.model.head_dtype = ""

  config.log_every_steps = 100
  config.eval_every_steps = 5_000
  config.checkpoint_every_steps = 5_000
  config.keep_checkpoints = 3
  config.num_recon_images = 32  # test images spread over the split, shown in recon_<step>.png
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
  config.slice_sizes = ()
  config.max_eval_examples = 16
  config.model.hidden_channels = 16
  config.model.residual_channels = 8
  config.model.num_residual_blocks = 1
  config.log_every_steps = 2
  config.eval_every_steps = 4
  config.checkpoint_every_steps = 2
  config.num_recon_images = 4


def official_code(config: ml_collections.ConfigDict) -> None:
  """Sets the model and loss of the official TF2 code (`DVQVAE(D=255, K=512, L=10)`).

  Field by field from `dvq_model.py` (master, github.com/fostiropoulos/dvq) and its notebook
  "VQVAE vs DVQVAE.ipynb" (`DVQVAE(D=255, K=512, L=10, mse=False)`, Adam 2e-4, batch 128,
  100 epochs of CIFAR-10)::

    architecture dvq_official: 3x3 stride-2 conv, `ResNetBlock`, two 4x4 stride-2 convs
      (3 downsamplings: 32x32 -> 4x4), `pre_vq` 3x3 conv to L*D = 2550; decoder 3x3 conv,
      `ResNetBlock`, two 4x4 stride-2 Conv2DTranspose to 255//2 = 127, the last to 3*256;
    hidden 255, residual 64, 2 post-activation residual blocks (`ResNet`: x + relu(conv1x1(
      relu(conv3x3(x))))); inputs x/255 - 0.5; codebooks normal(0, 0.1); beta 1;
    quantizer losses: per-element means of each codebook's terms, summed over the L codebooks
      (`VQ.call`: `reduce_mean((x - sg(e))**2)`); reconstruction: the mean 256-way cross
      entropy per subpixel (as `likelihood = "categorical256"` here).

  Not reproduced: Keras' glorot-uniform kernel init (flax: lecun-normal); Keras Adam's
  epsilon 1e-7 (optax 1e-8); TF's Conv2DTranspose kernel is the spatial flip of flax's (the
  same function class and parameter count); the last partial batch of each Keras epoch.
  """
  config.quantizer = "dvq"
  config.num_codebooks = 10
  config.codebook_size = 512
  config.codebook_dim = 255
  config.slice_sizes = ()
  config.beta = 1.0
  config.quantizer_loss_reduction = "mean_elements"
  config.likelihood = "categorical256"
  config.batch_size = 128
  config.learning_rate = 2e-4
  config.lr_schedule = "constant"
  config.model.architecture = "dvq_official"
  config.model.hidden_channels = 255
  config.model.residual_channels = 64
  config.model.num_downsamples = 3
  config.model.num_residual_blocks = 2
  config.model.residual_style = "post_activation"
  config.model.input_scaling = "official"
  config.model.pre_quantizer_kernel = 3
  config.model.upsample = "transpose_phases"  # the 4x4 stride-2 ConvTranspose, exactly
  config.model.codebook_init = "normal"
  config.model.codebook_init_scale = 0.1


# The paper's latent width D = 250 in L = 8 slices (paper Eq. 3 allows unequal D_l): six of
# 31 and two of 32 features (6*31 + 2*32 = 250), the most even split of 250 into 8 parts.
PAPER_SLICE_SIZES = (32, 32, 31, 31, 31, 31, 31, 31)


def paper_text(config: ml_collections.ConfigDict) -> None:
  """Sets what the paper's text states: DVQ, K = 512, L = 8, latent width D = 250.

  250 is not divisible by 8, so the latent vector splits into `PAPER_SLICE_SIZES` (two slices
  of 32 features, six of 31): equal slices would need a width of 248 or 256, and the paper's
  Eq. 3 defines DVQ with per-slice widths D_l, which `depthwise_quantize(slice_sizes=...)`
  computes exactly (codebooks are stored `(8, 512, 32)`; entries past D_l stay zero). The rest
  (architecture, upsampling = the paper's 4x4 stride-2 ConvTranspose, beta 0.25 of van den Oord
  et al., the loss reduction) is not given by the paper's text and stays at the project default.
  """
  config.quantizer = "dvq"
  config.num_codebooks = 8
  config.codebook_size = 512
  config.codebook_dim = max(PAPER_SLICE_SIZES)
  config.slice_sizes = PAPER_SLICE_SIZES
  config.model.upsample = "transpose_phases"
