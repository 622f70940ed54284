"""The static-prior experiment end to end: `run(config, workdir)` (what `dvq_jax.main` calls).

Writes to workdir:
  config.json       the config used;
  results.json      one record per (study, model, D, K, L, N_G): loss_mean, loss_std, repeats;
  results.csv       the same table;
  loss_curves.npz   training loss per step, `(repeats, steps)` per setting;
  codes_used.json   distinct trained code vectors the test points use, per setting;
  loss_curves.png, fig3a_loss_vs_dim.png, fig3b_trained_vs_random.png,
  fig4_loss_vs_num_factors.png, fig13_depthwise_2d.png.
"""

import csv
import io
import json

import jax
import jax.numpy as jnp
import numpy as np
from etils import epath

from dvq_jax.training.progress import Progress
from dvq_jax.static_prior import plots
from dvq_jax.static_prior.blobs import make_blobs
from dvq_jax.static_prior.plan import Job
from dvq_jax.static_prior.plan import Plan
from dvq_jax.static_prior.plan import make_plan
from dvq_jax.static_prior.study import Outcome
from dvq_jax.static_prior.study import repeat_keys
from dvq_jax.static_prior.study import simulate
from dvq_jax.training import validation

RECORD_KEYS = ("study", "model", "dim", "codebook_size", "num_codebooks", "num_factors",
               "loss_mean", "loss_std", "repeats")


def curve_name(study: str, model: str, dim: int, codebook_size: int, num_codebooks: int,
               num_factors: int) -> str:
  """Key of a setting in loss_curves.npz.

  >>> curve_name("fig3", "vq", 2, 10, 1, 100)
  'fig3/vq/D2/K10/L1/NG100'
  """
  return f"{study}/{model}/D{dim}/K{codebook_size}/L{num_codebooks}/NG{num_factors}"


def _std(losses: np.ndarray) -> float:
  return float(np.std(losses, ddof=1)) if losses.size > 1 else 0.0


def _simulate(job: Job, plan: Plan, repeats: int) -> Outcome:
  init_keys = jnp.stack([repeat_keys(plan.seed, repeats, *s.init_ids) for s in job.settings])
  return simulate(repeat_keys(plan.seed, repeats, *job.data_ids), init_keys, job.group,
                  plan.recipe)


def run_plan(plan: Plan, *, progress: bool = True
             ) -> tuple[list[dict], dict[str, np.ndarray], dict[str, np.ndarray]]:
  """Runs every job of the plan.

  Returns:
    The records (one per setting and model), the training curves `(repeats, steps)` and the
    trained codes used on the test draw `(repeats,)`, both keyed by `curve_name`.
  """
  records, curves, codes_used = [], {}, {}
  total = sum(len(s.models) for job in plan.jobs for s in job.settings)
  bar = Progress(total, f"static prior ({plan.study})", unit="setting", enabled=progress)
  for job in plan.jobs:
    outcome = jax.device_get(_simulate(job, plan, plan.repeats))
    group = job.group
    done = 0
    for i, setting in enumerate(job.settings):
      common = {"study": job.study, "dim": group.dim, "codebook_size": setting.codebook_size,
                "num_codebooks": group.num_codebooks, "num_factors": group.num_factors}
      name = curve_name(model=setting.models[0], **common)
      curves[name] = np.asarray(outcome.curve[i])
      codes_used[name] = np.asarray(outcome.codes_used[i])
      for model in setting.models:
        losses = np.asarray((outcome.random_loss if model == "random" else outcome.loss)[i],
                            np.float64)
        records.append({**common, "model": model, "loss_mean": float(np.mean(losses)),
                        "loss_std": _std(losses), "repeats": int(losses.size)})
        done += 1
    bar.update(done, last=f"{job.study} D={group.dim} L={group.num_codebooks}"
               f" N_G={group.num_factors}")
  return [{key: r[key] for key in RECORD_KEYS} for r in records], curves, codes_used


def _write_tables(workdir: epath.Path, records: list[dict]) -> None:
  (workdir / "results.json").write_text(json.dumps(records, indent=1))
  table = io.StringIO()
  writer = csv.DictWriter(table, fieldnames=RECORD_KEYS, lineterminator="\n")
  writer.writeheader()
  writer.writerows(records)
  (workdir / "results.csv").write_text(table.getvalue())


def _write_curves(workdir: epath.Path, curves: dict[str, np.ndarray]) -> None:
  buffer = io.BytesIO()
  np.savez_compressed(buffer, **curves)
  with (workdir / "loss_curves.npz").open("wb") as f:
    f.write(buffer.getvalue())
  plots.plot_loss_curves({name: c.mean(axis=0) for name, c in curves.items()},
                         workdir / "loss_curves.png")


def _picture(plan: Plan, workdir: epath.Path) -> None:
  """Fig. 13/14: the first repetition of a D=2, L=2 DVQ run, blobs and both codebooks."""
  job = plan.picture
  outcome = jax.device_get(_simulate(job, plan, 1))
  blobs = make_blobs(repeat_keys(plan.seed, 1, *job.data_ids)[0], job.group.num_factors, 2,
                     points_per_centre=plan.recipe.points_per_centre,
                     test_points_per_centre=plan.recipe.test_points_per_centre,
                     sigma=plan.recipe.sigma)
  plots.plot_depthwise_2d(np.asarray(blobs.train), np.asarray(blobs.centres),
                          np.asarray(outcome.codebooks[0, 0]), workdir / "fig13_depthwise_2d.png")


def run(config, workdir: str, *, progress: bool = True) -> list[dict]:
  """Runs the study the config names (`config.study`: all | fig3 | fig4) and writes its outputs.

  The config is checked in full first: a bad field raises ConfigError before any compute.

  Args:
    config: an ml_collections.ConfigDict from configs/static_prior.py.
    workdir: output folder (local or gs://); created if missing.
    progress: show a progress line (settings done and ETA) on stderr.

  Returns:
    The records written to results.json.
  """
  plan = make_plan(config)
  validation.check_workdir(workdir, config)
  out = epath.Path(workdir)
  out.mkdir(parents=True, exist_ok=True)
  (out / "config.json").write_text(config.to_json_best_effort(indent=1))
  records, curves, codes_used = run_plan(plan, progress=progress)
  _write_tables(out, records)
  _write_curves(out, curves)
  (out / "codes_used.json").write_text(json.dumps(
      {name: {"mean": float(np.mean(used)), "repeats": used.tolist()}
       for name, used in codes_used.items()}, indent=1))
  if any(r["study"] == "fig3" for r in records):
    plots.plot_fig3a(records, out / "fig3a_loss_vs_dim.png")
    plots.plot_fig3b(records, out / "fig3b_trained_vs_random.png")
  if any(r["study"] == "fig4" for r in records):
    plots.plot_fig4(records, out / "fig4_loss_vs_num_factors.png")
  _picture(plan, out)
  return records
