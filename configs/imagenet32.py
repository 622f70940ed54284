r"""ImageNet 32x32 (TFDS imagenet_resized/32x32): the project's model, `:official` or `:paper`.

  python -m dvq_jax.main --config=configs/imagenet32.py --workdir=gs://BUCKET/dvq_imagenet32
  python -m dvq_jax.main --config=configs/imagenet32.py:official --workdir=...
  python -m dvq_jax.main --config=configs/imagenet32.py:paper --workdir=...
  python -m dvq_jax.main --config=configs/imagenet32.py:small --workdir=...   # seconds, for tests

Default: the configs/cifar10.py model (K=512, L=8, D=8, 8x8 grid, batch 128, 100k steps) on
ImageNet 32x32; it differs from the paper's text and the official code as configs/cifar10.py
says. `:official` is the official TF2 `DVQVAE(D=255, K=512, L=10)` and its losses
(`defaults.official_code`; 32x32 -> 4x4 grid). The official code ships only a CIFAR-10
notebook, so the step count stays at 100k. `:paper`: latent width 250 in 8 slices
(`defaults.paper_text`).
"""

from dvq_jax import config_arg
from dvq_jax.vqvae import defaults


def get_config(arg=None):
  arg = config_arg.parse_arg(arg, small=False, official=False, paper=False)
  config = defaults.learned_prior()
  config.dataset = "imagenet_resized/32x32"
  config.train_split = "train"
  config.test_split = "validation"
  if arg.official and arg.paper:
    raise ValueError("choose one of the :official and :paper variants")
  if arg.official:
    defaults.official_code(config)
  if arg.paper:
    defaults.paper_text(config)
  if arg.small:
    defaults.shrink(config)
  return config
