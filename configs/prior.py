r"""An autoregressive Transformer prior over the codes of a trained VQ-VAE run.

  python -m dvq_jax.main --config=configs/demo.py --workdir=/tmp/dvq_demo      # the VQ-VAE
  python -m dvq_jax.main --config=configs/prior.py --config.vqvae_workdir=/tmp/dvq_demo \
      --workdir=/tmp/dvq_demo_prior
  python -m dvq_jax.main --config=configs/prior.py:small ...   # seconds, for tests
  python -m dvq_jax.main --config=configs/prior.py --config.order=codebook_major ...
"""

from dvq_jax import config_arg
from dvq_jax.prior import defaults


def get_config(arg=None):
  arg = config_arg.parse_arg(arg, small=False)
  config = defaults.code_prior()
  if arg.small:
    defaults.shrink(config)
  return config
