"""Rate-distortion study: a grid of VQ-VAEs over quantizer, L and K on one base config.

`run(config, workdir)` trains every point of the grid (`grid.points`) in its own sub-workdir
with `dvq_jax.vqvae.train.train_and_evaluate`, skips points that already finished (so a rerun
resumes), and writes `rd.json`, `rd.csv` and `rd.png` (`plots.write_rd_plot`).
"""

from dvq_jax.rate_distortion.grid import Point
from dvq_jax.rate_distortion.grid import point_config
from dvq_jax.rate_distortion.grid import points
from dvq_jax.rate_distortion.hull import lower_convex_hull
from dvq_jax.rate_distortion.study import RECORD_KEYS
from dvq_jax.rate_distortion.study import run

__all__ = ["Point", "RECORD_KEYS", "lower_convex_hull", "point_config", "points", "run"]
