"""Does the families' ordering at the study's length hold at a longer one?

  python -m dvq_jax.main --config=configs/rate_distortion.py:full,check \
      --config.compare_with=W --workdir=W_check

`:check` trains each family's point on the rungs `config.rungs` (16 and 72 bits a position) at 4x
the steps, one seed. With `config.compare_with` = W, the workdir of the study at the shorter length
(its rd.json and config.json), the run then writes `steps_check.json` and `steps_check.csv`: for
each rung and family the metric (test recon bits/dim) at both lengths, the shorter one's mean over
its seeds, and the family's rank at each; and for each rung the Spearman rank correlation of the two
orderings, the fraction of family pairs that keep their order, and the test that decides whether
the study's answers hold: of the pairs where one family is ahead of the other at the shorter
length (`claims.ahead`: the seeds' mean +- std intervals do not overlap), how many the longer runs
put the same way round (`ahead_pairs`, `ahead_pairs_kept`). Pairs that are level at the shorter
length may swap without changing an answer.
"""

import collections
import itertools
import json

import numpy as np
from etils import epath
from scipy import stats

from dvq_jax.errors import ConfigError
from dvq_jax.rate_distortion.claims import ahead
from dvq_jax.rate_distortion.records import POINT_KEYS
from dvq_jax.rate_distortion.records import complete_records
from dvq_jax.rate_distortion.records import csv_table
from dvq_jax.rate_distortion.records import read_study_config

ROW_KEYS = ("bits_per_position", "quantizer", "num_codebooks", "codebook_size", "short_steps",
            "long_steps", "short_seeds", "short", "short_std", "long", "short_rank",
            "long_rank")


def _by_point(records: list[dict]) -> dict[tuple, list[dict]]:
  groups = collections.defaultdict(list)
  for record in records:
    groups[tuple(record[key] for key in POINT_KEYS[:3])].append(record)
  return groups


def pairwise_agreement(short: np.ndarray, long: np.ndarray) -> float:
  """The fraction of pairs (i, j) that the two orderings put the same way round (ties only
  agree with ties).

  >>> pairwise_agreement(np.array([1.0, 2.0, 3.0]), np.array([1.0, 3.0, 2.0]))
  0.6666666666666666
  """
  pairs = list(itertools.combinations(range(len(short)), 2))
  same = [np.sign(short[i] - short[j]) == np.sign(long[i] - long[j]) for i, j in pairs]
  return float(np.mean(same)) if pairs else float("nan")


def ahead_pairs_kept(rows: list[dict]) -> tuple[int, int]:
  """(the pairs of `rows` where one is ahead at the shorter length, by `claims.ahead` on
  `short` +- `short_std`; how many of them have the same one lower at the longer length).

  >>> ahead_pairs_kept([{"short": 5.0, "short_std": 0.1, "long": 4.0},
  ...                   {"short": 5.1, "short_std": 0.1, "long": 3.9},
  ...                   {"short": 6.0, "short_std": 0.1, "long": 3.8}])
  (2, 0)
  """
  decided = kept = 0
  for a, b in itertools.permutations(rows, 2):
    if ahead({"mean": a["short"], "std": a["short_std"]},
             {"mean": b["short"], "std": b["short_std"]}):
      decided += 1
      kept += int(a["long"] < b["long"])
  return decided, kept


def compare_orderings(short: list[dict], long: list[dict],
                      metric: str = "recon_bits_per_dim") -> tuple[list[dict], list[dict]]:
  """The families' order by `metric` (lower is better) on each rung, at two training lengths.

  Args:
    short: rd.json records of the study (any number of seeds a point).
    long: rd.json records of the longer runs; a point is compared when both have it.

  Returns:
    `(rows, rungs)`: a row (`ROW_KEYS`) per compared point, by rung and then the long run's
    rank (`short_std`: the seeds' standard deviation, ddof 1, 0 for one seed, as
    `claims.rung`); a dict per rung with `bits_per_position`, `num_families`, `spearman` (NaN
    below 2 families), `pairwise_agreement`, `ahead_pairs` and `ahead_pairs_kept`
    (`ahead_pairs_kept`).
  """
  short_points, long_points = _by_point(short), _by_point(long)
  by_rung = collections.defaultdict(list)
  for key in short_points.keys() & long_points.keys():
    s, l = short_points[key], long_points[key]
    by_rung[s[0]["bits_per_position"]].append({
        "bits_per_position": s[0]["bits_per_position"], **dict(zip(POINT_KEYS[:3], key)),
        "short_steps": s[0]["num_train_steps"], "long_steps": l[0]["num_train_steps"],
        "short_seeds": len(s), "short": float(np.mean([r[metric] for r in s])),
        "short_std": float(np.std([r[metric] for r in s], ddof=1)) if len(s) > 1 else 0.0,
        "long": float(np.mean([r[metric] for r in l]))})
  rows, rungs = [], []
  for bits in sorted(by_rung):
    group = by_rung[bits]
    short_values = np.array([r["short"] for r in group])
    long_values = np.array([r["long"] for r in group])
    for row, a, b in zip(group, stats.rankdata(short_values), stats.rankdata(long_values)):
      row.update(short_rank=float(a), long_rank=float(b))
    rows += sorted(group, key=lambda r: (r["long_rank"], r["quantizer"]))
    spearman = (float(stats.spearmanr(short_values, long_values).statistic)
                if len(group) > 1 else float("nan"))
    decided, kept = ahead_pairs_kept(group)
    rungs.append({"bits_per_position": bits, "num_families": len(group), "spearman": spearman,
                  "pairwise_agreement": pairwise_agreement(short_values, long_values),
                  "ahead_pairs": decided, "ahead_pairs_kept": kept})
  return rows, rungs


def short_records(compare_with: str) -> list[dict]:
  """The rd.json records of the study at `config.compare_with`, checked before any compute;
  records of an older rd.json get their rung and steps from its config.json
  (`records.complete_records`)."""
  root = epath.Path(compare_with)
  if not (root / "rd.json").exists() or not (root / "config.json").exists():
    raise ConfigError(f"config.compare_with = {compare_with!r} has no rd.json and config.json;"
                      " give the workdir of the finished study to compare with")
  return complete_records(read_study_config(compare_with),
                          json.loads((root / "rd.json").read_text()))


def write_comparison(root: epath.Path, short: list[dict], long: list[dict]) -> list[dict]:
  """Writes `root/steps_check.json` ({"metric", "rows", "rungs"}) and `steps_check.csv` (rows);
  returns the rungs."""
  rows, rungs = compare_orderings(short, long)
  (root / "steps_check.csv").write_text(csv_table(rows, ROW_KEYS))
  (root / "steps_check.json").write_text(json.dumps(
      {"metric": "recon_bits_per_dim", "rows": rows, "rungs": rungs}, indent=1))
  for rung in rungs:
    print(f"steps check, {rung['bits_per_position']:g} bits a position:"
          f" {rung['num_families']} families, Spearman {rung['spearman']:.3f}, pairs in the same"
          f" order {rung['pairwise_agreement']:.3f}, pairs ahead at the shorter length kept"
          f" {rung['ahead_pairs_kept']} of {rung['ahead_pairs']}", flush=True)
  return rungs
