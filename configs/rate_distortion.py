r"""Rate-distortion study: VQ-VAEs over quantizer x (L, K) x seed on one base config.

  python -m dvq_jax.main --config=configs/rate_distortion.py --workdir=/tmp/rd
  python -m dvq_jax.main --config=configs/rate_distortion.py:small --workdir=...  # seconds, tests
  python -m dvq_jax.main --config=configs/rate_distortion.py:full --workdir=/tmp/rd_full
  python -m dvq_jax.main --config=configs/rate_distortion.py:small,full --workdir=...  # a point a family
  python -m dvq_jax.main --config=configs/rate_distortion.py --config.seeds=5 \
      --config.base.num_train_steps=3000 --config.grid.vq='((1,64),(1,256))' --workdir=...

What is held equal at every point: the base config `base` (configs/demo.py: the offline
scikit-image patches, its model widths, likelihood head, batch size, learning rate, steps and
evaluation), the encoder output width `latent_width` (every quantizer quantizes the same
16-channel latent: `equal_width` = True and D = latent_width / L, see
`dvq_jax.rate_distortion.grid`), the loss (beta and `quantizer_loss_reduction` of the base
config), and the seeds (`seeds` repetitions: base.seed, base.seed + 1, ...). Only quantizer, L
and K change. The default grid's rates overlap in [0.083, 0.333] bits/dim under the uniform code
prior (rate = positions * L * log2 K / 3072 for dvq/mvq, positions * log2 K / 3072 for vq/svq;
8x8 = 64 positions on 32x32x3 patches).

The default is sized for a 2-core CPU shared with other jobs: the demo model narrowed to hidden
32 / residual 16, batch 16, 1,500 Adam steps a point (the demo's count), 3 seeds, 3 rate points per quantizer
(36 runs). It measures the ordering of short training runs of a small model, not converged
models.

`:full` covers the whole rate range, ~0.04 to 2.7 bits/dim under the uniform code rate: nine
families at 2, 8, 16, 32, 64, 72, 96 and 128 bits per 8x8-grid position (rate = bits * 64 /
3072; 72 bits is the paper's L = 8 codebooks of K = 512, 1.5 bits/dim), vq and svq only up to
16 bits (K <= 65,536), 3 seeds each, 246 runs of 1,500 steps:
  dvq, mvq    (L, K) = (1, 4) ... (8, 512) ... (16, 256); D = 64 / L
  rvq         M = 2 residual stages a slice, (1, 2) ... (4, 512) ... (16, 16)
  fsq         L slices of the grid `grid.FSQ_LEVELS[K]` (K = 4, 256, 512, 4096: prod(levels) = 4,
              240, 512, 4,375 codes; log2 of that is the rate, so its points sit within 2% of
              the others')
  lfq         L slices of D = log2 K sign bits
  bsq         L slices of D = log2 K bits on the unit sphere (binary spherical quantization)
  simvq       dvq with `codebook_parameterization` = "simvq" (frozen basis times a learned map)
  dvq_learned dvq with `slice_projection` = "learned" (Depthwise Quantization, CVPR 2022)
  dvq_2level  dvq with `levels` = 2: the same (L, K) on a 4x4 top grid as well, 1.25x the rate
  vq, svq     K = 4, 16, 256, 4,096, 65,536 (svq with L = 4)
Held equal at every point of `:full`: the data and evaluation (the demo patches), the model
(encoder trunk, decoder trunk, likelihood head: the demo's widths narrowed as the default's),
the batch, the optimizer and learning rate, the 1,500 steps, the loss (beta, reduction) and the
seeds (base.seed .. base.seed + 2). What differs is only the quantizer's input and output
projection, and it cannot be held equal: the encoder's last 1x1 conv emits latent_width = 64
channels for dvq, mvq, vq, svq, rvq, simvq and both dvq variants, but L * len(levels) for fsq
(its width is set by its levels) and L * log2 K for lfq and bsq (one channel a bit); the
decoder's first conv reads L*64 channels for mvq (L concatenated full-width vectors) and
64 + 64 for the 2-level model (bottom + upsampled top); the learned projection adds L (64 x D)
matrices and the top level its own small encoder and decoder. The study handles this by letting only those
layers vary (the trunks are identical), recording each point's full config
(`<workdir>/<point>/config.json`), and comparing families at equal uniform rate, where each
family's points are placed on the same bit ladder.
It takes many CPU hours (run it in the background; it resumes).

`:full,check` asks whether 1,500 steps are long enough: each family's point on the rungs of 16
and 72 bits a position (0.333 and 1.5 bits/dim; vq and svq only at 16) at 4x the steps
(6,000), one seed, 20 runs; `--config.compare_with=<the :full workdir>` then writes
steps_check.json/.csv, the families' order at both lengths (`rate_distortion.steps_check`):
  python -m dvq_jax.main --config=configs/rate_distortion.py:full,check \
      --config.compare_with=/tmp/rd_full --workdir=/tmp/rd_check
`:full,long` is the whole `:full` grid at 4x the steps (6,000), 3 seeds: what the study reports
once the check finds that the order at 1,500 steps does not hold. Its seed-0 points on the
check's two rungs are the check's runs (the same configs), so a workdir of the check's finished
runs (or links to them) is read back rather than trained again:
  python -m dvq_jax.main --config=configs/rate_distortion.py:full,long --workdir=/tmp/rd_long
`--config.records_from=<folder>` takes the runs and priors recorded in an earlier run's tables
(`<folder>/rd.json`, `rd_priors.json`) rather than training them (`rate_distortion.study`): a
grid continues from its committed tables once its workdir is gone, e.g.
`--config.records_from=docs/images/rate_distortion_long`.
`--config.prior_bits='(16,72)'` trains, after the grid, the code prior `prior` on each family's
seed-0 point at those rungs and writes rd_priors.json/.csv (`rate_distortion.priors`). `prior` is
configs/prior.py narrowed for a CPU as the VQ-VAE is: width 64, 2 blocks, 1,000 steps (the
settings of the code prior section of docs/studies.md; configs/prior.py has 128, 4 and 2,000);
`--config.prior.<field>` overrides it. With `num_shards`/`shard_index` each shard trains its share
of the priors (`rate_distortion.priors.shard_names`); a last unsharded run writes the table:
  python -m dvq_jax.main --config=configs/rate_distortion.py:full --config.prior_bits='(16,72)' \
      --workdir=/tmp/rd_full
"""

import importlib.util
import pathlib

import ml_collections

from dvq_jax import config_arg
from dvq_jax.prior import defaults as prior_defaults
from dvq_jax.vqvae import defaults


def _demo_config() -> ml_collections.ConfigDict:
  path = pathlib.Path(__file__).with_name("demo.py")
  spec = importlib.util.spec_from_file_location("demo_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def _full_grid(config: ml_collections.ConfigDict) -> None:
  """The `:full` grid (module docstring): every family on one ladder of bits a position."""
  config.latent_width = 64  # the paper's L*D = 8*8: D = 64 / L
  # 2 ... 128 bits a position; (8, 512) is the paper's 72 bits
  ladder = ((1, 4), (2, 16), (4, 16), (8, 16), (8, 256), (8, 512), (8, 4096), (16, 256))
  vq_sizes = (4, 16, 256, 4096, 65536)  # 2 ... 16 bits: one codebook up to K = 65,536
  # A further family enters as a name in quantizers, its (L, K) ladder in grid and, when it is
  # a quantizer with options, its fields in families.
  bit_ladder = ((1, 4), (1, 256), (2, 256), (4, 256), (8, 256), (8, 512), (8, 4096), (16, 256))
  config.quantizers = ("dvq", "mvq", "rvq", "fsq", "lfq", "bsq", "simvq", "dvq_learned",
                       "dvq_2level", "vq", "svq")
  config.families = ml_collections.ConfigDict({
      "rvq": {"num_stages": 2},
      "simvq": {"quantizer": "dvq", "codebook_parameterization": "simvq"},
      "dvq_learned": {"quantizer": "dvq", "slice_projection": "learned"},
      "dvq_2level": {"quantizer": "dvq", "levels": 2},
  })
  config.grid = ml_collections.ConfigDict({
      "dvq": ladder, "mvq": ladder, "simvq": ladder, "dvq_learned": ladder,
      "dvq_2level": ladder,
      "rvq": ((1, 2), (1, 16), (2, 16), (4, 16), (8, 16), (4, 512), (8, 64),  # M = 2 stages
              (16, 16)),
      "fsq": bit_ladder,
      "lfq": bit_ladder,
      "bsq": bit_ladder,
      "vq": tuple((1, size) for size in vq_sizes),
      "svq": tuple((4, size) for size in vq_sizes),
  })


def _long(config: ml_collections.ConfigDict) -> None:
  """`:long` and `:check` (module docstring): 4x the steps, evaluated once at the end."""
  config.base.num_train_steps *= 4
  config.base.eval_every_steps = config.base.num_train_steps


def _check(config: ml_collections.ConfigDict, small: bool) -> None:
  """`:check` (module docstring): `_long`, one seed, the rungs of 16 and 72 bits."""
  _long(config)
  config.seeds = 1
  if not small:  # the small grid has one low rung a family: it is kept whole
    config.rungs = (16, 72)  # 0.333 and 1.5 bits/dim (the paper's); vq and svq stop at 16


def get_config(arg=None):
  arg = config_arg.parse_arg(arg, small=False, full=False, check=False, long=False)
  config = ml_collections.ConfigDict()
  config.experiment = "rate_distortion"
  config.base = _demo_config()  # any learned-prior config; --config.base.<field> overrides it
  config.base.num_train_steps = 1500
  config.base.batch_size = 16
  config.base.model.hidden_channels = 32
  config.base.model.residual_channels = 16
  config.base.eval_every_steps = 1500
  config.base.checkpoint_every_steps = 500
  config.base.log_every_steps = 100
  config.base.num_recon_images = 0
  config.latent_width = 16  # encoder output channels of every point; D = latent_width / L
  config.quantizers = ("vq", "dvq", "mvq", "svq")
  config.grid = ml_collections.ConfigDict()  # quantizer -> ((L, K), ...)
  config.grid.vq = ((1, 16), (1, 256), (1, 4096))  # rates 0.083, 0.167, 0.25
  config.grid.dvq = ((2, 4), (2, 16), (4, 16))  # rates 0.083, 0.167, 0.333
  config.grid.mvq = ((2, 4), (2, 16), (4, 16))
  config.grid.svq = ((4, 16), (4, 256), (4, 4096))  # rates as vq
  config.seeds = 3
  config.rungs = ()  # bits per position (grid.bits_per_position) to keep; () = every point
  if arg.full:
    _full_grid(config)
  # Split the grid over processes: shard i trains points i, i + N, ...; rerun with
  # num_shards = 1 to collect rd.json / rd.csv / rd.png.
  config.num_shards = 1
  config.shard_index = 0
  config.collect_only = False  # True: tables and plot of the finished points, no training
  # A folder of an earlier run's rd.json (and rd_priors.json): its records are taken, not retrained.
  config.records_from = ""
  # After the grid: a code prior on each family's base.seed point of these rungs (rd_priors.json).
  config.prior_bits = ()
  config.prior = prior_defaults.code_prior()  # vqvae_workdir is set to each point's
  config.prior.model.width = 64
  config.prior.model.depth = 2
  config.prior.num_train_steps = 1000
  config.prior.eval_every_steps = 1000
  config.compare_with = ""  # a finished study's workdir: write steps_check.json against it
  if arg.small:
    defaults.shrink(config.base)
    config.base.num_recon_images = 0
    config.latent_width = 4
    config.grid.vq = ((1, 16),)
    config.grid.dvq = ((2, 4),)
    config.grid.mvq = ((2, 4),)
    config.grid.svq = ((2, 16),)
    if arg.full:  # one point a family
      for family in ("rvq", "fsq", "lfq", "bsq", "simvq", "dvq_learned", "dvq_2level"):
        config.grid[family] = ((2, 4),)
    config.seeds = 1
    prior_defaults.shrink(config.prior)
  if arg.check:
    _check(config, arg.small)
  elif arg.long:
    _long(config)
  return config
