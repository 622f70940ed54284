"""A `results-table` directive: the studies' tables rendered from their committed result files.

    ```{results-table} rate_distortion
    ```

renders the named table from the JSON a committed command wrote (`rd.json` of the
rate-distortion study, `results*.json` of static-prior runs, the `toolbox_study.py` records, the
code priors' `eval.json`, `benchmarks/codec_bench.py`'s `codec_rd.json`), so no number on the
pages is typed in by hand. Means ± sample standard deviations (ddof 1) over
seeds or repetitions, as every table of the site. The rate-distortion grids' tables are in
`rd_tables`, what the tables share in `table_text`.
"""

import collections
import sys
from typing import Any, Callable

import numpy as np
from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective

import rd_tables
import table_text as tt

_QUANTIZER_ORDER = ("dvq", "mvq", "vq", "svq")


def rate_distortion() -> str:
  """Every point of `rd.json`, one row per (quantizer, L, K) over its seeds, by rate."""
  groups = collections.defaultdict(list)
  for record in tt.load("rate_distortion/rd.json"):
    groups[(record["quantizer"], record["num_codebooks"], record["codebook_size"])].append(record)
  keys = sorted(groups, key=lambda k: (groups[k][0]["rate_bits_per_dim"],
                                       _QUANTIZER_ORDER.index(k[0])))
  rows = []
  for quantizer, num_codebooks, codebook_size in keys:
    runs = groups[(quantizer, num_codebooks, codebook_size)]
    column = lambda key, digits: tt.mean_std([r[key] for r in runs], digits)  # noqa: E731
    rows.append([quantizer, f"{num_codebooks} x {codebook_size}", str(len(runs)),
                 f"{runs[0]['rate_bits_per_dim']:.3f}", column("rate_unigram_bits_per_dim", 3),
                 column("recon_bits_per_dim", 3), column("elbo_bits_per_dim", 3),
                 column("elbo_unigram_bits_per_dim", 3), column("psnr", 1)])
  return tt.markdown(["quantizer", "L x K", "seeds", "rate, uniform", "rate, unigram",
                    "recon bits/dim", "ELBO, uniform", "ELBO, unigram", "PSNR (dB)"], rows)


def rate_distortion_unigram_ratio() -> str:
  """Unigram rate / uniform rate per (quantizer, L, K), from `rd.json`."""
  groups = collections.defaultdict(list)
  for record in tt.load("rate_distortion/rd.json"):
    key = (record["quantizer"], record["num_codebooks"], record["codebook_size"])
    groups[key].append(record["rate_unigram_bits_per_dim"] / record["rate_bits_per_dim"])
  keys = sorted(groups, key=lambda k: (_QUANTIZER_ORDER.index(k[0]), k[1] * np.log2(k[2])))
  return tt.markdown(["quantizer", "L x K", "unigram / uniform rate"],
                   [[q, f"{l} x {k}", tt.mean_std(groups[(q, l, k)], 3)] for q, l, k in keys])


def _toolbox(rows: tuple[str, ...], columns: tuple[str, ...]) -> str:
  """`toolbox_study.table` of the recorded runs, short labels."""
  sys.path.insert(0, str(tt.DOCS.parent / "benchmarks"))
  import toolbox_study  # pylint: disable=import-outside-toplevel
  header, *body = toolbox_study.table(tt.load("toolbox/toolfam.json"), rows, columns).split("\n")
  for column, label in _SHORT.items():
    header = header.replace(f" {column} ", f" {label} ")
  return "\n".join([header, *body]).replace(" ± ", tt.PM)


# Column labels of the toolbox tables (bits/dim unless said otherwise).
_SHORT = {"recon_bits_per_dim": "recon", "rate_unigram_bits_per_dim": "unigram rate",
          "elbo_bits_per_dim": "ELBO, uniform", "elbo_unigram_bits_per_dim": "ELBO, unigram",
          "psnr": "PSNR (dB)", "codes_restarted_total": "codes restarted"}


def toolbox_families() -> str:
  """The quantizer families at 16 bits per position (`benchmarks/toolbox_study.py`)."""
  return _toolbox(("dvq", "dvq_rotation", "dvq_cosine", "rvq", "fsq", "lfq"),
                  ("recon_bits_per_dim", "rate_unigram_bits_per_dim", "elbo_bits_per_dim",
                   "elbo_unigram_bits_per_dim", "usage", "perplexity"))


def toolbox_new_families() -> str:
  """BSQ, SimVQ and residual FSQ/LFQ beside DVQ, FSQ and LFQ at 16 bits per position
  (`benchmarks/toolbox_study.py`)."""
  return _toolbox(("dvq", "dvq_simvq", "bsq", "lfq", "fsq", "rfsq", "rlfq"),
                  ("recon_bits_per_dim", "rate_unigram_bits_per_dim", "elbo_unigram_bits_per_dim",
                   "psnr", "usage", "perplexity"))


def _provenance(record: dict) -> str:
  """The line a `benchmarks/results_file.py` file prints under its table: how it was made."""
  load = "-".join(f"{x:g}" for x in sorted({record["load"][0], record["load"][-1]}))
  return (f"*`{record['command']}` at commit {record['commit']}, {record['date'][:16]} UTC,"
          f" {record['cpus']} CPUs ({record['cpu']}), load {load}, jax {record['jax']}.*")


def toolbox_speed() -> str:
  """Every quantizer family against vector-quantize-pytorch, forward+backward and forward, with
  the GEMM floor of the codebook families' search (`benchmarks/toolbox_bench.py --output`,
  `benchmarks/toolbox_speed.json`)."""
  record = tt.load("benchmarks/toolbox_speed.json")
  rows = {(r["family"], r["kind"]): r for r in record["rows"]}
  cell = lambda r, label: (f"{r[f'{label}_min_ms']:.1f}"  # noqa: E731
                           + ("" if r[f"{label}_quiet_calls"] else "*"))
  body = []
  for family in dict.fromkeys(f for f, _ in rows):
    both, fwd = rows[family, "fwd+bwd"], rows[family, "fwd"]
    floor = f"{fwd['gemm_floor_ms']:.1f}" if "gemm_floor_ms" in fwd else ""
    body.append([family, both["setting"], f"{both['codes_agree']} of {both['codes']}",
                 cell(both, "dvq_jax"), cell(both, "vq-pytorch"), f"{both['speedup']:.1f}x",
                 cell(fwd, "dvq_jax"), f"{fwd['speedup']:.1f}x", floor])
  peak = record["settings"]["gemm_peak_gflop_per_s"]
  return (tt.markdown(["family", "setting", "codes agree", "fwd+bwd dvq_jax ms",
                     "fwd+bwd vq-pytorch ms", "fwd+bwd speed-up", "fwd dvq_jax ms",
                     "fwd speed-up", "fwd GEMM floor ms"], body)
          + f"\n\nGEMM floor: the forward's distance matmuls alone at the fp32 GEMM peak measured"
          f" in the same run ({peak['jax']:.0f} GFLOP/s in XLA, {peak['torch']:.0f} in PyTorch,"
          " a 4096^3 matmul).\n\n" + _provenance(record))


def toolbox_stateful() -> str:
  """Plain DVQ and its stateful codebook-learning rows (`benchmarks/toolbox_study.py`)."""
  return _toolbox(("dvq", "dvq_ema", "dvq_kmeans", "dvq_restart", "dvq_ema_kmeans_restart"),
                  ("recon_bits_per_dim", "rate_unigram_bits_per_dim", "elbo_unigram_bits_per_dim",
                   "psnr", "usage", "perplexity", "codes_restarted_total"))


def _static_prior(path: str, study: str, model: str, column: str, row: str, header: str) -> str:
  records = [r for r in tt.load(path) if r["study"] == study and r["model"] == model]
  columns = sorted({r[column] for r in records})
  table = collections.defaultdict(dict)
  for r in records:
    table[r[row]][r[column]] = f"{r['loss_mean']:.4f}{tt.PM}{r['loss_std']:.4f}"
  return tt.markdown([header, *map(str, columns)],
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
  records = [r for r in tt.load("static_prior/results.json") if r["study"] == "fig4"]
  models = ("dvq", "vq", "vq_k+")
  header = {}
  table = collections.defaultdict(dict)
  for r in records:
    name = {"dvq": "DVQ", "vq": "VQ", "vq_k+": "VQ^K+"}[r["model"]]
    header[r["model"]] = (f"{name} K={r['codebook_size']}"
                          + (f", L={r['num_codebooks']}" if r["model"] == "dvq" else ""))
    table[r["num_factors"]][r["model"]] = f"{r['loss_mean']:.4f}{tt.PM}{r['loss_std']:.4f}"
  return tt.markdown(["N_G", *(header[m] for m in models)],
                   [[str(n), *(table[n][m] for m in models)] for n in sorted(table)])


def static_prior_fig4_num_codebooks() -> str:
  """Fig. 4 at N_G = 70 for L = 4, 8, 16 and 32 DVQ codebooks (`results_fig4_L*.json`)."""
  records = [r for r in tt.load("static_prior/results.json")
             if r["study"] == "fig4" and r["num_factors"] == 70]
  for num_codebooks in (4, 8, 32):
    records += tt.load(f"static_prior/results_fig4_L{num_codebooks}.json")
  cell = lambda r: f"{r['loss_mean']:.4f}{tt.PM}{r['loss_std']:.4f}"  # noqa: E731
  dvq = sorted((r for r in records if r["model"] == "dvq"), key=lambda r: r["num_codebooks"])
  baselines = {r["model"]: cell(r) for r in records if r["model"] != "dvq"}
  return tt.markdown(["L (DVQ, K = 20)", "bits per point", "DVQ", "VQ K=20", "VQ^K+ K=50"],
                   [[str(r["num_codebooks"]), f"{r['num_codebooks'] * np.log2(20):.0f}", cell(r),
                     baselines["vq"], baselines["vq_k+"]] for r in dvq])


def code_prior() -> str:
  """A code prior per quantizer's demo VQ-VAE, one seed each, from the files in `prior/`.

  `<quantizer>_eval.json` is the prior run's `eval.json`, `<quantizer>_codes.json` its tokenizer
  record (L, K) and `<quantizer>_vqvae_eval.json` the VQ-VAE's `eval.json` (PSNR, SSIM).
  """
  rows = []
  for quantizer in _QUANTIZER_ORDER:
    run = tt.load(f"prior/{quantizer}_eval.json")
    codes = tt.load(f"prior/{quantizer}_codes.json")
    vqvae = tt.load(f"prior/{quantizer}_vqvae_eval.json")
    prior, unigram = run["rate_prior_bits_per_dim"], run["rate_unigram_bits_per_dim"]
    rows.append([quantizer, f"{codes['num_codebooks']} x {codes['codebook_size']}",
                 f"{run['recon_bits_per_dim']:.3f}", f"{vqvae['psnr']:.1f}",
                 f"{vqvae['ssim']:.3f}", f"{run['rate_bits_per_dim']:.3f}", f"{unigram:.3f}",
                 f"{prior:.3f}", f"{prior / unigram:.2f}", f"{run['elbo_bits_per_dim']:.3f}"])
  return tt.markdown(["quantizer", "L x K", "recon bits/dim", "PSNR (dB)", "SSIM",
                    "rate, uniform", "rate, unigram", "rate, prior", "prior / unigram",
                    "ELBO (recon + prior)"], rows)


_CODEC = "codec/codec_context_rd.json"  # benchmarks/codec_bench.py's numbers


def codec_lossless() -> str:
  """Lossless bits/dim of `codec_bench.py`'s image sets: ours, the bound, the classical codecs."""
  sets = tt.load(_CODEC)
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
  return tt.markdown(["bits/dim (lower is better)", *(f"{r['name']} ({r['count']} images)"
                                                    for r in sets)], rows)


def codec_lossy() -> str:
  """Lossy bits/pixel and PSNR: our codes against the JPEG and WebP quality sweeps (mosaic)."""
  sets = tt.load(_CODEC)
  formats = [k for k in ("JPEG", "WebP") if k in sets[0]]
  rows = [["ours: the codes only, one file", "", *(
      f"{r['ours_lossy_bpp']:.3f} / {r['ours_lossy_psnr']:.2f}" for r in sets)]]
  for fmt in formats:
    for i, point in enumerate(sets[0][fmt]):
      rows.append([f"{fmt}, one mosaic", str(point["quality"]), *(
          f"{r[fmt][i]['mosaic_bpp']:.3f} / {r[fmt][i]['mosaic_psnr']:.2f}" for r in sets)])
  return tt.markdown(["codec", "quality", *(f"{r['name']}: bits/pixel / PSNR (dB)" for r in sets)],
                   rows)


def plans_v5e() -> str:
  """The shipped configs' steps planned for TPU v5e (`benchmarks/plan_table.py --output`,
  `benchmarks/plans_v5e.json`): per chip and per step, from the compiled programs."""
  record = tt.load("benchmarks/plans_v5e.json")
  body = []
  for row in record["rows"]:
    flags = dict(f.split("=", 1) for f in row["plan"].split() if "=" in f)
    step = f"`{flags['--config'].removeprefix('configs/')}`"
    step += "".join(f" {k.removeprefix('--config.')}={v}" for k, v in flags.items()
                    if k.startswith("--config."))
    if "--vqvae_config" in flags:
      step += f" over `{flags['--vqvae_config'].removeprefix('configs/')}`'s codes"
    collectives = ", ".join(f"{n} {kind}" for kind, n in row["collectives"].items()) or "none"
    body.append([step, row["program"].removesuffix("_step"), row["topology"],
                 f"{row['examples']:,}", f"{row['memory_gb']:.2f}", f"{row['gflop']:.1f}",
                 f"{row['gb_accessed']:.2f}", f"{row['flop_per_byte']:.0f}",
                 f"{row['step_ms_bound']:.2f}", f"{row['images_per_s_bound']:,.0f}",
                 f"{100 * row['mfu_bound']:.1f}%", collectives, f"{row['compile_s']:.0f}"])
  return (tt.markdown(["config", "step", "slice", "images (grids) a step", "memory GB a chip",
                     "GFLOP a chip", "GB accessed a chip", "FLOP/byte", "step >= ms",
                     "images/s <=", "MFU <=", "collectives", "compile s"], body)
          + "\n\n" + _provenance(record))


def _cell(value: Any) -> str:
  if isinstance(value, float):
    return f"{value:.4g}"
  return "-" if value is None else str(value)


def benchmark_file(path: str) -> str:
  """Any file a benchmark's `--output` wrote (`benchmarks/results_file.py`, under images/): its
  rows, a column a key, and the line saying how it was made."""
  record = tt.load(path)
  keys = list(dict.fromkeys(key for row in record["rows"] for key in row))
  return (tt.markdown(keys, [[_cell(row.get(key)) for key in keys] for row in record["rows"]])
          + "\n\n" + _provenance(record))


TABLES: dict[str, Callable[[], str]] = {
    **{f.__name__: f for f in (code_prior, codec_lossless, codec_lossy,
                               rate_distortion, rate_distortion_unigram_ratio,
                               toolbox_families, toolbox_new_families, toolbox_speed,
                               toolbox_stateful, plans_v5e, static_prior_fig3a, static_prior_fig3b,
                               static_prior_fig3a_uniform, static_prior_fig4,
                               static_prior_fig4_num_codebooks)},
    **rd_tables.TABLES}


class ResultsTable(SphinxDirective):
  """Parses `TABLES[argument]()` (Markdown) in place of the directive; an argument ending in
  `.json` is a benchmark's `--output` file under docs/images/ (`benchmark_file`)."""

  required_arguments = 1

  def run(self) -> list[nodes.Node]:
    name = self.arguments[0]
    if name.endswith(".json"):
      if not (tt.IMAGES / name).exists():
        raise self.error(f"no benchmark results file docs/images/{name}")
      markdown = benchmark_file(name)
    elif name in TABLES:
      markdown = TABLES[name]()
    else:
      raise self.error(f"unknown results table {name!r}; known: {', '.join(TABLES)} or a"
                       " benchmark's .json file under docs/images/")
    container = nodes.container()
    self.state.nested_parse(StringList(markdown.splitlines(), source=f"results-table {name}"),
                            self.content_offset, container)
    return container.children


def setup(app) -> dict[str, Any]:
  app.add_directive("results-table", ResultsTable)
  return {"parallel_read_safe": True, "parallel_write_safe": True}
