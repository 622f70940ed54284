"""Checks a static-prior config and turns it into the settings to run, before any compute.

A `Job` is one jitted, vmapped program: the settings of one study that share N_G, D and L, all
repetitions each. A setting yields one record per model it stands for (the trained VQ of Fig. 3
also yields the untrained "random" baseline from the same initial codebooks).
"""

import ast
from typing import NamedTuple

from dvq_jax.errors import ConfigError
from dvq_jax.quantizers import INIT_SCHEMES
from dvq_jax.static_prior.study import Group
from dvq_jax.static_prior.study import Recipe

STUDIES = ("all", "fig3", "fig4")
MODELS = ("vq", "dvq", "vq_k+", "random")
# Stream ids for the PRNG keys: data and init keys depend only on these and the setting.
_DATA_STREAM, _INIT_STREAM = 0, 1
_STUDY_IDS = {"fig3": 3, "fig4": 4, "picture": 13}
_MODEL_IDS = {name: i for i, name in enumerate(MODELS)}


class Setting(NamedTuple):
  """One K within a job; `models` are the records it yields, e.g. ("vq", "random")."""

  models: tuple[str, ...]
  codebook_size: int
  init_ids: tuple[int, ...]


class Job(NamedTuple):
  """Settings sharing N_G, D and L (`group`) and the blobs (`data_ids`); they differ in K."""

  study: str
  group: Group
  data_ids: tuple[int, ...]
  settings: tuple[Setting, ...]


class Plan(NamedTuple):
  study: str
  jobs: tuple[Job, ...]
  picture: Job
  recipe: Recipe
  repeats: int
  seed: int


def int_tuple(value, field: str) -> tuple[int, ...]:
  """A tuple field as ints; accepts a tuple, an int, or a command-line string like '(10,20)'.

  >>> int_tuple("(10, 20)", "dims"), int_tuple(16, "dims"), int_tuple("8,4", "dims")
  ((10, 20), (16,), (8, 4))
  """
  parsed = value
  if isinstance(parsed, (tuple, list)) and len(parsed) == 1 and isinstance(parsed[0], str):
    parsed = parsed[0]  # what absl makes of --config.dims='(2,x)'
  if isinstance(parsed, str):
    try:
      parsed = ast.literal_eval(parsed.strip() or "()")
    except (ValueError, SyntaxError):
      parsed = None
  if isinstance(parsed, int) and not isinstance(parsed, bool):
    parsed = (parsed,)
  if (not isinstance(parsed, (tuple, list)) or not parsed
      or not all(isinstance(v, int) and not isinstance(v, bool) for v in parsed)):
    raise ConfigError(f"config.{field} = {value!r} is not a non-empty tuple of integers;"
                      f" write e.g. --config.{field}='(10,20)'")
  return tuple(parsed)


def _at_least(value, field: str, low: int = 1) -> int:
  if isinstance(value, bool) or not isinstance(value, int) or value < low:
    raise ConfigError(f"config.{field} = {value!r} must be an integer >= {low}")
  return value


def _all_at_least(values: tuple[int, ...], field: str, what: str) -> tuple[int, ...]:
  bad = [v for v in values if v < 1]
  if bad:
    raise ConfigError(f"config.{field} has {what} {bad[0]} < 1; every {what} must be >= 1")
  return values


def _divisible(dim: int, num_codebooks: int, dim_field: str) -> None:
  if dim % num_codebooks:
    raise ConfigError(f"config.{dim_field} = {dim} (D) is not divisible by config.num_codebooks ="
                      f" {num_codebooks} (L); each DVQ codebook covers D/L features")


def _recipe(config) -> Recipe:
  if config.init not in INIT_SCHEMES:
    raise ConfigError(f"config.init = {config.init!r} is unknown; use one of {INIT_SCHEMES}")
  for field in ("learning_rate", "init_std"):
    if not float(config[field]) > 0:
      raise ConfigError(f"config.{field} = {config[field]!r} must be > 0")
  if float(config.init_std) > 1e6:
    raise ConfigError(f"config.init_std = {config.init_std!r} must be <= 1e6 (codebooks padded"
                      " to the largest K must stay far from every real code)")
  if not float(config.sigma) >= 0:
    raise ConfigError(f"config.sigma = {config.sigma!r} must be >= 0")
  return Recipe(steps=_at_least(config.steps, "steps"),
                learning_rate=float(config.learning_rate),
                points_per_centre=_at_least(config.points_per_centre, "points_per_centre"),
                test_points_per_centre=_at_least(config.test_points_per_centre,
                                                 "test_points_per_centre"),
                sigma=float(config.sigma), init=config.init, init_std=float(config.init_std))


def _job(study: str, num_factors: int, dim: int, num_codebooks: int,
         models_and_sizes: list[tuple[tuple[str, ...], int]]) -> Job:
  """Seeds depend only on the study and the setting, never on what else runs."""
  settings = tuple(
      Setting(models, size, (_INIT_STREAM, _STUDY_IDS[study], _MODEL_IDS[models[0]], num_factors,
                             dim, num_codebooks, size))
      for models, size in models_and_sizes)
  group = Group(num_factors, dim, num_codebooks, tuple(s.codebook_size for s in settings))
  return Job(study, group, (_DATA_STREAM, _STUDY_IDS[study], num_factors, dim), settings)


def _fig3_jobs(config) -> list[Job]:
  dims = _all_at_least(int_tuple(config.dims, "dims"), "dims", "D")
  sizes = _all_at_least(int_tuple(config.codebook_sizes, "codebook_sizes"), "codebook_sizes", "K")
  num_factors = _at_least(config.fig3_num_factors, "fig3_num_factors")
  return [_job("fig3", num_factors, d, 1, [(("vq", "random"), k) for k in sizes]) for d in dims]


def _fig4_jobs(config) -> list[Job]:
  num_factors = _all_at_least(int_tuple(config.num_factors, "num_factors"), "num_factors", "N_G")
  dim = _at_least(config.fig4_dim, "fig4_dim")
  num_codebooks = _at_least(config.num_codebooks, "num_codebooks")
  _divisible(dim, num_codebooks, "fig4_dim")
  dvq = [(("dvq",), _at_least(config.dvq_codebook_size, "dvq_codebook_size"))]
  vq = [(("vq",), _at_least(config.vq_codebook_size, "vq_codebook_size")),
        (("vq_k+",), _at_least(config.vq_kplus_codebook_size, "vq_kplus_codebook_size"))]
  jobs = []
  for n in num_factors:
    jobs += [_job("fig4", n, dim, num_codebooks, dvq), _job("fig4", n, dim, 1, vq)]
  return jobs


def make_plan(config) -> Plan:
  """Validates every field the chosen study uses; raises ConfigError with a one-line message."""
  if config.get("study") not in STUDIES:
    raise ConfigError(f"config.study = {config.get('study')!r} is unknown; use one of {STUDIES}")
  recipe = _recipe(config)
  repeats = _at_least(config.repeats, "repeats")
  seed = _at_least(config.seed, "seed", low=0)
  jobs = []
  if config.study in ("all", "fig3"):
    jobs += _fig3_jobs(config)
  if config.study in ("all", "fig4"):
    jobs += _fig4_jobs(config)
  picture = _job("picture", _at_least(config.picture_num_factors, "picture_num_factors"), 2, 2,
                 [(("dvq",), _at_least(config.picture_codebook_size, "picture_codebook_size"))])
  return Plan(config.study, tuple(jobs), picture, recipe, repeats, seed)
