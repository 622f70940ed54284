"""A `results-table` directive: the studies' tables rendered from their committed result files.

    ```{results-table} rate_distortion
    ```

renders the named table from the JSON a committed command wrote (`rd.json` of the
rate-distortion study, `results*.json` of static-prior runs, the `toolbox_study.py` records), so
no number on the pages is typed in by hand. Means ± sample standard deviations (ddof 1) over
seeds or repetitions, as every table of the site.
"""

import collections
import json
import pathlib
import sys
from typing import Any, Callable

import numpy as np
from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective

_DOCS = pathlib.Path(__file__).resolve().parents[1]
_IMAGES = _DOCS / "images"


def _load(path: str) -> Any:
  return json.loads((_IMAGES / path).read_text())


_PM = "\u00a0±\u00a0"  # non-breaking: a cell never wraps between a mean and its std


def _markdown(header: list[str], rows: list[list[str]]) -> str:
  lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
  lines += ["| " + " | ".join(row) + " |" for row in rows]
  return "\n".join(lines)


def _mean_std(values: list[float], digits: int) -> str:
  values = np.asarray(values, dtype=np.float64)
  if len(values) == 1:
    return f"{values[0]:.{digits}f}"
  return f"{values.mean():.{digits}f}{_PM}{values.std(ddof=1):.{digits}f}"


_QUANTIZER_ORDER = ("dvq", "mvq", "vq", "svq")


def rate_distortion() -> str:
  """Every point of `rd.json`, one row per (quantizer, L, K) over its seeds, by rate."""
  groups = collections.defaultdict(list)
  for record in _load("rate_distortion/rd.json"):
    groups[(record["quantizer"], record["num_codebooks"], record["codebook_size"])].append(record)
  keys = sorted(groups, key=lambda k: (groups[k][0]["rate_bits_per_dim"],
                                       _QUANTIZER_ORDER.index(k[0])))
  rows = []
  for quantizer, num_codebooks, codebook_size in keys:
    runs = groups[(quantizer, num_codebooks, codebook_size)]
    column = lambda key, digits: _mean_std([r[key] for r in runs], digits)  # noqa: E731
    rows.append([quantizer, f"{num_codebooks} x {codebook_size}", str(len(runs)),
                 f"{runs[0]['rate_bits_per_dim']:.3f}", column("rate_unigram_bits_per_dim", 3),
                 column("recon_bits_per_dim", 3), column("elbo_bits_per_dim", 3),
                 column("elbo_unigram_bits_per_dim", 3), column("psnr", 1)])
  return _markdown(["quantizer", "L x K", "seeds", "rate, uniform", "rate, unigram",
                    "recon bits/dim", "ELBO, uniform", "ELBO, unigram", "PSNR (dB)"], rows)


def rate_distortion_unigram_ratio() -> str:
  """Unigram rate / uniform rate per (quantizer, L, K), from `rd.json`."""
  groups = collections.defaultdict(list)
  for record in _load("rate_distortion/rd.json"):
    key = (record["quantizer"], record["num_codebooks"], record["codebook_size"])
    groups[key].append(record["rate_unigram_bits_per_dim"] / record["rate_bits_per_dim"])
  keys = sorted(groups, key=lambda k: (_QUANTIZER_ORDER.index(k[0]), k[1] * np.log2(k[2])))
  return _markdown(["quantizer", "L x K", "unigram / uniform rate"],
                   [[q, f"{l} x {k}", _mean_std(groups[(q, l, k)], 3)] for q, l, k in keys])


def _toolbox(rows: tuple[str, ...], columns: tuple[str, ...],
             seeds: tuple[int, ...] | None = None) -> str:
  """`toolbox_study.table` of the recorded runs (of `seeds` only, when given), short labels."""
  sys.path.insert(0, str(_DOCS.parent / "benchmarks"))
  import toolbox_study  # pylint: disable=import-outside-toplevel
  runs = [r for r in _load("toolbox/toolfam.json") if seeds is None or r["seed"] in seeds]
  header, *body = toolbox_study.table(runs, rows, columns).split("\n")
  for column, label in _SHORT.items():
    header = header.replace(f" {column} ", f" {label} ")
  return "\n".join([header, *body]).replace(" ± ", _PM)


# Column labels of the toolbox tables (bits/dim unless said otherwise).
_SHORT = {"recon_bits_per_dim": "recon", "rate_unigram_bits_per_dim": "unigram rate",
          "elbo_bits_per_dim": "ELBO, uniform", "elbo_unigram_bits_per_dim": "ELBO, unigram",
          "psnr": "PSNR (dB)", "codes_restarted_total": "codes restarted"}


def toolbox_families() -> str:
  """The quantizer families at 16 bits per position (`benchmarks/toolbox_study.py`)."""
  return _toolbox(("dvq", "dvq_rotation", "dvq_cosine", "rvq", "fsq", "lfq"),
                  ("recon_bits_per_dim", "rate_unigram_bits_per_dim", "elbo_bits_per_dim",
                   "elbo_unigram_bits_per_dim", "usage", "perplexity"))


def toolbox_stateful() -> str:
  """Plain DVQ and its stateful codebook-learning rows at seed 0 (`benchmarks/toolbox_study.py`)."""
  return _toolbox(("dvq", "dvq_ema", "dvq_kmeans", "dvq_restart", "dvq_ema_kmeans_restart"),
                  ("recon_bits_per_dim", "rate_unigram_bits_per_dim", "elbo_unigram_bits_per_dim",
                   "psnr", "usage", "perplexity", "codes_restarted_total"), seeds=(0,))


def _static_prior(path: str, study: str, model: str, column: str, row: str, header: str) -> str:
  records = [r for r in _load(path) if r["study"] == study and r["model"] == model]
  columns = sorted({r[column] for r in records})
  table = collections.defaultdict(dict)
  for r in records:
    table[r[row]][r[column]] = f"{r['loss_mean']:.4f}{_PM}{r['loss_std']:.4f}"
  return _markdown([header, *map(str, columns)],
                   [[str(k), *(table[k].get(c, "") for c in columns)] for k in sorted(table)])


def static_prior_fig3a() -> str:
  """Trained VQ, test MSE per feature, K down, D across (`results.json` of the full study)."""
  return _static_prior("static_prior/results.json", "fig3", "vq", "dim", "codebook_size",
                       "K \\ D")


def static_prior_fig3b() -> str:
  """The untrained (random) codebook, same grid."""
  return _static_prior("static_prior/results.json", "fig3", "random", "dim", "codebook_size",
                       "K \\ D")


def static_prior_fig3a_uniform() -> str:
  """Fig. 3a under the paper's uniform init (`results_uniform_init.json`)."""
  return _static_prior("static_prior/results_uniform_init.json", "fig3", "vq", "dim",
                       "codebook_size", "K \\ D")


def static_prior_fig4() -> str:
  """Test MSE per feature against N_G for DVQ, VQ and VQ^K+."""
  records = [r for r in _load("static_prior/results.json") if r["study"] == "fig4"]
  models = ("dvq", "vq", "vq_k+")
  header = {}
  table = collections.defaultdict(dict)
  for r in records:
    name = {"dvq": "DVQ", "vq": "VQ", "vq_k+": "VQ^K+"}[r["model"]]
    header[r["model"]] = (f"{name} K={r['codebook_size']}"
                          + (f", L={r['num_codebooks']}" if r["model"] == "dvq" else ""))
    table[r["num_factors"]][r["model"]] = f"{r['loss_mean']:.4f}{_PM}{r['loss_std']:.4f}"
  return _markdown(["N_G", *(header[m] for m in models)],
                   [[str(n), *(table[n][m] for m in models)] for n in sorted(table)])


def static_prior_fig4_num_codebooks() -> str:
  """Fig. 4 at N_G = 70 for L = 4, 8, 16 and 32 DVQ codebooks (`results_fig4_L*.json`)."""
  records = [r for r in _load("static_prior/results.json")
             if r["study"] == "fig4" and r["num_factors"] == 70]
  for num_codebooks in (4, 8, 32):
    records += _load(f"static_prior/results_fig4_L{num_codebooks}.json")
  cell = lambda r: f"{r['loss_mean']:.4f}{_PM}{r['loss_std']:.4f}"  # noqa: E731
  dvq = sorted((r for r in records if r["model"] == "dvq"), key=lambda r: r["num_codebooks"])
  baselines = {r["model"]: cell(r) for r in records if r["model"] != "dvq"}
  return _markdown(["L (DVQ, K = 20)", "bits per point", "DVQ", "VQ K=20", "VQ^K+ K=50"],
                   [[str(r["num_codebooks"]), f"{r['num_codebooks'] * np.log2(20):.0f}", cell(r),
                     baselines["vq"], baselines["vq_k+"]] for r in dvq])


_CODEC = "codec/codec_context_rd.json"  # benchmarks/codec_bench.py's numbers


def codec_lossless() -> str:
  """Lossless bits/dim of `codec_bench.py`'s image sets: ours, the bound, the classical codecs."""
  sets = _load(_CODEC)
  codecs = list(sets[0]["lossless"])
  per_file = [k for k in sets[0]["per_file"] if not k.endswith(" (subset)")]
  lines = [("ours, lossless, one file", lambda r: r["ours_bits_per_dim"]),
           ("model bound (prior + head)", lambda r: r["bound_bits_per_dim"]),
           ("  of which the codes", lambda r: r["code_bits_per_dim"])]
  lines += [(f"{k}, one mosaic", lambda r, k=k: r["lossless"][k]) for k in codecs]
  lines += [(f"{k}, a file per image", lambda r, k=k: r["per_file"][k]) for k in per_file]
  lines += [("ours, a file per image (subset)", lambda r: r["ours_per_file_bits_per_dim"])]
  lines += [(f"{k}, a file per image (subset)", lambda r, k=k: r["per_file"][k + " (subset)"])
            for k in per_file]
  rows = [[label, *(f"{get(r):.3f}" for r in sets)] for label, get in lines]
  rows.append(["lossless images/s, compress / decompress",
               *(f"{r['count'] / r['compress_s']:.1f} / {r['count'] / r['decompress_s']:.1f}"
                 for r in sets)])
  return _markdown(["bits/dim (lower is better)", *(f"{r['name']} ({r['count']} images)"
                                                    for r in sets)], rows)


def codec_lossy() -> str:
  """Lossy bits/pixel and PSNR: our codes against the JPEG and WebP quality sweeps (mosaic)."""
  sets = _load(_CODEC)
  formats = [k for k in ("JPEG", "WebP") if k in sets[0]]
  rows = [["ours: the codes only, one file", "", *(
      f"{r['ours_lossy_bpp']:.3f} / {r['ours_lossy_psnr']:.2f}" for r in sets)]]
  for fmt in formats:
    for i, point in enumerate(sets[0][fmt]):
      rows.append([f"{fmt}, one mosaic", str(point["quality"]), *(
          f"{r[fmt][i]['mosaic_bpp']:.3f} / {r[fmt][i]['mosaic_psnr']:.2f}" for r in sets)])
  return _markdown(["codec", "quality", *(f"{r['name']}: bits/pixel / PSNR (dB)" for r in sets)],
                   rows)


TABLES: dict[str, Callable[[], str]] = {
    f.__name__: f for f in (rate_distortion, rate_distortion_unigram_ratio, toolbox_families,
                            toolbox_stateful, static_prior_fig3a, static_prior_fig3b,
                            static_prior_fig3a_uniform, static_prior_fig4,
                            static_prior_fig4_num_codebooks, codec_lossless, codec_lossy)}


class ResultsTable(SphinxDirective):
  """Parses `TABLES[argument]()` (Markdown) in place of the directive."""

  required_arguments = 1

  def run(self) -> list[nodes.Node]:
    name = self.arguments[0]
    if name not in TABLES:
      raise self.error(f"unknown results table {name!r}; known: {', '.join(TABLES)}")
    container = nodes.container()
    self.state.nested_parse(StringList(TABLES[name]().splitlines(), source=f"results-table {name}"),
                            self.content_offset, container)
    return container.children


def setup(app) -> dict[str, Any]:
  app.add_directive("results-table", ResultsTable)
  return {"parallel_read_safe": True, "parallel_write_safe": True}
