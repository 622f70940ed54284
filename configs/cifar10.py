r"""CIFAR-10, the paper's Table 1 setting (K=512, L=8, batch 128, 100k steps, Adam 2e-4).

  python -m dvq_jax.main --config=configs/cifar10.py --workdir=/tmp/dvq_cifar10
  python -m dvq_jax.main --config=configs/cifar10.py --config.quantizer=mvq --workdir=...
  python -m dvq_jax.main --config=configs/cifar10.py:small --workdir=...   # seconds, for tests
"""

from dvq_jax import config_arg
from dvq_jax.vqvae import defaults


def get_config(arg=None):
  arg = config_arg.parse_arg(arg, small=False)
  config = defaults.learned_prior()
  config.dataset = "cifar10"
  config.train_split = "train"
  config.test_split = "test"
  if arg.small:
    defaults.shrink(config)
  return config
