r"""ImageNet 32x32 (TFDS imagenet_resized/32x32), the paper's setting: K=512, L=8, batch 128.

  python -m dvq_jax.main --config=configs/imagenet32.py --workdir=gs://BUCKET/dvq_imagenet32
  python -m dvq_jax.main --config=configs/imagenet32.py:small --workdir=...   # seconds, for tests
"""

from dvq_jax import config_arg
from dvq_jax.vqvae import defaults


def get_config(arg=None):
  arg = config_arg.parse_arg(arg, small=False)
  config = defaults.learned_prior()
  config.dataset = "imagenet_resized/32x32"
  config.train_split = "train"
  config.test_split = "validation"
  if arg.small:
    defaults.shrink(config)
  return config
