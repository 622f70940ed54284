"""Early checks of a learned-prior (VQ-VAE) config: every user mistake fails here, before compute.

Each check raises `ConfigError` with one line naming the field and what to change.
"""

from collections.abc import Iterable

import ml_collections

from dvq_jax.errors import ConfigError
from dvq_jax.training import validation as training_validation


def check_config(config: ml_collections.ConfigDict) -> None:
  """Checks the fields of a learned-prior config on their own (no IO, no devices).

  The model's fields (quantizer, likelihood, L, K, D, widths, beta, latent_channels) are
  checked by `vqvae.model_fields.check_model_fields`, the data set's name by
  `data.check_dataset_name`, the shared training fields by `training.validation.check_training`;
  the evaluation fields here.
  """
  from dvq_jax import data  # pylint: disable=g-import-not-at-top
  from dvq_jax.vqvae.model_fields import check_model_fields  # pylint: disable=g-import-not-at-top

  data.check_dataset_name(config.dataset)
  # The fields alone: building the model would resolve `model.dtype = "auto"` through the
  # backend, and a multi-host run must not start a backend before jax.distributed.initialize.
  check_model_fields(config)
  training_validation.check_training(config)
  for field in ("eval_batch_size", "max_eval_examples", "unigram_train_examples",
                "num_recon_images", "grain_workers"):
    training_validation.require_int(config, field, 0)
  check_microbatches(config)
  check_codebook_learning(config)


def unused_fields(config: ml_collections.ConfigDict) -> tuple[str, ...]:
  """The size fields the config's quantizer does not read: vq's num_codebooks (unless
  equal_width makes its vectors L*D wide), fsq's codebook_size and codebook_dim (its codes are
  fixed by fsq_levels), lfq's codebook_size (2^codebook_dim codes).

  >>> from dvq_jax.vqvae import defaults
  >>> config = defaults.learned_prior()
  >>> config.quantizer = "fsq"
  >>> unused_fields(config)
  ('codebook_size', 'codebook_dim')
  """
  if config.quantizer == "vq" and not config.get("equal_width", False):
    return ("num_codebooks",)
  return {"fsq": ("codebook_size", "codebook_dim"), "lfq": ("codebook_size",)}.get(
      config.quantizer, ())


def check_overrides(config: ml_collections.ConfigDict, overridden: Iterable[str]) -> None:
  """Rejects a command-line override (`--config.<field>=...`) of a field the quantizer ignores.

  Config files may leave these fields at any value (one file serves every quantizer); a value
  given on the command line was meant to change the model, and would silently not.

  Args:
    config: the learned-prior config, overrides applied.
    overridden: the dotted names of the fields set on the command line.
  """
  for field in unused_fields(config):
    if field in overridden:
      raise ConfigError(f"config.{field} = {config[field]!r} is not used by quantizer"
                        f" {config.quantizer!r}; drop --config.{field} (see the quantizer's"
                        " fields in dvq_jax/vqvae/defaults.py)")


def check_microbatches(config: ml_collections.ConfigDict, device_count: int = 1) -> None:
  """`microbatches` must divide the batch into slices that split over `device_count` devices."""
  training_validation.require_int(config, "microbatches", 1)
  microbatches = config.microbatches
  if microbatches == 1:
    return
  if config.batch_size % (microbatches * device_count):
    raise ConfigError(
        f"config.batch_size = {config.batch_size} does not split into {microbatches} microbatches"
        f" over {device_count} device(s); use a batch_size that is a multiple of"
        f" {microbatches * device_count} or fewer microbatches")
  if config.quantizer in ("lfq", "bsq", "rlfq") and config.lfq_entropy_weight > 0:
    raise ConfigError(f"config.microbatches > 1 does not work with {config.quantizer}'s entropy"
                      " penalty (its batch-entropy term is not a mean over images); set"
                      " microbatches = 1 or lfq_entropy_weight = 0")


def _is_number(value) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_codebook_learning(config: ml_collections.ConfigDict) -> None:
  """Checks codebook_update, ema_*, kmeans_* and dead_code_threshold (see `defaults.py`)."""
  from dvq_jax.vqvae.codebook_learning import CODEBOOK_UPDATES  # pylint: disable=g-import-not-at-top

  if config.codebook_update not in CODEBOOK_UPDATES:
    raise ConfigError(f"config.codebook_update = {config.codebook_update!r} is unknown; use one"
                      f" of {', '.join(CODEBOOK_UPDATES)}")
  if not _is_number(config.ema_decay) or not 0.0 <= config.ema_decay < 1.0:
    raise ConfigError(f"config.ema_decay = {config.ema_decay!r}; set it to a number in [0, 1),"
                      " e.g. 0.99")
  if not _is_number(config.ema_epsilon) or not config.ema_epsilon > 0:
    raise ConfigError(f"config.ema_epsilon = {config.ema_epsilon!r}; set it to a number > 0,"
                      " e.g. 1e-5")
  if not isinstance(config.kmeans_init, bool):
    raise ConfigError(f"config.kmeans_init = {config.kmeans_init!r}; set it to True or False")
  training_validation.require_int(config, "kmeans_iterations", 0)
  training_validation.require_int(config, "kmeans_batches", 1)
  threshold = config.dead_code_threshold
  if not _is_number(threshold) or threshold < 0:
    raise ConfigError(f"config.dead_code_threshold = {threshold!r}; set it to a number >= 0"
                      " (0 = no dead-code restart)")
  stateful = (config.codebook_update == "ema" or config.kmeans_init or threshold > 0)
  if stateful and config.quantizer not in ("dvq", "mvq", "vq", "svq"):
    raise ConfigError(f"config.quantizer = {config.quantizer!r}: EMA codebooks, k-means init and"
                      " dead-code restart work with dvq, mvq, vq and svq; set codebook_update ="
                      " 'gradient', kmeans_init = False, dead_code_threshold = 0")
  if stateful and config.get("code_temperature", 0.0) > 0:
    raise ConfigError("config.code_temperature > 0 (sampled codes) does not work with EMA"
                      " codebooks, k-means init or dead-code restart; set code_temperature = 0"
                      " or codebook_update = 'gradient', kmeans_init = False,"
                      " dead_code_threshold = 0")
  if stateful and config.get("codebook_parameterization", "direct") != "direct":
    raise ConfigError("config.codebook_parameterization = 'simvq' learns its codebooks through"
                      " W only: EMA codebooks, k-means init and dead-code restart would overwrite"
                      " the frozen basis; set codebook_update = 'gradient', kmeans_init = False,"
                      " dead_code_threshold = 0 or codebook_parameterization = 'direct'")
  if stateful and tuple(config.slice_sizes):
    raise ConfigError("config.slice_sizes (unequal dvq slices) does not work with EMA codebooks,"
                      " k-means init or dead-code restart yet; set slice_sizes = () or"
                      " codebook_update = 'gradient', kmeans_init = False,"
                      " dead_code_threshold = 0")


def check_kmeans_vectors(config: ml_collections.ConfigDict, image_shape) -> None:
  """k-means needs at least K vectors per codebook in its `kmeans_batches` batches."""
  from dvq_jax.vqvae.model_fields import codes_per_image  # pylint: disable=g-import-not-at-top

  if not config.kmeans_init:
    return
  num_codebooks = 1 if config.quantizer == "vq" else config.num_codebooks
  per_codebook = (config.kmeans_batches * config.batch_size
                  * codes_per_image(config, image_shape) // num_codebooks)
  if per_codebook < config.codebook_size:
    raise ConfigError(
        f"config.kmeans_batches = {config.kmeans_batches} batches give {per_codebook} vectors"
        f" per codebook, fewer than codebook_size = {config.codebook_size}; raise"
        " kmeans_batches or batch_size")
