r"""Rate-distortion study: VQ-VAEs over quantizer x (L, K) x seed on one base config.

  python -m dvq_jax.main --config=configs/rate_distortion.py --workdir=/tmp/rd
  python -m dvq_jax.main --config=configs/rate_distortion.py:small --workdir=...  # seconds, tests
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
"""

import importlib.util
import pathlib

import ml_collections

from dvq_jax import config_arg
from dvq_jax.vqvae import defaults


def _demo_config() -> ml_collections.ConfigDict:
  path = pathlib.Path(__file__).with_name("demo.py")
  spec = importlib.util.spec_from_file_location("demo_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def get_config(arg=None):
  arg = config_arg.parse_arg(arg, small=False)
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
  # Split the grid over processes: shard i trains points i, i + N, ...; rerun with
  # num_shards = 1 to collect rd.json / rd.csv / rd.png.
  config.num_shards = 1
  config.shard_index = 0
  config.collect_only = False  # True: tables and plot of the finished points, no training
  if arg.small:
    defaults.shrink(config.base)
    config.base.num_recon_images = 0
    config.latent_width = 4
    config.grid.vq = ((1, 16),)
    config.grid.dvq = ((2, 4),)
    config.grid.mvq = ((2, 4),)
    config.grid.svq = ((2, 16),)
    config.seeds = 1
  return config
