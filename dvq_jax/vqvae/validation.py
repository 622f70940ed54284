"""Early checks of a learned-prior (VQ-VAE) config: every user mistake fails here, before compute.

Each check raises `ConfigError` with one line naming the field and what to change.
"""

import ml_collections

from dvq_jax.training import validation as training_validation


def check_config(config: ml_collections.ConfigDict) -> None:
  """Checks the fields of a learned-prior config on their own (no IO, no devices).

  The model's fields (quantizer, likelihood, L, K, D, widths, beta, latent_channels) are
  checked by `vqvae.build_model`, the data set's name by `data.check_dataset_name`, the shared
  training fields by `training.validation.check_training`; the evaluation fields here.
  """
  from dvq_jax import data  # pylint: disable=g-import-not-at-top
  from dvq_jax import vqvae  # pylint: disable=g-import-not-at-top

  data.check_dataset_name(config.dataset)
  vqvae.build_model(config)
  training_validation.check_training(config)
  for field in ("eval_batch_size", "max_eval_examples", "num_recon_images", "grain_workers"):
    training_validation.require_int(config, field, 0)
