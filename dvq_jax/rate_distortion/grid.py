"""The grid of the rate-distortion study: which (quantizer, L, K, seed) points, and the config
each one trains with.

Every point is the base config with only `quantizer`, `num_codebooks` (L), `codebook_size` (K),
`codebook_dim` and `seed` changed. `codebook_dim` = latent_width / L and `equal_width` = True,
so every quantizer's encoder emits the same `latent_width` channels (dvq: L slices of D =
latent_width / L; vq and svq: one latent_width-wide vector per position; mvq: L codebooks over
the whole latent_width-wide vector).
"""

from typing import NamedTuple

import ml_collections

from dvq_jax.errors import ConfigError


class Point(NamedTuple):
  """One training run of the study."""

  quantizer: str
  num_codebooks: int  # L
  codebook_size: int  # K
  seed: int

  @property
  def name(self) -> str:
    """Its sub-workdir, e.g. `dvq_L4_K16_seed1`."""
    return f"{self.quantizer}_L{self.num_codebooks}_K{self.codebook_size}_seed{self.seed}"


def _pairs(config: ml_collections.ConfigDict, quantizer: str) -> list[tuple[int, int]]:
  pairs = config.grid[quantizer]
  try:
    pairs = [(int(num), int(size)) for num, size in pairs]
  except (TypeError, ValueError):
    raise ConfigError(f"config.grid.{quantizer} = {pairs!r} must be a tuple of (L, K) pairs,"
                      " e.g. '((2,16),(4,16))'") from None
  if not pairs:
    raise ConfigError(f"config.grid.{quantizer} is empty; give at least one (L, K) pair")
  for num, size in pairs:
    if num < 1 or size < 2 or config.latent_width % num:
      raise ConfigError(
          f"config.grid.{quantizer} has (L, K) = ({num}, {size}); need L >= 1 dividing"
          f" config.latent_width = {config.latent_width} and K >= 2")
  return pairs


def points(config: ml_collections.ConfigDict) -> list[Point]:
  """Every point of the study, in training order: seed, then quantizer, then (L, K) as listed.

  Seeds are `base.seed`, `base.seed + 1`, ..., `config.seeds` of them. Seed-major order means a
  study stopped early has the whole grid for its first seeds.
  """
  if not isinstance(config.seeds, int) or config.seeds < 1:
    raise ConfigError(f"config.seeds = {config.seeds!r} must be an integer >= 1")
  if not isinstance(config.latent_width, int) or config.latent_width < 1:
    raise ConfigError(f"config.latent_width = {config.latent_width!r} must be an integer >= 1")
  unknown = [q for q in config.quantizers if q not in config.grid]
  if unknown or not config.quantizers:
    raise ConfigError(f"config.quantizers = {tuple(config.quantizers)!r}: each needs an entry"
                      f" in config.grid (it has {', '.join(config.grid)})")
  seeds = range(config.base.seed, config.base.seed + config.seeds)
  pairs = {q: _pairs(config, q) for q in config.quantizers}
  return [Point(q, num, size, seed)
          for seed in seeds for q in config.quantizers for num, size in pairs[q]]


def point_config(config: ml_collections.ConfigDict, point: Point) -> ml_collections.ConfigDict:
  """The learned-prior config of one point: `config.base` with the point's fields set."""
  base = ml_collections.ConfigDict(config.base.to_dict())
  base.quantizer = point.quantizer
  base.num_codebooks = point.num_codebooks
  base.codebook_size = point.codebook_size
  base.codebook_dim = config.latent_width // point.num_codebooks
  base.equal_width = True
  base.seed = point.seed
  return base
