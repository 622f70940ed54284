r"""ImageNet 64x64 (TFDS imagenet_resized/64x64), the paper's setting: K=512, L=8, batch 128.

  python -m dvq_jax.main --config=configs/imagenet64.py --workdir=gs://BUCKET/dvq_imagenet64
  python -m dvq_jax.main --config=configs/imagenet64.py:small --workdir=...   # seconds, for tests
"""

from dvq_jax import config_arg
from dvq_jax.vqvae import defaults


def get_config(arg=None):
  arg = config_arg.parse_arg(arg, small=False)
  config = defaults.learned_prior()
  config.dataset = "imagenet_resized/64x64"
  config.train_split = "train"
  config.test_split = "validation"
  config.model.num_downsamples = 3  # 64x64 -> 8x8 latents, as 32x32 -> 8x8 for CIFAR-10
  if arg.small:
    defaults.shrink(config)
  return config
