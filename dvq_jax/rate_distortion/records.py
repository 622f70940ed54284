"""The study's records: one dict per trained point, and the JSON/CSV files that hold them.

An rd.json record has the columns `RECORD_KEYS` of rd.csv and `config`: the point's quantizer
fields (quantizer, L, K, D, seed) and every other field of its config that differs from the
study's `config.base` (the study's own config.json holds `base`; the point's whole config is
`<workdir>/<config_path>`). `quantizer` of the record is the grid's family name (`dvq_learned`),
`config.quantizer` the quantizer it trains (`dvq`).
"""

import csv
import io
import json

import ml_collections
from etils import epath

from dvq_jax.errors import ConfigError
from dvq_jax.rate_distortion.grid import Point
from dvq_jax.rate_distortion.grid import bits_per_position
from dvq_jax.rate_distortion.grid import point_config

# The eval.json numbers of a point's record.
METRIC_KEYS = ("recon_bits_per_dim", "rate_bits_per_dim", "rate_unigram_bits_per_dim",
               "elbo_bits_per_dim", "elbo_unigram_bits_per_dim", "psnr")
POINT_KEYS = ("quantizer", "num_codebooks", "codebook_size", "seed")
RECORD_KEYS = (*POINT_KEYS, *METRIC_KEYS, "bits_per_position", "num_train_steps", "config_path")
# The keys a record's point config gives (`_derived`); rd.json files before them lack them.
DERIVED_KEYS = ("bits_per_position", "num_train_steps", "config_path", "config")
# A record's `config` has these fields even where they equal the base config's.
_ALWAYS = ("quantizer", "num_codebooks", "codebook_size", "codebook_dim", "seed")


def finished_eval(workdir: epath.Path, num_train_steps: int) -> dict | None:
  """`workdir/eval.json` when it is the evaluation at step `num_train_steps`, else None."""
  path = workdir / "eval.json"
  if not path.exists():
    return None
  result = json.loads(path.read_text())
  return result if result.get("step") == num_train_steps else None


def _derived(config: ml_collections.ConfigDict, point: Point,
             point_cfg: ml_collections.ConfigDict) -> dict:
  """The keys of a record that its point's config gives: rung, steps, config path, config."""
  # As in the point's config.json (tuples as lists), so rd.json reads back equal.
  base, fields = (json.loads(c.to_json_best_effort()) for c in (config.base, point_cfg))
  return {"bits_per_position": bits_per_position(point_cfg),
          "num_train_steps": point_cfg.num_train_steps,  # its eval.json's step
          "config_path": f"{point.name}/config.json",
          "config": {key: value for key, value in fields.items()
                     if key in _ALWAYS or key not in base or base[key] != value}}


def point_record(config: ml_collections.ConfigDict, point: Point,
                 point_cfg: ml_collections.ConfigDict, result: dict) -> dict:
  """The rd.json record of `point` (trained with `point_cfg`) from its final eval.json."""
  record = dict(zip(POINT_KEYS, point))
  record.update({key: float(result[key]) for key in METRIC_KEYS})
  record.update(_derived(config, point, point_cfg))
  return record


def complete_records(config: ml_collections.ConfigDict, records: list[dict]) -> list[dict]:
  """`records` with the keys of `_derived` that a record lacks filled in from `config`, the
  study's config (its config.json): an rd.json written before records carried their rung, steps
  and config reads as one written now. A rerun of the study rewrites such an rd.json whole."""
  out = []
  for record in records:
    point = Point(*(record[key] for key in POINT_KEYS))
    missing = [key for key in DERIVED_KEYS if key not in record]
    derived = _derived(config, point, point_config(config, point)) if missing else {}
    out.append({**record, **{key: derived[key] for key in missing}})
  return out


def earlier_records(config: ml_collections.ConfigDict, folder: str, grid: list[Point],
                    configs: list[ml_collections.ConfigDict]) -> dict[str, dict]:
  """The records of `folder/rd.json` (an earlier run's, `config.records_from`) of points in
  `grid`, by point name, checked before any compute.

  A record is taken for its point only if it was trained with the point's config: its steps
  and `config` (the fields that differ from the base config) must be the ones this study gives
  the point (`_derived`). Records of points not in `grid` are left out.

  Raises:
    ConfigError: `folder` has no rd.json, or a record of a point in `grid` was trained with
      another config.
  """
  path = epath.Path(folder) / "rd.json"
  if not path.exists():
    raise ConfigError(f"config.records_from = {folder!r} has no rd.json; give the folder of an"
                      " earlier run's rd.json, e.g. docs/images/rate_distortion_full")
  by_name = {point.name: (point, point_cfg) for point, point_cfg in zip(grid, configs)}
  out = {}
  for record in json.loads(path.read_text()):
    name = Point(*(record[key] for key in POINT_KEYS)).name
    if name not in by_name:
      continue
    expected = _derived(config, *by_name[name])
    for key in ("num_train_steps", "config"):
      if record.get(key) != expected[key]:
        raise ConfigError(
            f"config.records_from = {folder!r}: {name} was trained with {key} ="
            f" {record.get(key)!r}, this study's point has {expected[key]!r}; give the records"
            " of a run of the same study config, or leave config.records_from empty")
    out[name] = record
  return out


def read_study_config(workdir: str) -> ml_collections.ConfigDict:
  """The config a study in `workdir` ran with, from its config.json."""
  return ml_collections.ConfigDict(json.loads((epath.Path(workdir) / "config.json").read_text()))


def csv_table(records: list[dict], columns: tuple[str, ...]) -> str:
  """The records as CSV text with a header of `columns` (other keys left out)."""
  text = io.StringIO()
  writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n", extrasaction="ignore")
  writer.writeheader()
  writer.writerows(records)
  return text.getvalue()


def write_records(path: epath.Path, records: list[dict], columns: tuple[str, ...]) -> None:
  """`path` (.json: the records) and its .csv twin (`columns`; other keys stay in the JSON)."""
  path.write_text(json.dumps(records, indent=1))
  path.with_suffix(".csv").write_text(csv_table(records, columns))
