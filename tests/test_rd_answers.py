"""The full rate-distortion study's answers read off synthetic records: the winner of a rung,
where DVQ is ahead or behind, the paper's claims, the order at two lengths, the priors' points,
the 4x-steps variant and the page's tables before and after the grid has finished."""

import json
import pathlib
import sys

import numpy as np
import pytest

from dvq_jax import rate_distortion
from dvq_jax.rate_distortion import claims
from dvq_jax.rate_distortion import priors
from dvq_jax.rate_distortion import steps_check
from tests import config_files

sys.path.insert(0, str(config_files.ROOT / "docs" / "_ext"))
import results_tables  # noqa: E402  (docs/_ext is not a package)
import table_text  # noqa: E402


def _records(bits: float, means: dict[str, tuple[float, ...]], rate: float = 0.3,
             steps: int = 1500) -> list[dict]:
  """One record a seed of each family on one rung, recon bits/dim as given."""
  return [{"quantizer": q, "num_codebooks": int(bits) // 4, "codebook_size": 16, "seed": seed,
           "bits_per_position": bits, "recon_bits_per_dim": value, "rate_bits_per_dim": rate,
           "rate_unigram_bits_per_dim": rate / 2, "num_train_steps": steps}
          for q, values in means.items() for seed, value in enumerate(values)]


def test_a_family_is_ahead_only_beyond_both_spreads_and_wins_only_ahead_of_all():
  records = _records(16, {"dvq": (5.0, 5.2), "vq": (5.5, 5.7), "lfq": (5.2, 5.8)})
  rows = claims.rung(records, 16)
  assert [r["quantizer"] for r in rows] == ["dvq", "lfq", "vq"]  # means 5.1, 5.5, 5.6
  np.testing.assert_allclose([r["std"] for r in rows], [0.1414, 0.4243, 0.1414], atol=1e-4)
  # dvq - vq: gap 0.5 > 0.28; dvq - lfq: gap 0.4 < 0.57.
  assert claims.ahead(rows[0], rows[2]) and not claims.ahead(rows[0], rows[1])
  assert claims.winner(rows) is None
  assert claims.winner([rows[0], rows[2]]) == "dvq"
  assert claims.winner(rows[1:2]) == "lfq"


def test_dvq_versus_each_family_lists_the_rates_where_it_is_ahead_behind_or_level():
  records = (_records(16, {"dvq": (5.0, 5.1), "vq": (5.5, 5.6), "mvq": (5.0, 5.2)}, rate=0.33)
             + _records(64, {"dvq": (4.0, 4.1), "mvq": (3.5, 3.6)}, rate=1.33))
  versus = {e["quantizer"]: e for e in claims.dvq_versus(records)}
  assert list(versus) == ["vq", "mvq"]
  assert versus["vq"]["ahead"] == [(16, 0.33)] and not versus["vq"]["behind"]
  assert versus["mvq"]["level"] == [(16, 0.33)] and versus["mvq"]["behind"] == [(64, 1.33)]


@pytest.mark.parametrize("dvq, mvq, verdict", [
    ((3.0, 3.1), (5.0, 5.1), "held"),        # 39% lower, far beyond the spread
    ((4.5, 4.6), (5.0, 5.1), "partly"),      # ahead, 10% lower
    ((4.9, 5.2), (5.0, 5.1), "not held"),    # level
    ((5.3, 5.4), (5.0, 5.1), "not held")])   # behind
def test_the_33_percent_claim_against_mvq_and_the_best_other_family(dvq, mvq, verdict):
  records = _records(72, {"dvq": dvq, "mvq": mvq, "fsq": (5.5, 5.6), "dvq_learned": (1.0, 1.1)})
  by_claim = {c["claim"]: c for c in claims.paper_claims(records)}
  baseline = by_claim["33% better than MVQ (the paper's VQVAE)"]
  assert baseline["verdict"] == verdict
  np.testing.assert_allclose(baseline["measured"], 1 - np.mean(dvq) / np.mean(mvq))
  # The best other family leaves the depthwise variants out: mvq (5.05) beats fsq (5.55).
  assert by_claim["33% better than the best other family (mvq)"]["verdict"] == verdict
  assert claims.paper_claims(records, bits=16) == []  # no DVQ point on that rung


def test_the_pixelsnail_claim_adds_the_learned_prior_rate_or_else_the_unigram_one():
  records = _records(72, {"dvq": (4.0, 4.0)}, rate=1.0)  # unigram rate 0.5: 11% of the bound
  (claim,) = claims.paper_claims(records)
  assert (claim["code"], claim["rate"], claim["verdict"]) == ("unigram prior", 0.5, "not held")
  np.testing.assert_allclose(claim["measured"], 0.5 / 4.5)
  prior = {"quantizer": "dvq", "bits_per_position": 72, "rate_prior_bits_per_dim": 0.1}
  (claim,) = claims.paper_claims(records, [prior, {**prior, "bits_per_position": 16}])
  assert (claim["code"], claim["verdict"]) == ("learned prior", "partly")  # 2.4%
  np.testing.assert_allclose(claim["measured"], 0.1 / 4.1)


def test_orderings_at_two_lengths_rank_correlation_and_pairs_in_the_same_order():
  families = {"dvq": (5.0, 5.2), "vq": (5.4, 5.4), "lfq": (5.3, 5.9), "fsq": (6.0, 6.0)}
  short = _records(16, families) + _records(64, {"dvq": (4.0,), "mvq": (4.5,)})
  long = (_records(16, {"dvq": (4.9,), "vq": (5.0,), "lfq": (4.8,), "fsq": (5.5,)}, steps=6000)
          + _records(64, {"dvq": (3.0,), "mvq": (3.5,), "rvq": (3.1,)}, steps=6000))
  rows, rungs = steps_check.compare_orderings(short, long)
  assert [(r["quantizer"], r["short_rank"], r["long_rank"]) for r in rows] == [
      ("lfq", 3, 1), ("dvq", 1, 2), ("vq", 2, 3), ("fsq", 4, 4), ("dvq", 1, 1), ("mvq", 2, 2)]
  assert rows[0]["short"] == pytest.approx(5.6) and rows[0]["short_seeds"] == 2
  assert (rows[0]["short_steps"], rows[0]["long_steps"]) == (1500, 6000)
  # Ranks (1, 2, 3, 4) against (2, 3, 1, 4): Pearson of the ranks; 4 of 6 pairs keep order.
  expected = np.corrcoef([1, 2, 3, 4], [2, 3, 1, 4])[0, 1]
  # Ahead at 1,500 steps (gap > std + std): dvq of vq and fsq, vq of fsq; lfq (5.6 +- 0.42) is
  # level with all three. Only lfq changes place at 6,000 steps: every pair ahead keeps its order.
  assert rungs[0] == {"bits_per_position": 16, "num_families": 4,
                      "spearman": pytest.approx(expected), "pairwise_agreement": 4 / 6,
                      "ahead_pairs": 3, "ahead_pairs_kept": 3}
  assert rows[1]["short_std"] == pytest.approx(np.std([5.0, 5.2], ddof=1))
  # One seed a point: std 0, so every pair with different means is ahead.
  assert rungs[1]["num_families"] == 2 and rungs[1]["pairwise_agreement"] == 1.0
  assert (rungs[1]["ahead_pairs"], rungs[1]["ahead_pairs_kept"]) == (1, 1)


def test_priors_go_to_the_base_seed_points_of_the_chosen_rungs_with_one_latent_grid(capsys):
  config = config_files.load("configs/rate_distortion.py:full")
  records = [{"quantizer": q, "seed": seed, "bits_per_position": bits}
             for q in ("dvq", "dvq_2level", "vq") for seed in (0, 1) for bits in (16, 64)]
  with config.unlocked():
    config.prior_bits = (16,)
  assert priors.chosen(config, records) == [
      {"quantizer": "dvq", "seed": 0, "bits_per_position": 16},
      {"quantizer": "vq", "seed": 0, "bits_per_position": 16}]
  assert "no prior for dvq_2level" in capsys.readouterr().out
  with config.unlocked():
    config.prior_bits = ("a lot",)
  with pytest.raises(rate_distortion.grid.ConfigError, match="config.prior_bits"):
    priors.prior_bits(config)


def _fake_training(monkeypatch) -> tuple[list[str], list[str]]:
  """Fakes the training of points and priors: each writes the eval.json that marks it finished,
  with numbers of its own (its count so far), and is listed, points first, then priors."""
  from dvq_jax.prior import train as prior_train  # pylint: disable=import-outside-toplevel
  from dvq_jax.vqvae import train  # pylint: disable=import-outside-toplevel
  trained, trained_priors = [], []

  def fake_point(cfg, workdir):
    trained.append(pathlib.Path(workdir).name)
    result = {"step": cfg.num_train_steps,
              **{key: float(len(trained)) for key in rate_distortion.records.METRIC_KEYS}}
    _write(pathlib.Path(workdir), "eval.json", result)
    return result

  def fake_prior(cfg, workdir):
    trained_priors.append(pathlib.Path(workdir).name)
    result = {"step": cfg.num_train_steps, "rate_prior_bits_per_dim": len(trained_priors) / 10,
              "elbo_bits_per_dim": 2.0}
    _write(pathlib.Path(workdir), "eval.json", result)
    return result

  monkeypatch.setattr(train, "train_and_evaluate", fake_point)
  monkeypatch.setattr(prior_train, "train_and_evaluate", fake_prior)
  return trained, trained_priors


def test_sharded_priors_train_each_chosen_prior_once_and_only_the_last_run_writes_the_table(
    tmp_path, monkeypatch):
  # The full grid in two shards, training faked (each run writes the eval.json that marks it
  # finished): a shard trains the priors shard_names gives it on the points finished by then,
  # the rerun of a shard the rest of its share, and the unsharded run reads every one back.
  from dvq_jax.prior import train as prior_train
  from dvq_jax.vqvae import train

  _, trained = _fake_training(monkeypatch)
  config = config_files.load("configs/rate_distortion.py:full")
  config.prior_bits = (16, 72)
  grid = rate_distortion.points(config)
  configs = [rate_distortion.point_config(config, p) for p in grid]
  shares = [priors.shard_names(config, grid, configs, 2, i) for i in (0, 1)]
  everything = priors.shard_names(config, grid, configs, 1, 0)
  assert len(everything) == 18 and shares[0] | shares[1] == everything
  assert not shares[0] & shares[1]
  rung = {p.name: rate_distortion.grid.bits_per_position(c) for p, c in zip(grid, configs)}
  for bits, count in ((16, 10), (72, 8)):  # vq and svq only at 16; dvq_2level gets none
    assert [sum(rung[n] == bits for n in share) for share in shares] == [count // 2] * 2
  config.num_shards = 2
  done = []
  for index in (0, 1):
    config.shard_index = index
    rate_distortion.run(config, str(tmp_path))
    done.append(set(trained) - set().union(*done))
    assert not (tmp_path / "rd_priors.json").exists()
  # Shard 0 ran before shard 1 had trained its points: its priors on those were left.
  assert done[0] < shares[0] and done[1] == shares[1]
  config.shard_index = 0
  rate_distortion.run(config, str(tmp_path))
  assert sorted(trained) == sorted(everything)  # each once
  config.num_shards = 1
  monkeypatch.setattr(prior_train, "train_and_evaluate", lambda *a: pytest.fail("retrained"))
  monkeypatch.setattr(train, "train_and_evaluate", lambda *a: pytest.fail("retrained"))
  rate_distortion.run(config, str(tmp_path))
  table = json.loads((tmp_path / "rd_priors.json").read_text())
  assert {r["prior_workdir"] for r in table} == {f"priors/{n}" for n in everything}


def test_a_run_takes_the_points_and_priors_an_earlier_runs_tables_hold_and_trains_the_rest(
    tmp_path, monkeypatch):
  # Training faked, each run with its own numbers: a first run writes its tables; a second, in
  # an empty workdir with records_from = those tables less one point and one prior, trains just
  # that point, the point of the missing prior (the prior reads its checkpoint) and the prior.
  from dvq_jax.vqvae import train

  trained, trained_priors = _fake_training(monkeypatch)
  config = config_files.load("configs/rate_distortion.py:full")
  config.rungs, config.seeds, config.prior_bits = (16, 72), 1, (16, 72)
  first = rate_distortion.run(config, str(tmp_path / "first"))
  first_priors = json.loads((tmp_path / "first" / "rd_priors.json").read_text())
  assert len(first) == 20 and len(first_priors) == 18  # dvq_2level gets no prior
  dropped_point, dropped_prior = "dvq_2level_L4_K16_seed0", "mvq_L8_K512_seed0"
  name = lambda r: rate_distortion.Point(*(r[k] for k in priors.POINT_KEYS)).name  # noqa: E731
  tables = tmp_path / "tables"
  _write(tables, "rd.json", [r for r in first if name(r) != dropped_point])
  _write(tables, "rd_priors.json", [r for r in first_priors if name(r) != dropped_prior])
  trained.clear()
  trained_priors.clear()
  config.records_from = str(tables)
  second = rate_distortion.run(config, str(tmp_path / "second"))
  assert sorted(trained) == sorted([dropped_point, dropped_prior])
  assert trained_priors == [dropped_prior]
  assert [name(r) for r in second] == [name(r) for r in first]
  kept = [(a, b) for a, b in zip(first, second) if name(a) not in trained]
  assert len(kept) == 18 and all(a == b for a, b in kept)
  second_priors = json.loads((tmp_path / "second" / "rd_priors.json").read_text())
  assert [name(r) for r in second_priors] == [name(r) for r in first_priors]
  assert [r for r in second_priors if name(r) != dropped_prior] == [
      r for r in first_priors if name(r) != dropped_prior]
  # Records of another config, or priors of another length, are refused before any training;
  # a collect_only pass keeps every record of the tables, the point of the missing prior too.
  monkeypatch.setattr(train, "train_and_evaluate", lambda *a: pytest.fail("trained"))
  config.collect_only = True
  collected = rate_distortion.run(config, str(tmp_path / "collect"))
  assert [name(r) for r in collected] == [name(r) for r in first if name(r) != dropped_point]
  assert json.loads((tmp_path / "collect" / "rd.json").read_text()) == collected
  config.collect_only = False
  long = config_files.load("configs/rate_distortion.py:full,long")
  long.records_from = str(tables)
  with pytest.raises(rate_distortion.grid.ConfigError, match="num_train_steps = 1500"):
    rate_distortion.run(long, str(tmp_path / "long"))
  config.prior.num_train_steps = 500
  with pytest.raises(rate_distortion.grid.ConfigError, match="prior.num_train_steps is 500"):
    rate_distortion.run(config, str(tmp_path / "third"))
  config.records_from = str(tmp_path / "nothing")
  with pytest.raises(rate_distortion.grid.ConfigError, match="has no rd.json"):
    rate_distortion.run(config, str(tmp_path / "third"))


def test_the_4x_steps_variant_trains_each_family_on_two_rungs_once():
  full = config_files.load("configs/rate_distortion.py:full")
  check = config_files.load("configs/rate_distortion.py:full,check")
  points = rate_distortion.points(check)
  assert check.base.num_train_steps == 4 * full.base.num_train_steps == 6000
  assert {p.seed for p in points} == {check.base.seed}
  rungs = {}
  for p in points:
    bits = rate_distortion.grid.bits_per_position(rate_distortion.point_config(check, p))
    rungs.setdefault(p.quantizer, []).append(bits)
  assert rungs.pop("vq") == rungs.pop("svq") == [16]
  assert rungs and all(bits == [16, 72] for bits in rungs.values()), rungs
  assert set(rungs) | {"vq", "svq"} == set(full.quantizers) and len(points) == 20
  # Every point is the :full grid's point of the same name, at the longer length.
  assert {p.name for p in points} <= {p.name for p in rate_distortion.points(full)}


def test_the_long_grid_is_the_full_grid_at_4x_the_steps_and_holds_the_checks_runs():
  full = config_files.load("configs/rate_distortion.py:full")
  check = config_files.load("configs/rate_distortion.py:full,check")
  long = config_files.load("configs/rate_distortion.py:full,long")
  assert rate_distortion.points(long) == rate_distortion.points(full) and long.seeds == 3
  assert (long.base.num_train_steps, long.base.eval_every_steps) == (6000, 6000)
  # A check run is read back as the long grid's point: the same name, the same config.
  configs = {p.name: rate_distortion.point_config(long, p) for p in rate_distortion.points(long)}
  for p in rate_distortion.points(check):
    assert rate_distortion.point_config(check, p).to_dict() == configs[p.name].to_dict()


def test_an_older_rd_json_reads_with_its_rung_steps_and_config_from_the_study_config(tmp_path):
  # rd.json records written before records carried bits_per_position, num_train_steps and
  # config: the comparison and the page complete them from the study's config.json.
  full = config_files.load("configs/rate_distortion.py:full")
  (tmp_path / "config.json").write_text(full.to_json_best_effort())
  result = {key: 1.0 for key in rate_distortion.records.METRIC_KEYS}
  chosen = [p for p in rate_distortion.points(full)
            if p.quantizer in ("rvq", "fsq", "dvq_2level", "vq") and p.seed == 1]
  records = [rate_distortion.records.point_record(
      full, p, rate_distortion.point_config(full, p), result) for p in chosen]
  _write(tmp_path, "rd.json", [{key: r[key] for key in r
                                if key not in rate_distortion.records.DERIVED_KEYS}
                               for r in records])
  assert steps_check.short_records(str(tmp_path)) == records
  rvq = next(r for r in records if r["quantizer"] == "rvq" and r["num_codebooks"] == 2)
  assert (rvq["bits_per_position"], rvq["num_train_steps"]) == (16.0, 1500)  # 2 x 2 stages x 4
  assert rvq["config"] == {"quantizer": "rvq", "num_codebooks": 2, "codebook_size": 16,
                           "codebook_dim": 32, "equal_width": True, "seed": 1}
  fsq = next(r for r in records if r["quantizer"] == "fsq" and r["num_codebooks"] == 2)
  assert fsq["bits_per_position"] == 16.0 and fsq["config"]["fsq_levels"] == [8, 6, 5]
  # A record that has the keys keeps them.
  assert rate_distortion.complete_records(full, [{**rvq, "num_train_steps": 6000}])[0][
      "num_train_steps"] == 6000
  (tmp_path / "config.json").unlink()
  with pytest.raises(rate_distortion.grid.ConfigError, match="config.compare_with"):
    steps_check.short_records(str(tmp_path))


def _write(folder: pathlib.Path, name: str, payload) -> None:
  folder.mkdir(parents=True, exist_ok=True)
  (folder / name).write_text(json.dumps(payload))


def test_the_page_says_how_far_the_grid_is_and_shows_the_rungs_that_have_every_run(
    tmp_path, monkeypatch):
  monkeypatch.setattr(table_text, "IMAGES", tmp_path)
  tables = results_tables.TABLES
  full = config_files.load("configs/rate_distortion.py:full")
  expected = len(rate_distortion.points(full))
  for grid in ("full", "long"):
    assert f"0 of its {expected} runs" in tables[f"rate_distortion_{grid}_status"]()
    assert not tables[f"rate_distortion_{grid}_rungs"]()
    assert not tables[f"rate_distortion_{grid}_dvq"]()
    assert "does not have all its runs" in tables[f"rate_distortion_{grid}_claims"]()
  assert "No code priors yet" in tables["rate_distortion_full_priors"]()
  assert "has not run yet" in tables["rate_distortion_full_steps"]()
  folder = tmp_path / "rate_distortion_full"
  records = []
  for i, p in enumerate(rate_distortion.points(full)):
    bits = rate_distortion.grid.bits_per_position(rate_distortion.point_config(full, p))
    # DVQ 0.5 bits/dim ahead of every family on every rung, a small spread over seeds.
    recon = 7.0 - 0.02 * bits - (0.5 if p.quantizer == "dvq" else 0.0) + 0.01 * p.seed
    records.append({**p._asdict(), "bits_per_position": bits, "recon_bits_per_dim": recon,
                    "rate_bits_per_dim": bits / 48, "rate_unigram_bits_per_dim": bits / 60,
                    "num_train_steps": 1500, "seed": p.seed, "index": i})
  _write(folder, "rd.json", records[:5])
  assert f"5 of its {expected} runs" in tables["rate_distortion_full_status"]()
  assert "no rung has all of its runs yet" in tables["rate_distortion_full_status"]()
  # Every run of the paper's rung and one more: that rung's tables and the claims render.
  paper = [r for r in records if r["bits_per_position"] == 72]
  _write(folder, "rd.json", paper + records[:1])
  status = tables["rate_distortion_full_status"]()
  assert f"{len(paper) + 1} of its {expected} runs are in" in status
  assert "(72 bits a position)" in status
  rungs = tables["rate_distortion_full_rungs"]()
  assert rungs.count("winner **dvq**") == 1 and rungs.startswith("**72 bits a position")
  assert tables["rate_distortion_full_claims"]().count("**partly**") == 2
  _write(folder, "rd.json", [{key: r[key] for key in r
                              if key not in ("bits_per_position", "num_train_steps")}
                             for r in records])  # as an older rd.json: from the config
  assert f"All {expected} runs" in tables["rate_distortion_full_status"]()
  assert "1500 steps" in tables["rate_distortion_full_status"]()
  rungs = tables["rate_distortion_full_rungs"]()
  assert rungs.count("winner **dvq**") == 8  # DVQ's rungs; those of 4 and 12 have vq and svq
  assert rungs.count("no family ahead of all others") == 2
  versus = tables["rate_distortion_full_dvq"]().splitlines()
  assert len(versus) == 2 + 10 and all(line.endswith("| - | - |") for line in versus[2:])
  table = tables["rate_distortion_full_claims"]()
  assert table.count("**partly**") == 2 and "**not held**" in table  # 0.5 of ~5.7: 9%
  # The long grid reads its own folder, at its own steps.
  _write(tmp_path / "rate_distortion_long", "rd.json",
         [{**r, "num_train_steps": 6000} for r in records])
  assert "6000 steps" in tables["rate_distortion_long_status"]()
  assert tables["rate_distortion_long_rungs"]().count("winner **dvq**") == 8
  # Priors on some of the 18 chosen points: the table says how many are in.
  prior = {**records[0], "elbo_bits_per_dim": 7.0, "elbo_unigram_bits_per_dim": 6.9,
           "rate_prior_bits_per_dim": 0.2, "elbo_prior_bits_per_dim": 6.8}
  _write(folder, "rd_priors.json", [prior, prior])
  assert "*2 of the 18 priors on 16 and 72 bits" in tables["rate_distortion_full_priors"]()
