r"""ImageNet 64x64 (TFDS imagenet_resized/64x64): the project's model, `:official` or `:paper`.

  python -m dvq_jax.main --config=configs/imagenet64.py --workdir=gs://BUCKET/dvq_imagenet64
  python -m dvq_jax.main --config=configs/imagenet64.py:official --workdir=...
  python -m dvq_jax.main --config=configs/imagenet64.py:paper --workdir=...
  python -m dvq_jax.main --config=configs/imagenet64.py:small --workdir=...   # seconds, for tests

Default: the configs/cifar10.py model with 3 downsamplings (64x64 -> 8x8 latents, as 32x32 ->
8x8 for CIFAR-10); it differs from the paper's text and the official code as configs/cifar10.py
says. `:official` is the official TF2 `DVQVAE(D=255, K=512, L=10)` applied to 64x64 images:
its 3 downsamplings are fixed, so the grid is 8x8 (`defaults.official_code`; the official code
ships only a CIFAR-10 notebook, so the step count stays at 100k). `:paper`: latent width 250
in 8 slices (`defaults.paper_text`), 8x8 grid.
"""

from dvq_jax import config_arg
from dvq_jax.vqvae import defaults


def get_config(arg=None):
  arg = config_arg.parse_arg(arg, small=False, official=False, paper=False)
  config = defaults.learned_prior()
  config.dataset = "imagenet_resized/64x64"
  config.train_split = "train"
  config.test_split = "validation"
  config.model.num_downsamples = 3  # 64x64 -> 8x8 latents, as 32x32 -> 8x8 for CIFAR-10
  if arg.official and arg.paper:
    raise ValueError("choose one of the :official and :paper variants")
  if arg.official:
    defaults.official_code(config)
  if arg.paper:
    defaults.paper_text(config)
  if arg.small:
    defaults.shrink(config)
  return config
