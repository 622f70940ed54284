"""Rate-distortion study: a grid of VQ-VAEs over quantizer, L and K on one base config.

`run(config, workdir)` trains every point of the grid (`grid.points`) in its own sub-workdir
with `dvq_jax.vqvae.train.train_and_evaluate`, skips points that already finished (so a rerun
resumes), and writes `rd.json`, `rd.csv` (`records`) and `rd.png` (`plots.write_rd_plot`).
Then, when asked: code priors on chosen points (`priors`, rd_priors.json) and the families' order
against a shorter study (`steps_check`, steps_check.json). `claims` reads the answers off the
records: the winner of each rung, where DVQ is ahead or behind, the paper's claims.
"""

from dvq_jax.rate_distortion.grid import Point
from dvq_jax.rate_distortion.grid import point_config
from dvq_jax.rate_distortion.grid import points
from dvq_jax.rate_distortion.hull import lower_convex_hull
from dvq_jax.rate_distortion.priors import PRIOR_KEYS
from dvq_jax.rate_distortion.records import RECORD_KEYS
from dvq_jax.rate_distortion.records import complete_records
from dvq_jax.rate_distortion.study import run

__all__ = ["PRIOR_KEYS", "Point", "RECORD_KEYS", "complete_records", "lower_convex_hull",
           "point_config", "points", "run"]
