"""Config fields of the Depthwise Quantization options: `slice_projection` and `levels`.

Pure checks and sizes (no model import), so `model_fields` can count the codes of every level;
the modules themselves live in `vqvae.hierarchy`.
"""

from dvq_jax.errors import ConfigError

# split: codebook l quantizes feature slice l of the encoder output (DVQ, the default);
# learned: codebook l quantizes its own learned 1x1 projection (C -> D) of the whole encoder
# output (Depthwise Quantization, Fostiropoulos & Boehm, CVPR 2022).
SLICE_PROJECTIONS = ("split", "learned")
# 1: one latent grid; 2: a VQ-VAE-2-style top grid at half the resolution conditions the decoder.
LEVELS = (1, 2)
# The quantizers whose latents are L slices of D channels, each quantized by its own codebook.
PROJECTED_QUANTIZERS = ("dvq", "rvq", "fsq", "lfq")
# Codes `(batch, h, w, columns)` that stack along positions; vq and svq store `(batch, h, w)`.
LEVELED_QUANTIZERS = ("dvq", "mvq", "rvq", "fsq", "lfq")


def check_level_fields(config) -> None:
  """Checks `slice_projection` and `levels` against the quantizer and the codebook learning."""
  projection = config.get("slice_projection", "split")
  if projection not in SLICE_PROJECTIONS:
    raise ConfigError(f"config.slice_projection = {projection!r} is unknown; use one of"
                      f" {', '.join(SLICE_PROJECTIONS)}")
  if projection == "learned" and config.quantizer not in PROJECTED_QUANTIZERS:
    raise ConfigError(f"config.slice_projection = 'learned' needs a sliced quantizer"
                      f" ({', '.join(PROJECTED_QUANTIZERS)}), not {config.quantizer!r}; set it to"
                      " 'split'")
  if projection == "learned" and tuple(config.get("slice_sizes", ())):
    raise ConfigError("config.slice_sizes sets unequal fixed slices; with slice_projection ="
                      " 'learned' every projection is D wide: set slice_sizes = ()")
  levels = config.get("levels", 1)
  if levels not in LEVELS or isinstance(levels, bool):
    raise ConfigError(f"config.levels = {levels!r}; set it to 1 or 2")
  if levels == 1:
    return
  if config.quantizer not in LEVELED_QUANTIZERS:
    raise ConfigError(f"config.levels = 2 needs quantizer {', '.join(LEVELED_QUANTIZERS)}, not"
                      f" {config.quantizer!r}; set levels = 1")
  if (config.get("codebook_update", "gradient") != "gradient" or config.get("kmeans_init", False)
      or config.get("dead_code_threshold", 0.0) > 0):
    raise ConfigError("config.levels = 2 learns its codebooks by gradient only; set"
                      " codebook_update = 'gradient', kmeans_init = False and"
                      " dead_code_threshold = 0")


def positions_over_levels(height: int, width: int, levels: int) -> int:
  """Latent positions of all levels: h*w, plus (h/2)*(w/2) for the top level when levels = 2.

  Raises:
    ConfigError: levels = 2 and the bottom grid's sides are not even.

  >>> positions_over_levels(8, 8, 1), positions_over_levels(8, 8, 2)
  (64, 80)
  """
  if levels == 1:
    return height * width
  if height % 2 or width % 2:
    raise ConfigError(f"config.levels = 2 halves the {height}x{width} latent grid; use images"
                      " whose latent sides are even, or levels = 1")
  return height * width + (height // 2) * (width // 2)
