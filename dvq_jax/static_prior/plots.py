"""PNG figures of the static-prior study in the style of the paper (Fig. 3a, 3b, 4, 13/14).

Every function takes the study's records (dicts as in results.json) or arrays and writes one PNG
to a path (local or gs://); none keeps pyplot state.
"""

from collections.abc import Mapping, Sequence

import numpy as np
from etils import epath
from matplotlib import cm
from matplotlib.figure import Figure

_MODEL_STYLE = {"dvq": ("DVQ", "tab:red"), "vq": ("VQ", "tab:blue"),
                "vq_k+": ("VQ$^{K+}$", "tab:green"), "random": ("random", "tab:gray")}


def _save(fig: Figure, path) -> None:
  with epath.Path(path).open("wb") as f:
    fig.savefig(f, format="png", dpi=110, bbox_inches="tight")


def _select(records: Sequence[Mapping], study: str, model: str) -> list[Mapping]:
  return [r for r in records if r["study"] == study and r["model"] == model]


def _by_codebook_size(records: Sequence[Mapping], model: str) -> dict[int, list[Mapping]]:
  lines: dict[int, list[Mapping]] = {}
  for r in sorted(_select(records, "fig3", model), key=lambda r: r["dim"]):
    lines.setdefault(r["codebook_size"], []).append(r)
  return dict(sorted(lines.items()))


def _k_colours(sizes: Sequence[int]):
  return {k: cm.viridis(i / max(len(sizes) - 1, 1)) for i, k in enumerate(sizes)}


def _dim_axis(ax, title: str) -> None:
  ax.set_xscale("log", base=2)
  ax.set_xlabel("number of features D")
  ax.set_ylabel("test MSE per feature")
  ax.set_title(title)
  ax.grid(alpha=0.3)


def plot_fig3a(records: Sequence[Mapping], path) -> None:
  """Fig. 3a: trained VQ test loss vs D, one line per codebook size K (mean +- std)."""
  lines = _by_codebook_size(records, "vq")
  colours = _k_colours(list(lines))
  fig = Figure(figsize=(6, 4))
  ax = fig.subplots()
  for k, rows in lines.items():
    ax.errorbar([r["dim"] for r in rows], [r["loss_mean"] for r in rows],
                yerr=[r["loss_std"] for r in rows], color=colours[k], marker="o", ms=3,
                capsize=2, label=f"K={k}")
  n_g = next(iter(lines.values()))[0]["num_factors"]
  _dim_axis(ax, f"Fig. 3a: trained VQ, N_G={n_g}")
  ax.legend(fontsize=7, ncol=2)
  _save(fig, path)


def plot_fig3b(records: Sequence[Mapping], path) -> None:
  """Fig. 3b: trained (solid) vs untrained random (dashed) VQ codebooks vs D, per K."""
  trained = _by_codebook_size(records, "vq")
  random = _by_codebook_size(records, "random")
  colours = _k_colours(list(trained))
  fig = Figure(figsize=(6, 4))
  ax = fig.subplots()
  for k in trained:
    for rows, style in ((trained[k], "-"), (random[k], "--")):
      ax.plot([r["dim"] for r in rows], [r["loss_mean"] for r in rows], style, color=colours[k],
              marker="o", ms=2.5)
  ax.plot([], [], "k-", label="trained")
  ax.plot([], [], "k--", label="random (untrained)")
  sizes = list(trained)
  _dim_axis(ax, f"Fig. 3b: trained vs random, K={sizes[0]}..{sizes[-1]} (colour)")
  ax.set_yscale("log")
  ax.legend(fontsize=8)
  _save(fig, path)


def plot_fig4(records: Sequence[Mapping], path) -> None:
  """Fig. 4: test loss vs N_G for DVQ, VQ and VQ^K+ with std error bars."""
  fig = Figure(figsize=(6, 4))
  ax = fig.subplots()
  dim = None
  for model in ("dvq", "vq", "vq_k+"):
    rows = sorted(_select(records, "fig4", model), key=lambda r: r["num_factors"])
    if not rows:
      continue
    name, colour = _MODEL_STYLE[model]
    dim = rows[0]["dim"]
    label = f"{name} K={rows[0]['codebook_size']}"
    if rows[0]["num_codebooks"] > 1:
      label += f", L={rows[0]['num_codebooks']}"
    ax.errorbar([r["num_factors"] for r in rows], [r["loss_mean"] for r in rows],
                yerr=[r["loss_std"] for r in rows], color=colour, marker="o", ms=3, capsize=3,
                label=label)
  ax.set_xlabel("number of latent factors N_G")
  ax.set_ylabel("test MSE per feature")
  ax.set_title(f"Fig. 4: D={dim}")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  _save(fig, path)


def plot_depthwise_2d(points: np.ndarray, centres: np.ndarray, codebooks: np.ndarray,
                      path) -> None:
  """Fig. 13/14: 2-D blobs and two depthwise codebooks, one per feature.

  Args:
    points: `(N, 2)` blob points.
    centres: `(N_G, 2)` blob centres.
    codebooks: `(2, K, 1)` trained codebooks; codebook l quantizes feature l.
    path: where the PNG goes.
  """
  fig = Figure(figsize=(5, 5))
  ax = fig.subplots()
  ax.scatter(points[:, 0], points[:, 1], s=4, color="tab:blue", label="blob points")
  for x in codebooks[0, :, 0]:
    ax.axvline(x, color="tab:red", lw=0.8, alpha=0.7)
  for y in codebooks[1, :, 0]:
    ax.axhline(y, color="tab:green", lw=0.8, alpha=0.7)
  grid_x, grid_y = np.meshgrid(codebooks[0, :, 0], codebooks[1, :, 0])
  ax.scatter(grid_x, grid_y, marker="x", s=14, color="k", lw=0.8,
             label="reachable codes (K$^2$)")
  ax.scatter(centres[:, 0], centres[:, 1], s=40, facecolors="none", edgecolors="tab:blue")
  ax.plot([], [], color="tab:red", label="codebook 1 (feature 1)")
  ax.plot([], [], color="tab:green", label="codebook 2 (feature 2)")
  ax.set_xlim(-1.3, 1.3)
  ax.set_ylim(-1.3, 1.3)
  ax.set_aspect("equal")
  ax.set_title(f"DVQ in 2-D: N_G={len(centres)}, L=2, K={codebooks.shape[1]}")
  ax.legend(fontsize=7, loc="lower left")
  _save(fig, path)


def plot_loss_curves(curves: Mapping[str, np.ndarray], path) -> None:
  """Training loss (mean over repetitions) vs step for every setting, one panel per study.

  Args:
    curves: `{"fig3/vq/D2/K10/L1/NG100": (steps,) array, ...}`.
    path: where the PNG goes.
  """
  studies = sorted({name.split("/")[0] for name in curves})
  fig = Figure(figsize=(5 * len(studies), 3.6), layout="constrained")
  axes = np.atleast_1d(fig.subplots(1, len(studies)))
  for ax, study in zip(axes, studies):
    names = [n for n in curves if n.startswith(study + "/")]
    colours = cm.viridis(np.linspace(0, 1, len(names)))
    for name, colour in zip(names, colours):
      ax.plot(curves[name], color=colour, lw=0.8)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("train MSE per feature")
    ax.set_title(f"{study}: {len(names)} settings (mean of repeats)")
    ax.grid(alpha=0.3)
  _save(fig, path)
