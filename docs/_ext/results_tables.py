"""A `results-table` directive: the studies' tables rendered from their committed result files.

    ```{results-table} rate_distortion
    ```

renders the named table from the JSON a committed command wrote (`rd.json` of the
rate-distortion study, `results*.json` of static-prior runs, the `toolbox_study.py` records, the
code priors' `eval.json`, `benchmarks/codec_bench.py`'s `codec_rd.json`), so no number on the
pages is typed in by hand. Means ± sample standard deviations (ddof 1) over
seeds or repetitions, as every table of the site.
"""

import collections
import importlib.util
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


_FULL = "rate_distortion_full"  # docs/images/rate_distortion_full: the `:full` grid's outputs
_PRIOR_BITS = (16, 72)  # the rungs of the page's prior command (`--config.prior_bits`)


def _full_config() -> Any:
  """`configs/rate_distortion.py:full`, the config of the grid the page reports."""
  path = _DOCS.parent / "configs" / "rate_distortion.py"
  spec = importlib.util.spec_from_file_location("rate_distortion_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config("full")


def _full_records() -> tuple[list[dict] | None, str]:
  """(the full grid's rd.json records, "") once it has every point; else (None, a line saying
  how many of them the committed rd.json has). Records of an older rd.json get their rung and
  steps from the config (`records.complete_records`)."""
  from dvq_jax.rate_distortion import complete_records  # pylint: disable=import-outside-toplevel
  from dvq_jax.rate_distortion import points  # pylint: disable=import-outside-toplevel
  path = _IMAGES / _FULL / "rd.json"
  records = json.loads(path.read_text()) if path.exists() else []
  config = _full_config()
  expected = len(points(config))
  if len(records) == expected:
    return complete_records(config, records), ""
  return None, (f"*The full grid has not finished: {len(records)} of its {expected} runs are in"
                f" `docs/images/{_FULL}/rd.json`; this table fills in when it has all of them.*")


def _optional(name: str) -> Any:
  path = _IMAGES / _FULL / name
  return json.loads(path.read_text()) if path.exists() else None


def _rung_label(bits: float, rows: list[dict]) -> str:
  rates = collections.Counter(round(row["rate"], 4) for row in rows)
  return f"{bits:g} bits a position ({rates.most_common(1)[0][0]:.3f} bits/dim)"


def rate_distortion_full_status() -> str:
  """How far the full grid is, from its committed rd.json; its rd.png once it has finished."""
  records, status = _full_records()
  if records is None:
    return status
  plot = (f"\n\n![the full grid](images/{_FULL}/rd.png)"
          if (_IMAGES / _FULL / "rd.png").exists() else "")
  steps = sorted({r["num_train_steps"] for r in records})
  seeds = sorted({r["seed"] for r in records})
  return (f"All {len(records)} runs of the full grid are in `docs/images/{_FULL}/rd.json`"
          f" ({len({r['quantizer'] for r in records})} families, seeds"
          f" {', '.join(map(str, seeds))}, {', '.join(map(str, steps))} steps).{plot}")


def rate_distortion_full_rungs() -> str:
  """A table a rung: each family's recon bits/dim (mean ± std over seeds), best first, and the
  winner when it is ahead of every other family (`claims.ahead`)."""
  from dvq_jax.rate_distortion import claims  # pylint: disable=import-outside-toplevel
  records, status = _full_records()
  if records is None:
    return status
  parts = []
  for bits in claims.rungs(records):
    rows = claims.rung(records, bits)
    best = claims.winner(rows)
    verdict = f"winner **{best}**" if best else "no family ahead of all others"
    parts.append(f"**{_rung_label(bits, rows)}**: {verdict}.\n")
    parts.append(_markdown(
        ["family", "L x K", "seeds", "rate, uniform", "rate, unigram", "recon bits/dim"],
        [[row["quantizer"], f"{row['num_codebooks']} x {row['codebook_size']}",
          str(row["seeds"]), f"{row['rate']:.3f}", f"{row['rate_unigram']:.3f}",
          f"{row['mean']:.3f}{_PM}{row['std']:.3f}"] for row in rows]) + "\n")
  return "\n".join(parts)


def rate_distortion_full_dvq() -> str:
  """Per family, the rates (bits/dim, uniform) where DVQ is ahead of it, behind it, level."""
  from dvq_jax.rate_distortion import claims  # pylint: disable=import-outside-toplevel
  records, status = _full_records()
  if records is None:
    return status
  cell = lambda entries: ", ".join(f"{rate:.3f}" for _, rate in entries) or "-"  # noqa: E731
  return _markdown(["family", "DVQ ahead at", "DVQ behind at", "level at"],
                   [[e["quantizer"], cell(e["ahead"]), cell(e["behind"]), cell(e["level"])]
                    for e in claims.dvq_versus(records)])


def rate_distortion_full_claims() -> str:
  """The paper's claims at its rate (`claims.paper_claims`), with the learned priors if any."""
  from dvq_jax.rate_distortion import claims  # pylint: disable=import-outside-toplevel
  records, status = _full_records()
  if records is None:
    return status
  rows = []
  for claim in claims.paper_claims(records, _optional("rd_priors.json") or ()):
    dvq = claim["dvq"]
    if "other" in claim:
      other = claim["other"]
      data = (f"DVQ {dvq['mean']:.3f}{_PM}{dvq['std']:.3f} against {other['quantizer']}"
              f" {other['mean']:.3f}{_PM}{other['std']:.3f} recon bits/dim")
    else:
      data = (f"DVQ recon {dvq['mean']:.3f} + rate {claim['rate']:.3f} ({claim['code']})")
    rows.append([claim["claim"], claim["paper"], f"{claim['measured']:.1%}", data,
                 f"**{claim['verdict']}**"])
  return _markdown(["claim", "paper", "measured", "data", "verdict"], rows)


def rate_distortion_full_priors() -> str:
  """The learned code prior's rate beside the uniform and unigram ones (`rd_priors.json`)."""
  priors = _optional("rd_priors.json")
  if priors is None:
    return (f"*No code priors yet: `docs/images/{_FULL}/rd_priors.json` does not exist; it"
            " fills in when the priors are trained.*")
  status = ""
  records, _ = _full_records()
  if records is not None:
    from dvq_jax.rate_distortion import priors as rd  # pylint: disable=import-outside-toplevel
    config = _full_config()
    config.prior_bits = _PRIOR_BITS
    expected = len(rd.chosen(config, records, quiet=True))
    if len(priors) < expected:
      status = (f"*{len(priors)} of the {expected} priors on {' and '.join(map(str, _PRIOR_BITS))}"
                " bits a position are trained so far; the others fill in as they finish.*\n\n")
  return status + _markdown(
      ["family", "L x K", "rate, uniform", "rate, unigram", "rate, prior", "recon",
       "ELBO, uniform", "ELBO, unigram", "ELBO, prior"],
      [[p["quantizer"], f"{p['num_codebooks']} x {p['codebook_size']}",
        *(f"{p[key]:.3f}" for key in ("rate_bits_per_dim", "rate_unigram_bits_per_dim",
                                       "rate_prior_bits_per_dim", "recon_bits_per_dim",
                                       "elbo_bits_per_dim", "elbo_unigram_bits_per_dim",
                                       "elbo_prior_bits_per_dim"))]
       for p in sorted(priors, key=lambda p: (p["bits_per_position"],
                                              p["elbo_prior_bits_per_dim"]))])


def rate_distortion_full_steps() -> str:
  """The families' order at the grid's steps and at 4x (`steps_check.json`)."""
  check = _optional("steps_check.json")
  if check is None:
    return (f"*The 4x-steps check has not run yet: `docs/images/{_FULL}/steps_check.json` does"
            " not exist.*")
  rungs = {r["bits_per_position"]: r for r in check["rungs"]}
  lines = [_markdown(["rung (bits a position)", "families", "Spearman", "pairs in the same order",
                      "pairs ahead at the grid's length, same way round at 4x"],
                     [[f"{b:g}", str(r["num_families"]), f"{r['spearman']:.2f}",
                       f"{r['pairwise_agreement']:.2f}",
                       f"{r['ahead_pairs_kept']} of {r['ahead_pairs']}"]
                      for b, r in rungs.items()]), ""]
  lines.append(_markdown(
      ["rung", "family", "L x K", "recon, short", "recon, 4x", "rank, short", "rank, 4x"],
      [[f"{r['bits_per_position']:g}", r["quantizer"],
        f"{r['num_codebooks']} x {r['codebook_size']}",
        f"{r['short']:.3f}{_PM}{r['short_std']:.3f} ({r['short_steps']} steps,"
        f" {r['short_seeds']} seeds)",
        f"{r['long']:.3f} ({r['long_steps']} steps)", f"{r['short_rank']:g}",
        f"{r['long_rank']:g}"] for r in check["rows"]]))
  return "\n".join(lines)


def _toolbox(rows: tuple[str, ...], columns: tuple[str, ...]) -> str:
  """`toolbox_study.table` of the recorded runs, short labels."""
  sys.path.insert(0, str(_DOCS.parent / "benchmarks"))
  import toolbox_study  # pylint: disable=import-outside-toplevel
  header, *body = toolbox_study.table(_load("toolbox/toolfam.json"), rows, columns).split("\n")
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
  record = _load("benchmarks/toolbox_speed.json")
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
  return (_markdown(["family", "setting", "codes agree", "fwd+bwd dvq_jax ms",
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


def code_prior() -> str:
  """A code prior per quantizer's demo VQ-VAE, one seed each, from the files in `prior/`.

  `<quantizer>_eval.json` is the prior run's `eval.json`, `<quantizer>_codes.json` its tokenizer
  record (L, K) and `<quantizer>_vqvae_eval.json` the VQ-VAE's `eval.json` (PSNR, SSIM).
  """
  rows = []
  for quantizer in _QUANTIZER_ORDER:
    run = _load(f"prior/{quantizer}_eval.json")
    codes = _load(f"prior/{quantizer}_codes.json")
    vqvae = _load(f"prior/{quantizer}_vqvae_eval.json")
    prior, unigram = run["rate_prior_bits_per_dim"], run["rate_unigram_bits_per_dim"]
    rows.append([quantizer, f"{codes['num_codebooks']} x {codes['codebook_size']}",
                 f"{run['recon_bits_per_dim']:.3f}", f"{vqvae['psnr']:.1f}",
                 f"{vqvae['ssim']:.3f}", f"{run['rate_bits_per_dim']:.3f}", f"{unigram:.3f}",
                 f"{prior:.3f}", f"{prior / unigram:.2f}", f"{run['elbo_bits_per_dim']:.3f}"])
  return _markdown(["quantizer", "L x K", "recon bits/dim", "PSNR (dB)", "SSIM",
                    "rate, uniform", "rate, unigram", "rate, prior", "prior / unigram",
                    "ELBO (recon + prior)"], rows)


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


def plans_v5e() -> str:
  """The shipped configs' steps planned for TPU v5e (`benchmarks/plan_table.py --output`,
  `benchmarks/plans_v5e.json`): per chip and per step, from the compiled programs."""
  record = _load("benchmarks/plans_v5e.json")
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
  return (_markdown(["config", "step", "slice", "images (grids) a step", "memory GB a chip",
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
  record = _load(path)
  keys = list(dict.fromkeys(key for row in record["rows"] for key in row))
  return (_markdown(keys, [[_cell(row.get(key)) for key in keys] for row in record["rows"]])
          + "\n\n" + _provenance(record))


TABLES: dict[str, Callable[[], str]] = {
    f.__name__: f for f in (code_prior, codec_lossless, codec_lossy,
                            rate_distortion, rate_distortion_unigram_ratio,
                            rate_distortion_full_status, rate_distortion_full_rungs,
                            rate_distortion_full_dvq, rate_distortion_full_claims,
                            rate_distortion_full_priors, rate_distortion_full_steps,
                            toolbox_families, toolbox_new_families, toolbox_speed,
                            toolbox_stateful, plans_v5e, static_prior_fig3a, static_prior_fig3b,
                            static_prior_fig3a_uniform, static_prior_fig4,
                            static_prior_fig4_num_codebooks)}


class ResultsTable(SphinxDirective):
  """Parses `TABLES[argument]()` (Markdown) in place of the directive; an argument ending in
  `.json` is a benchmark's `--output` file under docs/images/ (`benchmark_file`)."""

  required_arguments = 1

  def run(self) -> list[nodes.Node]:
    name = self.arguments[0]
    if name.endswith(".json"):
      if not (_IMAGES / name).exists():
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
