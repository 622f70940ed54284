"""Runs the grid of the rate-distortion study and writes rd.json, rd.csv and rd.png.

  python -m dvq_jax.main --config=configs/rate_distortion.py --workdir=W

Point p trains in `W/<p.name>/` (`Point.name`); a point whose `eval.json` is for the base
config's final step is read back instead of trained, so an interrupted study resumes where it
stopped (an unfinished point resumes from its own checkpoint).

Several processes (or machines sharing W) can split the grid: `--config.num_shards=N
--config.shard_index=i` trains only the points whose index is i mod N and writes no tables; a
final run with `num_shards = 1` then reads every finished point back and writes the tables.
`--config.collect_only=True` trains nothing: it writes the tables and the plot of the points
finished so far (e.g. while the study runs, or for a study cut short).

`--config.records_from=F` continues an earlier run whose workdir is gone from its written
tables: a point recorded in `F/rd.json` with this study's config for it, and a prior recorded in
`F/rd_priors.json`, are taken from there rather than trained (a point whose prior is asked and
not recorded in F still trains, as the prior reads its checkpoint). The tables written then hold
both, so a grid too long for one machine's session grows from its committed tables, e.g.
`--config.records_from=docs/images/rate_distortion_long`.

Then the code priors of `config.prior_bits` (`priors`, rd_priors.json; a shard trains its share
of them on the points finished by then, and the `num_shards = 1` run the rest) and, on the full
grid only (`num_shards` = 1), with `config.compare_with`, the comparison of the families' order
with the study in that workdir (`steps_check`, steps_check.json).
"""

import jax
import ml_collections
from etils import epath

from dvq_jax.errors import ConfigError
from dvq_jax.rate_distortion import plots
from dvq_jax.rate_distortion import priors
from dvq_jax.rate_distortion import steps_check
from dvq_jax.rate_distortion.grid import point_config
from dvq_jax.rate_distortion.grid import points
from dvq_jax.rate_distortion.records import RECORD_KEYS
from dvq_jax.rate_distortion.records import earlier_records
from dvq_jax.rate_distortion.records import finished_eval
from dvq_jax.rate_distortion.records import point_record
from dvq_jax.rate_distortion.records import write_records
from dvq_jax.training import validation as training_validation
from dvq_jax.vqvae import train
from dvq_jax.vqvae import validation

def run(config: ml_collections.ConfigDict, workdir: str) -> list[dict]:
  """Trains (or reads back) every point of the grid; returns the records of rd.json.

  Args:
    config: a `configs/rate_distortion.py` ConfigDict: `base` (a learned-prior config),
      `quantizers`, `grid` (per quantizer a tuple of (L, K)), `latent_width`, `seeds`,
      `rungs`, `num_shards`, `shard_index`, `collect_only`, `records_from`, `prior_bits`,
      `prior`, `compare_with`.
    workdir: the study's directory; point p goes to `workdir/p.name`.

  Returns:
    One dict per point (of this shard; with `collect_only`, per finished point) with the keys
    `RECORD_KEYS` and `config` (`records`), in the order of `grid.points`.
  """
  # Every point's config, the priors' and the comparison's are checked before anything trains.
  grid = points(config)
  configs = [point_config(config, p) for p in grid]
  for c in configs:
    validation.check_config(c)
  priors.prior_bits(config)
  compare_with = config.get("compare_with")
  if compare_with:
    steps_check.short_records(compare_with)
  records_from = config.get("records_from") or ""
  earlier = earlier_records(config, records_from, grid, configs) if records_from else {}
  earlier_priors = priors.earlier_priors(config, records_from) if records_from else {}
  collect_only = config.get("collect_only", False)
  if priors.prior_bits(config) and not collect_only:
    # A prior to train reads its point's checkpoint: that point trains here.
    for name in priors.shard_names(config, grid, configs, 1, 0) - set(earlier_priors):
      earlier.pop(name, None)
  training_validation.check_workdir(workdir, config)
  root = epath.Path(workdir)
  root.mkdir(parents=True, exist_ok=True)
  if jax.process_index() == 0:
    (root / "config.json").write_text(config.to_json_best_effort(indent=2))
  num_shards, shard = config.get("num_shards", 1), config.get("shard_index", 0)
  if not isinstance(num_shards, int) or num_shards < 1 or not 0 <= shard < num_shards:
    raise ConfigError(f"config.shard_index = {shard!r} must be in [0, config.num_shards ="
                      f" {num_shards!r}); num_shards an integer >= 1")
  records = []
  for i, (point, point_cfg) in enumerate(zip(grid, configs)):
    if i % num_shards != shard:
      continue
    sub = root / point.name
    result = finished_eval(sub, point_cfg.num_train_steps)
    if result is None and point.name in earlier:
      records.append(earlier[point.name])
    elif result is None and collect_only:
      continue
    else:
      if result is None:
        print(f"rate_distortion: point {i + 1}/{len(grid)} {point.name}", flush=True)
        result = train.train_and_evaluate(point_cfg, str(sub))
      records.append(point_record(config, point, point_cfg, result))
    if jax.process_index() == 0 and num_shards == 1:
      write_records(root / "rd.json", records, RECORD_KEYS)  # partial, while the study runs
  if jax.process_index() != 0:
    return records
  if num_shards != 1:
    if priors.prior_bits(config) and not collect_only:
      finished = [point_record(config, point, point_cfg, result)
                  for point, point_cfg in zip(grid, configs)
                  if (result := finished_eval(root / point.name, point_cfg.num_train_steps))]
      priors.run_priors(config, root, finished,
                        priors.shard_names(config, grid, configs, num_shards, shard),
                        earlier_priors)
    return records
  if not records:
    return records
  prior_records = priors.run_priors(config, root, records, earlier=earlier_priors)
  plots.write_rd_plot(root / "rd.png", records, prior_records)
  if compare_with:  # read now: that study may have gone on while these runs trained
    steps_check.write_comparison(root, steps_check.short_records(compare_with), records)
  return records
