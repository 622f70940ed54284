"""The grid of the rate-distortion study: which (quantizer, L, K, seed) points, and the config
each one trains with.

Every point is the base config with only `quantizer`, `num_codebooks` (L), `codebook_size` (K),
`codebook_dim` and `seed` changed. `codebook_dim` = latent_width / L and `equal_width` = True,
so every quantizer's encoder emits the same `latent_width` channels (dvq: L slices of D =
latent_width / L; vq and svq: one latent_width-wide vector per position; mvq: L codebooks over
the whole latent_width-wide vector).

A grid entry is a family: a quantizer name, or a name in `config.families` whose fields
(`quantizer` and any learned-prior fields, e.g. `num_stages`, `slice_projection`, `levels`)
are set on the base config too. For the two quantizers whose code alphabet is not a free K,
the point's K picks it: fsq uses `FSQ_LEVELS[K]` (D = len(levels), prod(levels) ~ K codes a
slice), lfq and bsq use D = log2(K) bits a slice; their encoders then emit L*D channels, not
latent_width.
"""

import math

from typing import NamedTuple

import ml_collections

from dvq_jax.errors import ConfigError
from dvq_jax.vqvae.bottleneck import codes_per_position


# fsq grids for a target alphabet K: 2^8..2^16 as recommended by Mentzer et al. 2023 (Table 1),
# 4, 8 and 16 as the single or square grids with exactly K codes.
FSQ_LEVELS = {4: (4,), 8: (8,), 16: (4, 4), 256: (8, 6, 5), 512: (8, 8, 8), 1024: (8, 5, 5, 5),
              4096: (7, 5, 5, 5, 5), 16384: (8, 8, 8, 6, 5), 65536: (8, 8, 8, 5, 5, 5)}


class Point(NamedTuple):
  """One training run of the study; `quantizer` is the grid's family name."""

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
  kind = family_fields(config, quantizer)["quantizer"]
  for num, size in pairs:
    if num < 1 or size < 2 or config.latent_width % num:
      raise ConfigError(
          f"config.grid.{quantizer} has (L, K) = ({num}, {size}); need L >= 1 dividing"
          f" config.latent_width = {config.latent_width} and K >= 2")
    if kind == "fsq" and size not in FSQ_LEVELS:
      raise ConfigError(f"config.grid.{quantizer} has fsq K = {size}; use one of"
                        f" {', '.join(map(str, FSQ_LEVELS))} (grid.FSQ_LEVELS)")
    if kind in ("lfq", "bsq") and (size & (size - 1) or size > 2**16):
      raise ConfigError(f"config.grid.{quantizer} has {kind} K = {size}; use a power of two up to"
                        " 65536 (K = 2^D codes for D bits a slice)")
  return pairs


def family_fields(config: ml_collections.ConfigDict, family: str) -> dict:
  """The learned-prior fields a grid family sets: `config.families[family]`, or just its name as
  `quantizer`.

  >>> import ml_collections
  >>> config = ml_collections.ConfigDict({"families": {"dvq_2level": {"quantizer": "dvq",
  ...                                                                  "levels": 2}}})
  >>> family_fields(config, "dvq_2level"), family_fields(config, "vq")
  ({'quantizer': 'dvq', 'levels': 2}, {'quantizer': 'vq'})
  """
  families = config.get("families") or {}
  fields = dict(families[family].items()) if family in families else {}
  return {"quantizer": fields.pop("quantizer", family), **fields}


def points(config: ml_collections.ConfigDict) -> list[Point]:
  """Every point of the study, in training order: seed, then quantizer, then (L, K) as listed.

  Seeds are `base.seed`, `base.seed + 1`, ..., `config.seeds` of them. Seed-major order means a
  study stopped early has the whole grid for its first seeds. A non-empty `config.rungs` keeps
  only the (L, K) whose `bits_per_position` it lists.
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
  rungs = tuple(config.get("rungs") or ())
  if rungs:
    pairs = {q: [(num, size) for num, size in pairs[q]
                 if bits_per_position(point_config(config, Point(q, num, size, 0))) in rungs]
             for q in pairs}
    if not any(pairs.values()):
      raise ConfigError(f"config.rungs = {rungs!r} matches no (L, K) of config.grid; give bits"
                        " per position the grid has, e.g. '(16,72)'")
  return [Point(q, num, size, seed)
          for seed in seeds for q in config.quantizers for num, size in pairs[q]]


def point_config(config: ml_collections.ConfigDict, point: Point) -> ml_collections.ConfigDict:
  """The learned-prior config of one point: `config.base` with the point's fields set."""
  base = ml_collections.ConfigDict(config.base.to_dict())
  base.update(family_fields(config, point.quantizer))
  base.num_codebooks = point.num_codebooks
  base.codebook_size = point.codebook_size
  base.codebook_dim = config.latent_width // point.num_codebooks
  if base.quantizer == "fsq":
    base.fsq_levels = FSQ_LEVELS[point.codebook_size]
  elif base.quantizer in ("lfq", "bsq"):
    base.codebook_dim = int(math.log2(point.codebook_size))
  base.equal_width = True
  base.seed = point.seed
  return base


def bits_per_position(point_cfg: ml_collections.ConfigDict) -> float:
  """The point's rung on the study's ladder: uniform-code bits a position of the bottom grid,
  codes a position x log2 K with K the grid's nominal codebook size.

  It is the family-independent name of a rate: fsq's K = 256 grid has 240 codes but sits on the
  16-bit rung at L = 2, and a 2-level model sits on its bottom level's rung (its top level adds
  a quarter). The measured rate is the record's `rate_bits_per_dim`.

  >>> import ml_collections
  >>> bits_per_position(ml_collections.ConfigDict(
  ...     {"quantizer": "rvq", "num_codebooks": 4, "codebook_size": 16, "num_stages": 2}))
  32.0
  """
  per_position = codes_per_position(point_cfg.quantizer, point_cfg.num_codebooks,
                                    point_cfg.get("num_stages", 1))
  return per_position * math.log2(point_cfg.codebook_size)
