r"""The codebook-toolbox study on the offline demo data: quantizer families at ~16 bits/position.

Trains each row's VQ-VAE (`configs/demo.py`, narrowed: hidden 32, residual 16, batch 16, 1,500
steps) for each seed, one run at a time, reads its `eval.json` (plus, for the stateful rows, the
codes restarted over training from `metrics.jsonl`), saves every run's numbers to `--out` (JSON,
merged with what is there, so an interrupted study resumes) and prints the table of the studies
page (mean +- std over the seeds that finished). The `dvq_*` rows of EMA codebooks, k-means init
and dead-code restart are the `dvq` row with the trainer's stateful codebook learning on:

  JAX_COMPILATION_CACHE_DIR=/tmp/xla_cache JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0 \
    nice -n 10 python benchmarks/toolbox_study.py --seeds=0,1,2 \
    --out=docs/images/toolbox/toolfam.json
  python benchmarks/toolbox_study.py --table --out=docs/images/toolbox/toolfam.json  # table only
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile

import numpy as np

BASE = ("--config.model.hidden_channels=32", "--config.model.residual_channels=16",
        "--config.batch_size=16", "--config.num_train_steps=1500",
        "--config.eval_every_steps=1500", "--config.checkpoint_every_steps=1500",
        "--config.num_recon_images=0", "--config.equal_width=True")
DVQ = ("--config.quantizer=dvq", "--config.num_codebooks=4", "--config.codebook_size=16",
       "--config.codebook_dim=4")
# Every row stores 16 bits per latent position (FSQ: log2(64000) = 15.97).
ROWS = {
    "dvq": DVQ,
    "dvq_rotation": DVQ + ("--config.gradient_estimator=rotation",),
    "dvq_cosine": DVQ + ("--config.cosine=True",),
    "rvq": ("--config.quantizer=rvq", "--config.num_codebooks=1", "--config.num_stages=4",
            "--config.codebook_size=16", "--config.codebook_dim=16"),
    "fsq": ("--config.quantizer=fsq", "--config.num_codebooks=1",
            "--config.fsq_levels=(8,8,8,5,5,5)"),
    "lfq": ("--config.quantizer=lfq", "--config.num_codebooks=4", "--config.codebook_dim=4"),
    "bsq": ("--config.quantizer=bsq", "--config.num_codebooks=4", "--config.codebook_dim=4"),
    "dvq_simvq": DVQ + ("--config.codebook_parameterization=simvq",),
    # A residual family with M >= 2 stages of >= 1 bit a dimension stores >= 2 bits a latent
    # channel: 16 bits fit 8 channels (rlfq: 1 bit a dimension a stage) or 4 (rfsq: 4 levels,
    # 2 bits, a dimension a stage).
    "rfsq": ("--config.quantizer=rfsq", "--config.num_codebooks=1", "--config.num_stages=2",
             "--config.fsq_levels=(4,4,4,4)"),
    "rlfq": ("--config.quantizer=rlfq", "--config.num_codebooks=2", "--config.num_stages=2",
             "--config.codebook_dim=4"),
    "dvq_ema": DVQ + ("--config.codebook_update=ema",),
    "dvq_kmeans": DVQ + ("--config.kmeans_init=True",),
    "dvq_restart": DVQ + ("--config.dead_code_threshold=1.0",),
    "dvq_ema_kmeans_restart": DVQ + ("--config.codebook_update=ema", "--config.kmeans_init=True",
                                     "--config.dead_code_threshold=1.0"),
}
COLUMNS = ("recon_bits_per_dim", "rate_bits_per_dim", "rate_unigram_bits_per_dim",
           "elbo_bits_per_dim", "elbo_unigram_bits_per_dim", "usage", "perplexity")
# The stateful rows' table adds the codes restarted over training (0 without dead-code restart).
STATEFUL_COLUMNS = (*COLUMNS, "codes_restarted_total")


def run_one(row: str, seed: int) -> dict:
  with tempfile.TemporaryDirectory() as workdir:
    subprocess.run([sys.executable, "-m", "dvq_jax.main", "--config=configs/demo.py",
                    f"--workdir={workdir}", f"--config.seed={seed}", *BASE, *ROWS[row]],
                   check=True, stdout=subprocess.DEVNULL)
    result = json.loads((pathlib.Path(workdir) / "eval.json").read_text())
    records = [json.loads(line) for line in
               (pathlib.Path(workdir) / "metrics.jsonl").read_text().splitlines()]
  # train/codes_restarted is the mean per step over each logging window: times the window's steps.
  restarted, previous_step = 0.0, 0
  for record in records:
    if "train/codes_restarted" in record:
      restarted += record["train/codes_restarted"] * (record["step"] - previous_step)
      previous_step = record["step"]
  return {"row": row, "seed": seed, **result, "codes_restarted_total": restarted}


def table(runs: list[dict], rows: tuple[str, ...] = tuple(ROWS),
          columns: tuple[str, ...] = COLUMNS) -> str:
  """Markdown table of `rows`: mean ± sample std (ddof 1) over the seeds each has finished."""
  lines = ["| row | seeds | " + " | ".join(columns) + " |",
           "|---" * (len(columns) + 2) + "|"]
  for row in rows:
    done = [r for r in runs if r["row"] == row]
    if not done:
      continue
    cells = []
    for column in columns:
      # usage and perplexity are per codebook: the mean over codebooks, then over seeds.
      # Runs without dead-code restart restart nothing (their records predate the column).
      values = np.array([np.mean(r.get(column, 0.0)) for r in done])
      cells.append(f"{values.mean():.3f} ± {values.std(ddof=1):.3f}" if len(values) > 1
                   else f"{values[0]:.3f}")
    lines.append(f"| {row} | {len(done)} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--seeds", default="0,1,2")
  parser.add_argument("--rows", default=",".join(ROWS))
  parser.add_argument("--out", required=True)
  parser.add_argument("--table", action="store_true", help="print the table of --out and stop")
  args = parser.parse_args()
  out = pathlib.Path(args.out)
  runs = json.loads(out.read_text()) if out.exists() else []
  if not args.table:
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    # Seed-major order: an interrupted study has whole seeds of every row.
    for seed in (int(s) for s in args.seeds.split(",")):
      for row in args.rows.split(","):
        if any(r["row"] == row and r["seed"] == seed for r in runs):
          continue
        runs.append(run_one(row, seed))
        out.write_text(json.dumps(runs, indent=1))
        print(row, seed, {k: runs[-1][k] for k in COLUMNS[:4]}, flush=True)
  print(table(runs))


if __name__ == "__main__":
  main()
