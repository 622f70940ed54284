"""rd.png: reconstruction bits/dim against the code rate, uniform and unigram, per quantizer."""

from collections.abc import Mapping, Sequence

import numpy as np
from etils import epath
from matplotlib.figure import Figure

from dvq_jax.rate_distortion.hull import lower_convex_hull

_STYLE = {"dvq": ("o", "tab:red"), "mvq": ("s", "tab:orange"), "vq": ("^", "tab:blue"),
          "svq": ("D", "tab:green")}
_OTHER_MARKERS = ("v", "P", "X", "*", "h", "<", ">")


def summarize(records: Sequence[Mapping], rate_key: str) -> dict[str, list[dict]]:
  """Mean and sample std (ddof=1; 0 for one seed) over seeds of each (quantizer, L, K).

  Returns:
    quantizer -> list of {num_codebooks, codebook_size, seeds, rate, rate_std, recon,
    recon_std}, by increasing mean rate.
  """
  groups: dict[tuple, list[Mapping]] = {}
  for r in records:
    groups.setdefault((r["quantizer"], r["num_codebooks"], r["codebook_size"]), []).append(r)
  out: dict[str, list[dict]] = {}
  for (quantizer, num, size), rs in groups.items():
    rate = np.array([r[rate_key] for r in rs])
    recon = np.array([r["recon_bits_per_dim"] for r in rs])
    ddof = 1 if len(rs) > 1 else 0
    out.setdefault(quantizer, []).append({
        "num_codebooks": num, "codebook_size": size, "seeds": len(rs),
        "rate": float(rate.mean()), "rate_std": float(rate.std(ddof=ddof)),
        "recon": float(recon.mean()), "recon_std": float(recon.std(ddof=ddof))})
  return {q: sorted(v, key=lambda s: s["rate"]) for q, v in out.items()}


def _style(quantizer: str, index: int) -> tuple[str, str | None]:
  return _STYLE.get(quantizer, (_OTHER_MARKERS[index % len(_OTHER_MARKERS)], None))


def write_rd_plot(path, records: Sequence[Mapping]) -> None:
  """Two panels (uniform rate, unigram rate): mean +- std over seeds, lower hull per quantizer."""
  fig = Figure(figsize=(11, 4.4))
  axes = fig.subplots(1, 2, sharey=True)
  panels = (("rate_bits_per_dim", "rate, uniform code prior (bits/dim)"),
            ("rate_unigram_bits_per_dim", "rate, unigram code prior from train split (bits/dim)"))
  for ax, (key, label) in zip(axes, panels):
    for index, (quantizer, stats) in enumerate(sorted(summarize(records, key).items())):
      marker, colour = _style(quantizer, index)
      xs = [s["rate"] for s in stats]
      ys = [s["recon"] for s in stats]
      bars = ax.errorbar(xs, ys, xerr=[s["rate_std"] for s in stats],
                         yerr=[s["recon_std"] for s in stats], fmt=marker, color=colour,
                         capsize=2, label=quantizer)
      hull = lower_convex_hull(xs, ys)
      ax.plot([xs[i] for i in hull], [ys[i] for i in hull], "-", alpha=0.6,
              color=bars[0].get_color())
      for s in stats:
        ax.annotate(f"{s['num_codebooks']}x{s['codebook_size']}", (s["rate"], s["recon"]),
                    fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel(label)
    ax.grid(alpha=0.3)
  axes[0].set_ylabel("test recon bits/dim")
  axes[0].legend(title="quantizer (LxK)")
  fig.suptitle("Rate-distortion: mean +- std over seeds, lower convex hull per quantizer")
  with epath.Path(path).open("wb") as f:
    fig.savefig(f, format="png", dpi=110, bbox_inches="tight")
