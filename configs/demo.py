r"""Offline demo: 32x32 patches of the photographs bundled with scikit-image (no download).

Narrower than the paper's model so a run takes a few minutes on 2 CPU cores.
  python -m dvq_jax.main --config=configs/demo.py --workdir=/tmp/dvq_demo
  python -m dvq_jax.main --config=configs/demo.py --config.quantizer=vq --workdir=/tmp/dvq_demo_vq
  python -m dvq_jax.main --config=configs/demo.py:small --workdir=...   # seconds, for tests
"""

from dvq_jax import config_arg
from dvq_jax.vqvae import defaults


def get_config(arg=None):
  arg = config_arg.parse_arg(arg, small=False)
  config = defaults.learned_prior()
  config.dataset = "demo"
  config.likelihood = "logistic_mixture"
  config.batch_size = 32
  config.num_train_steps = 1_500
  config.learning_rate = 1e-3
  config.codebook_size = 64
  config.num_codebooks = 4
  config.codebook_dim = 4
  config.model.hidden_channels = 64
  config.model.residual_channels = 32
  config.model.num_mixtures = 5
  config.log_every_steps = 50
  config.eval_every_steps = 750
  config.checkpoint_every_steps = 500
  if arg.small:
    defaults.shrink(config)
  return config
