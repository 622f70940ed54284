r"""A VQ-VAE for the codec: the demo data with the context likelihood head.

The head (`likelihood = "context_logistic_mixture"`, `dvq_jax.vqvae.context`) decodes the pixels
in four groups, each conditioned on the codes and on the earlier groups' pixels. The 1,500 steps
took 31 min on a 2-core CPU shared with other jobs (1.2 s/step); how the files compare with PNG
and WebP is on the studies page (docs/studies.md). Train the VQ-VAE, then its code prior, then
compress (the small prior below took 23 min, 4.6 s/step, on that machine):
  python -m dvq_jax.main --config=configs/codec.py --workdir=/tmp/dvq_codec
  python -m dvq_jax.main --config=configs/prior.py --config.vqvae_workdir=/tmp/dvq_codec \
      --config.model.width=64 --config.model.depth=2 --config.num_train_steps=300 \
      --config.warmup_steps=30 --config.learning_rate=1e-3 --config.eval_every_steps=300 \
      --config.checkpoint_every_steps=300 --workdir=/tmp/dvq_codec_prior
  python -m dvq_jax.codec compress --prior_workdir=/tmp/dvq_codec_prior --input=images.npz \
      --output=images.dvqz
  python -m dvq_jax.main --config=configs/codec.py:small --workdir=...   # seconds, for tests
"""

from dvq_jax import config_arg
from dvq_jax.vqvae import defaults


def get_config(arg=None):
  arg = config_arg.parse_arg(arg, small=False)
  config = defaults.learned_prior()
  config.dataset = "demo"
  config.likelihood = "context_logistic_mixture"
  config.batch_size = 32
  config.num_train_steps = 1_500
  config.learning_rate = 1e-3
  config.lr_schedule = "cosine"
  config.codebook_size = 64
  config.num_codebooks = 4
  config.codebook_dim = 4
  config.model.hidden_channels = 64
  config.model.residual_channels = 32
  config.model.num_mixtures = 5
  config.log_every_steps = 100
  config.eval_every_steps = 1_500
  config.checkpoint_every_steps = 500
  if arg.small:
    defaults.shrink(config)
  return config
