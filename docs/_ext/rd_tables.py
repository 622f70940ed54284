"""The tables of the rate-distortion grids on the studies page, from the files each grid's
collect wrote into docs/images/: `:full` (1,500 steps) in `rate_distortion_full/`, `:full,long`
(the same grid at 6,000 steps) in `rate_distortion_long/`.

A grid's tables show the rungs that have all their runs in its `rd.json` (`grid_records`), and
its status line how many runs are missing, so a grid that is still training reports what it
has. The code priors and the 4x-steps check belong to `:full`.
"""

import collections
import importlib.util
from typing import Any, Callable

import table_text as tt

# The grids the page reports: config variant -> folder under docs/images.
GRIDS = {"full": "rate_distortion_full", "full,long": "rate_distortion_long"}
PRIOR_BITS = (16, 72)  # the rungs of the page's prior command (`--config.prior_bits`)


def grid_config(variant: str) -> Any:
  """`configs/rate_distortion.py:<variant>`, the config of a grid the page reports."""
  path = tt.DOCS.parent / "configs" / "rate_distortion.py"
  spec = importlib.util.spec_from_file_location("rate_distortion_config", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(variant)


def grid_records(variant: str) -> tuple[list[dict], str]:
  """(the records of the rungs whose every run is in the grid's rd.json, a line saying how many
  runs are missing, "" when none). Records of an older rd.json get their rung and steps from the
  config (`records.complete_records`)."""
  # pylint: disable=import-outside-toplevel
  from dvq_jax.rate_distortion import Point, complete_records, point_config, points
  from dvq_jax.rate_distortion.grid import bits_per_position
  folder, config = GRIDS[variant], grid_config(variant)
  records = complete_records(config, tt.optional(f"{folder}/rd.json") or [])
  rung = {p.name: bits_per_position(point_config(config, p)) for p in points(config)}
  have = {Point(*(r[key] for key in Point._fields)).name for r in records}
  complete = sorted(set(rung.values()) - {bits for name, bits in rung.items() if name not in have})
  records = [r for r in records if r["bits_per_position"] in complete]
  done = len(have & rung.keys())
  if done == len(rung):
    return records, ""
  listed = ", ".join(f"{bits:g}" for bits in complete)
  shown = (f"the tables show the rungs that have all of theirs ({listed} bits a position)"
           if complete else "no rung has all of its runs yet")
  return records, (f"*The grid has not finished: {done} of its {len(rung)} runs"
                   f" are in `docs/images/{folder}/rd.json`; {shown}.*")


def _rung_label(bits: float, rows: list[dict]) -> str:
  rates = collections.Counter(round(row["rate"], 4) for row in rows)
  return f"{bits:g} bits a position ({rates.most_common(1)[0][0]:.3f} bits/dim)"


def status(variant: str) -> str:
  """How far a grid is; its rd.png when the collect wrote one."""
  records, missing = grid_records(variant)
  folder = GRIDS[variant]
  plot = (f"\n\n![the grid](images/{folder}/rd.png)"
          if (tt.IMAGES / folder / "rd.png").exists() and records else "")
  if missing:
    return missing + plot
  steps = sorted({r["num_train_steps"] for r in records})
  seeds = sorted({r["seed"] for r in records})
  return (f"All {len(records)} runs of the grid are in `docs/images/{folder}/rd.json`"
          f" ({len({r['quantizer'] for r in records})} families, seeds"
          f" {', '.join(map(str, seeds))}, {', '.join(map(str, steps))} steps).{plot}")


def rungs(variant: str) -> str:
  """A table a rung that has all its runs: each family's recon bits/dim (mean ± std over seeds),
  best first, and the winner when it is ahead of every other family (`claims.ahead`)."""
  from dvq_jax.rate_distortion import claims  # pylint: disable=import-outside-toplevel
  records, _ = grid_records(variant)
  parts = []
  for bits in claims.rungs(records):
    rows = claims.rung(records, bits)
    best = claims.winner(rows)
    verdict = f"winner **{best}**" if best else "no family ahead of all others"
    parts.append(f"**{_rung_label(bits, rows)}**: {verdict}.\n")
    parts.append(tt.markdown(
        ["family", "L x K", "seeds", "rate, uniform", "rate, unigram", "recon bits/dim"],
        [[row["quantizer"], f"{row['num_codebooks']} x {row['codebook_size']}",
          str(row["seeds"]), f"{row['rate']:.3f}", f"{row['rate_unigram']:.3f}",
          f"{row['mean']:.3f}{tt.PM}{row['std']:.3f}"] for row in rows]) + "\n")
  return "\n".join(parts)


def dvq_versus(variant: str) -> str:
  """Per family, the rates (bits/dim, uniform) where DVQ is ahead of it, behind it, level."""
  from dvq_jax.rate_distortion import claims  # pylint: disable=import-outside-toplevel
  records, _ = grid_records(variant)
  if not records:
    return ""
  cell = lambda entries: ", ".join(f"{rate:.3f}" for _, rate in entries) or "-"  # noqa: E731
  return tt.markdown(["family", "DVQ ahead at", "DVQ behind at", "level at"],
                     [[e["quantizer"], cell(e["ahead"]), cell(e["behind"]), cell(e["level"])]
                      for e in claims.dvq_versus(records)])


def paper_claims(variant: str) -> str:
  """The paper's claims at its rate (`claims.paper_claims`), with the learned priors if any."""
  from dvq_jax.rate_distortion import claims  # pylint: disable=import-outside-toplevel
  records, _ = grid_records(variant)
  rows = []
  for claim in claims.paper_claims(records, tt.optional(f"{GRIDS[variant]}/rd_priors.json") or ()):
    dvq = claim["dvq"]
    if "other" in claim:
      other = claim["other"]
      data = (f"DVQ {dvq['mean']:.3f}{tt.PM}{dvq['std']:.3f} against {other['quantizer']}"
              f" {other['mean']:.3f}{tt.PM}{other['std']:.3f} recon bits/dim")
    else:
      data = f"DVQ recon {dvq['mean']:.3f} + rate {claim['rate']:.3f} ({claim['code']})"
    rows.append([claim["claim"], claim["paper"], f"{claim['measured']:.1%}", data,
                 f"**{claim['verdict']}**"])
  if not rows:
    return "*The rung of the paper's rate does not have all its runs yet.*"
  return tt.markdown(["claim", "paper", "measured", "data", "verdict"], rows)


def priors() -> str:
  """The learned code prior's rate beside the uniform and unigram ones (`:full`'s
  `rd_priors.json`), and how many of the page's command's priors it has."""
  folder = GRIDS["full"]
  trained = tt.optional(f"{folder}/rd_priors.json")
  if trained is None:
    return (f"*No code priors yet: `docs/images/{folder}/rd_priors.json` does not exist; it"
            " fills in when the priors are trained.*")
  from dvq_jax.rate_distortion import priors as rd_priors  # pylint: disable=import-outside-toplevel
  records, _ = grid_records("full")
  config = grid_config("full")
  config.prior_bits = PRIOR_BITS
  expected = len(rd_priors.chosen(config, records, quiet=True))
  count = ""
  if len(trained) < expected:
    count = (f"*{len(trained)} of the {expected} priors on {' and '.join(map(str, PRIOR_BITS))}"
             " bits a position are trained so far; the others fill in as they finish.*\n\n")
  return count + tt.markdown(
      ["family", "L x K", "rate, uniform", "rate, unigram", "rate, prior", "recon",
       "ELBO, uniform", "ELBO, unigram", "ELBO, prior"],
      [[p["quantizer"], f"{p['num_codebooks']} x {p['codebook_size']}",
        *(f"{p[key]:.3f}" for key in ("rate_bits_per_dim", "rate_unigram_bits_per_dim",
                                       "rate_prior_bits_per_dim", "recon_bits_per_dim",
                                       "elbo_bits_per_dim", "elbo_unigram_bits_per_dim",
                                       "elbo_prior_bits_per_dim"))]
       for p in sorted(trained, key=lambda p: (p["bits_per_position"],
                                               p["elbo_prior_bits_per_dim"]))])


def steps() -> str:
  """The families' order at the grid's steps and at 4x (`steps_check.json`)."""
  folder = GRIDS["full"]
  check = tt.optional(f"{folder}/steps_check.json")
  if check is None:
    return (f"*The 4x-steps check has not run yet: `docs/images/{folder}/steps_check.json` does"
            " not exist.*")
  rungs = {r["bits_per_position"]: r for r in check["rungs"]}
  lines = [tt.markdown(["rung (bits a position)", "families", "Spearman",
                        "pairs in the same order",
                        "pairs ahead at the grid's length, same way round at 4x"],
                       [[f"{b:g}", str(r["num_families"]), f"{r['spearman']:.2f}",
                         f"{r['pairwise_agreement']:.2f}",
                         f"{r['ahead_pairs_kept']} of {r['ahead_pairs']}"]
                        for b, r in rungs.items()]), ""]
  lines.append(tt.markdown(
      ["rung", "family", "L x K", "recon, short", "recon, 4x", "rank, short", "rank, 4x"],
      [[f"{r['bits_per_position']:g}", r["quantizer"],
        f"{r['num_codebooks']} x {r['codebook_size']}",
        f"{r['short']:.3f}{tt.PM}{r['short_std']:.3f} ({r['short_steps']} steps,"
        f" {r['short_seeds']} seeds)",
        f"{r['long']:.3f} ({r['long_steps']} steps)", f"{r['short_rank']:g}",
        f"{r['long_rank']:g}"] for r in check["rows"]]))
  return "\n".join(lines)


TABLES: dict[str, Callable[[], str]] = {
    "rate_distortion_full_priors": priors,
    "rate_distortion_full_steps": steps,
    **{f"{folder}_{name}": (lambda table=table, variant=variant: table(variant))
       for variant, folder in GRIDS.items()
       for name, table in (("status", status), ("rungs", rungs), ("dvq", dvq_versus),
                           ("claims", paper_claims))},
}
