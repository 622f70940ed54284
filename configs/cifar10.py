r"""CIFAR-10 with the project's default DVQ-VAE, or (`:official`, `:paper`) the published settings.

  python -m dvq_jax.main --config=configs/cifar10.py --workdir=/tmp/dvq_cifar10
  python -m dvq_jax.main --config=configs/cifar10.py --config.quantizer=mvq --workdir=...
  python -m dvq_jax.main --config=configs/cifar10.py:official --workdir=...  # official TF2 code
  python -m dvq_jax.main --config=configs/cifar10.py:paper --workdir=...     # paper's text
  python -m dvq_jax.main --config=configs/cifar10.py:small --workdir=...   # seconds, for tests

Default (the project's model): K=512, L=8, D=8, batch 128, 100k steps, Adam 2e-4 (the paper's
K, L, batch and optimizer); the VQ-VAE architecture of van den Oord et al. (hidden 256, residual
64, 2 downsamplings to an 8x8 grid, pre-activation residual blocks, 1x1 pre-quantizer conv),
inputs in [-1, 1], the paper's 4x4 stride-2 ConvTranspose upsampling, beta 0.25 on the
commitment term, quantizer losses summed over each vector's D features.
  Differs from the paper's text: D = 8 per codebook (latent width L*D = 64, not 250).
  Differs from the official code (`:official`, see `defaults.official_code`): L=10 codebooks
  of D=255 on a 4x4 grid behind a different encoder/decoder (hidden 255, 3 downsamplings,
  post-activation residual blocks, 3x3 pre-quantizer conv), inputs x/255 - 0.5, beta 1,
  per-element mean quantizer losses, codebooks normal(0, 0.1), 100 epochs (39,100 steps).
`:paper` (`defaults.paper_text`): the default model with the paper's latent width D = 250
split into L = 8 slices of 32, 32, 31, 31, 31, 31, 31, 31 features (paper Eq. 3).
"""

from dvq_jax import config_arg
from dvq_jax.vqvae import defaults

STEPS_PER_EPOCH = 391  # ceil(50,000 / 128), the Keras `fit` of the official notebook


def get_config(arg=None):
  arg = config_arg.parse_arg(arg, small=False, official=False, paper=False)
  config = defaults.learned_prior()
  config.dataset = "cifar10"
  config.train_split = "train"
  config.test_split = "test"
  if arg.official and arg.paper:
    raise ValueError("choose one of the :official and :paper variants")
  if arg.official:
    defaults.official_code(config)
    config.num_train_steps = 100 * STEPS_PER_EPOCH  # the notebook's 100 epochs
  if arg.paper:
    defaults.paper_text(config)
  if arg.small:
    defaults.shrink(config)
  return config
