"""rd.png: reconstruction bits/dim against the code rate (uniform, unigram and, where trained,
the learned prior's), per quantizer family."""

from collections.abc import Mapping, Sequence

import numpy as np
from etils import epath
from matplotlib import ticker
from matplotlib.figure import Figure

from dvq_jax.rate_distortion.hull import lower_convex_hull

# The depthwise family in reds, the other multi-codebook ones in their own hues, the single
# codebooks in blues and greens; an unlisted family gets a marker of its own and the next colour.
_STYLE = {"dvq": ("o", "tab:red"), "dvq_learned": ("p", "darkred"),
          "dvq_2level": ("h", "salmon"), "simvq": ("*", "tab:pink"), "mvq": ("s", "tab:orange"),
          "rvq": ("v", "tab:purple"), "fsq": ("P", "tab:brown"), "lfq": ("X", "tab:olive"),
          "bsq": ("<", "tab:gray"), "vq": ("^", "tab:blue"), "svq": ("D", "tab:green")}
_OTHER_MARKERS = ("v", "P", "X", "*", "h", "<", ">")
PAPER_RATE = 1.5  # bits/dim of the paper's L = 8, K = 512 on an 8x8 grid of 32x32x3 images


def summarize(records: Sequence[Mapping], rate_key: str,
              metric: str = "recon_bits_per_dim") -> dict[str, list[dict]]:
  """Mean and sample std (ddof=1; 0 for one seed) over seeds of each (quantizer, L, K).

  Returns:
    quantizer -> list of {num_codebooks, codebook_size, bits_per_position, seeds, rate,
    rate_std, recon, recon_std} (`recon` holds `metric`), by increasing mean rate.
  """
  groups: dict[tuple, list[Mapping]] = {}
  for r in records:
    groups.setdefault((r["quantizer"], r["num_codebooks"], r["codebook_size"]), []).append(r)
  out: dict[str, list[dict]] = {}
  for (quantizer, num, size), rs in groups.items():
    rate = np.array([r[rate_key] for r in rs])
    recon = np.array([r[metric] for r in rs])
    ddof = 1 if len(rs) > 1 else 0
    out.setdefault(quantizer, []).append({
        "num_codebooks": num, "codebook_size": size,
        "bits_per_position": rs[0].get("bits_per_position"), "seeds": len(rs),
        "rate": float(rate.mean()), "rate_std": float(rate.std(ddof=ddof)),
        "recon": float(recon.mean()), "recon_std": float(recon.std(ddof=ddof))})
  return {q: sorted(v, key=lambda s: s["rate"]) for q, v in out.items()}


def _style(quantizer: str, index: int) -> tuple[str, str | None]:
  return _STYLE.get(quantizer, (_OTHER_MARKERS[index % len(_OTHER_MARKERS)], None))


def _panel(ax, records: Sequence[Mapping], rate_key: str, label: str, log: bool) -> None:
  families = summarize(records, rate_key)
  order = sorted(families, key=lambda q: list(_STYLE).index(q) if q in _STYLE else len(_STYLE))
  for index, quantizer in enumerate(order):
    stats = families[quantizer]
    marker, colour = _style(quantizer, index)
    xs = [s["rate"] for s in stats]
    ys = [s["recon"] for s in stats]
    bars = ax.errorbar(xs, ys, xerr=[s["rate_std"] for s in stats],
                       yerr=[s["recon_std"] for s in stats], fmt=marker, color=colour,
                       capsize=2, markersize=5, label=quantizer)
    hull = lower_convex_hull(xs, ys)
    ax.plot([xs[i] for i in hull], [ys[i] for i in hull], "-", alpha=0.6,
            color=bars[0].get_color())
    if len(families) <= 4:  # with more families the labels hide the points
      for s in stats:
        ax.annotate(f"{s['num_codebooks']}x{s['codebook_size']}", (s["rate"], s["recon"]),
                    fontsize=6, xytext=(3, 3), textcoords="offset points")
  if log:  # ticks at 1, 2, 5 x 10^n, plainly written
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
  if max(r[rate_key] for r in records) >= PAPER_RATE / 2:
    ax.axvline(PAPER_RATE, color="black", linestyle=":", linewidth=1)
    ax.annotate("paper: 8 x 512,\n1.5 bits/dim", (PAPER_RATE, 0),
                xycoords=("data", "axes fraction"), xytext=(3, 4), textcoords="offset points",
                fontsize=7)
  ax.set_xlabel(label)
  ax.grid(alpha=0.3, which="both")


def write_rd_plot(path, records: Sequence[Mapping], prior_records: Sequence[Mapping] = ()
                  ) -> None:
  """Panels of test recon bits/dim against the rate under the uniform and the unigram code
  prior (and the learned prior, when `prior_records` has any): mean +- std over seeds, lower
  convex hull per family; a dotted line marks the paper's 1.5 bits/dim."""
  panels = [(records, "rate_bits_per_dim", "rate, uniform code prior (bits/dim)"),
            (records, "rate_unigram_bits_per_dim",
             "rate, unigram code prior from train split (bits/dim)")]
  if prior_records:
    panels.append((prior_records, "rate_prior_bits_per_dim",
                   f"rate, learned code prior (bits/dim; seed {prior_records[0]['seed']})"))
  fig = Figure(figsize=(5.6 * len(panels) + 1.6, 5.2))
  axes = fig.subplots(1, len(panels), sharey=True)
  rates = [r["rate_bits_per_dim"] for r in records]
  log = max(rates) > 8 * min(rates)  # the whole rate range: equal steps a doubling
  for ax, (rs, key, label) in zip(axes, panels):
    _panel(ax, rs, key, label, log)
  axes[0].set_ylabel("test recon bits/dim")
  handles, labels = axes[0].get_legend_handles_labels()
  axes[-1].legend(handles, labels, title="family (L x K)" if len(labels) <= 4 else "family",
                  loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8)
  fig.suptitle("Rate-distortion: mean +- std over seeds, lower convex hull per family")
  with epath.Path(path).open("wb") as f:
    fig.savefig(f, format="png", dpi=110, bbox_inches="tight")
