"""Code priors on chosen points of the study: the rate a learned prior pays, beside the uniform
and unigram rates.

  python -m dvq_jax.main --config=configs/rate_distortion.py:full --config.prior_bits='(16,72)' \
      --workdir=W

With `config.prior_bits` non-empty, once the grid is trained (or read back), each family's point
of seed `base.seed` on each listed rung (`grid.bits_per_position`) gets the code prior
`config.prior` (a `configs/prior.py` config; `--config.prior.<field>` overrides it) trained on
its codes in `W/priors/<point>/` with `dvq_jax.prior.train.train_and_evaluate`; a finished prior
is read back, an unfinished one resumes. `W/rd_priors.json` and `rd_priors.csv` hold a record a
prior (`PRIOR_KEYS`): the point, its reconstruction bits/dim, its rate and ELBO under the
uniform, unigram and learned prior, and the prior's steps and workdir. A family with two latent
grids (`levels` = 2) gets none (the tokenizer reads one grid): a line says it is skipped.

The priors split over processes as the grid does (`--config.num_shards=N
--config.shard_index=i`): a shard, once its own points are trained, trains the priors
`shard_names` gives it on the points finished by then (each shard gets its share of every
rung's sequence length) and writes no table; the final `num_shards = 1` run reads them back,
trains any still missing, and writes rd_priors.json/.csv.
"""

import collections
import json

import ml_collections
from etils import epath

from dvq_jax.errors import ConfigError
from dvq_jax.prior import train as prior_train
from dvq_jax.rate_distortion.grid import Point
from dvq_jax.rate_distortion.grid import bits_per_position
from dvq_jax.rate_distortion.grid import family_fields
from dvq_jax.rate_distortion.records import POINT_KEYS
from dvq_jax.rate_distortion.records import finished_eval
from dvq_jax.rate_distortion.records import write_records

PRIOR_KEYS = (*POINT_KEYS, "bits_per_position", "recon_bits_per_dim", "rate_bits_per_dim",
              "rate_unigram_bits_per_dim", "rate_prior_bits_per_dim", "elbo_bits_per_dim",
              "elbo_unigram_bits_per_dim", "elbo_prior_bits_per_dim", "num_train_steps",
              "prior_workdir")


def prior_bits(config: ml_collections.ConfigDict) -> tuple[float, ...]:
  """`config.prior_bits` as numbers; checks it and `config.prior` before any compute."""
  bits = config.get("prior_bits") or ()
  try:
    bits = tuple(float(b) for b in bits)
  except (TypeError, ValueError):
    raise ConfigError(f"config.prior_bits = {bits!r} must be a tuple of bits per position,"
                      " e.g. '(16,72)'") from None
  if bits:
    prior_train.check_model_config(config.prior)
  return bits


def chosen(config: ml_collections.ConfigDict, records: list[dict],
           quiet: bool = False) -> list[dict]:
  """The records whose point gets a prior: seed `base.seed`, a rung of `prior_bits`, one grid."""
  bits = prior_bits(config)
  out = []
  for record in records:
    if record["seed"] != config.base.seed or record["bits_per_position"] not in bits:
      continue
    levels = family_fields(config, record["quantizer"]).get("levels", config.base.get("levels", 1))
    if levels != 1:
      if not quiet:
        print(f"rate_distortion: no prior for {record['quantizer']}: the prior reads one latent"
              f" grid, its runs have levels = {levels}", flush=True)
      continue
    out.append(record)
  return out


def shard_names(config: ml_collections.ConfigDict, grid: list[Point],
                configs: list[ml_collections.ConfigDict], num_shards: int,
                shard_index: int) -> set[str]:
  """The points of `grid` whose prior shard `shard_index` of `num_shards` trains.

  Of the points `chosen` picks (finished or not, so every shard agrees), the j-th of each rung
  goes to shard j mod N: each shard gets its share of every rung's sequence length.
  """
  stubs = [{**dict(zip(POINT_KEYS, point)), "bits_per_position": bits_per_position(point_cfg)}
           for point, point_cfg in zip(grid, configs)]
  earlier = collections.Counter()  # chosen points seen so far on each rung
  names = set()
  for stub in chosen(config, stubs, quiet=True):
    if earlier[stub["bits_per_position"]] % num_shards == shard_index:
      names.add(Point(*(stub[key] for key in POINT_KEYS)).name)
    earlier[stub["bits_per_position"]] += 1
  return names


def earlier_priors(config: ml_collections.ConfigDict, folder: str) -> dict[str, dict]:
  """The records of `folder/rd_priors.json` (`config.records_from`; none if it has no such
  file) by point name, checked before any compute: each prior trained `prior.num_train_steps`.

  Raises:
    ConfigError: a record's prior trained another number of steps.
  """
  path = epath.Path(folder) / "rd_priors.json"
  if not path.exists():
    return {}
  out = {}
  for record in json.loads(path.read_text()):
    name = Point(*(record[key] for key in POINT_KEYS)).name
    if record["num_train_steps"] != config.prior.num_train_steps:
      raise ConfigError(
          f"config.records_from = {folder!r}: the prior of {name} trained"
          f" {record['num_train_steps']} steps, config.prior.num_train_steps is"
          f" {config.prior.num_train_steps}; set it to match, or leave config.records_from empty")
    out[name] = record
  return out


def run_priors(config: ml_collections.ConfigDict, root: epath.Path, records: list[dict],
               only: set[str] | None = None,
               earlier: dict[str, dict] | None = None) -> list[dict]:
  """Trains (or reads back) the priors of `chosen(config, records)`; writes rd_priors.json/.csv.

  Args:
    config: the study's config (`prior_bits`, `prior`, `base.seed`, `collect_only`).
    root: the study's workdir; the prior of point p goes to `root/priors/<p.name>`.
    records: the finished points' records (`rd.json`'s).
    only: a shard's point names (`shard_names`): only their priors are trained, and no table
      is written.
    earlier: `earlier_priors`: a prior recorded there is taken from it, not trained.

  Returns:
    One record a prior, keys `PRIOR_KEYS`, in the order of `records`; with `collect_only`,
    of the finished priors only.
  """
  out = []
  for record in chosen(config, records):
    name = Point(*(record[key] for key in POINT_KEYS)).name
    if only is not None and name not in only:
      continue
    prior_cfg = ml_collections.ConfigDict(config.prior.to_dict())
    prior_cfg.vqvae_workdir = str(root / name)
    sub = root / "priors" / name
    result = finished_eval(sub, prior_cfg.num_train_steps)
    if result is None and earlier and name in earlier:
      out.append(earlier[name])
      continue
    if result is None and config.get("collect_only", False):
      continue
    if result is None:
      print(f"rate_distortion: code prior on {name}", flush=True)
      result = prior_train.train_and_evaluate(prior_cfg, str(sub))
    out.append({
        **{key: record[key] for key in PRIOR_KEYS[:6]},
        "rate_bits_per_dim": record["rate_bits_per_dim"],
        "rate_unigram_bits_per_dim": record["rate_unigram_bits_per_dim"],
        "rate_prior_bits_per_dim": float(result["rate_prior_bits_per_dim"]),
        "elbo_bits_per_dim": record["elbo_bits_per_dim"],
        "elbo_unigram_bits_per_dim": record["elbo_unigram_bits_per_dim"],
        "elbo_prior_bits_per_dim": float(result["elbo_bits_per_dim"]),
        "num_train_steps": prior_cfg.num_train_steps,
        "prior_workdir": f"priors/{name}"})
  if out and only is None:
    write_records(root / "rd_priors.json", out, PRIOR_KEYS)
  return out
