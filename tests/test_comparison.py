"""An honest comparison (issue 10): loss reduction, equal-width baselines, the unigram code rate
and the rate-distortion study, on tiny models."""

import json

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from dvq_jax import data as data_lib
from dvq_jax import metrics
from dvq_jax import rate_distortion
from dvq_jax import vqvae
from dvq_jax.errors import ConfigError
from dvq_jax.prior import train as prior_train
from dvq_jax.rate_distortion import steps_check
from dvq_jax.training import sharding
from dvq_jax.vqvae import evaluate
from dvq_jax.vqvae import model_fields
from dvq_jax.vqvae import train
from dvq_jax.vqvae.bottleneck import latent_channels
from tests import config_files
from tests.vqvae_fixtures import IMAGE_SHAPE
from tests.vqvae_fixtures import init
from tests.vqvae_fixtures import tiny_config
from tests.vqvae_fixtures import tiny_images

# The official code adds one per-element mean per codebook, each over D features (tiny_config:
# L = 2, D = 4), so mean_elements = sum_features / D for every quantizer.
QUANTIZED_FEATURES = {"dvq": 4, "mvq": 4, "vq": 4, "svq": 4}


@pytest.mark.parametrize("quantizer", vqvae.COSINE_QUANTIZERS)
def test_mean_elements_divides_the_quantizer_loss_and_its_gradient_by_the_feature_count(
    quantizer):
  images = tiny_images()
  config = tiny_config(quantizer)
  summed = vqvae.build_model(config, IMAGE_SHAPE)
  config.quantizer_loss_reduction = "mean_elements"
  averaged = vqvae.build_model(config, IMAGE_SHAPE)
  params = init(summed, images)

  def quant_losses(model, p):
    out = model.apply({"params": p}, images).quant
    return out.loss, (out.codebook_loss, out.commitment_loss, out.codes)

  (loss_s, (cb_s, cm_s, codes_s)), grad_s = jax.value_and_grad(
      lambda p: quant_losses(summed, p), has_aux=True)(params)
  (loss_m, (cb_m, cm_m, codes_m)), grad_m = jax.value_and_grad(
      lambda p: quant_losses(averaged, p), has_aux=True)(params)
  features = QUANTIZED_FEATURES[quantizer]
  assert float(loss_s) > 0
  np.testing.assert_allclose(loss_s / loss_m, features, rtol=1e-5)
  np.testing.assert_allclose(cb_s / cb_m, features, rtol=1e-5)
  np.testing.assert_allclose(cm_s / cm_m, features, rtol=1e-5)
  np.testing.assert_array_equal(codes_s, codes_m)  # the forward pass is unchanged
  for g_s, g_m in zip(jax.tree.leaves(grad_s), jax.tree.leaves(grad_m)):
    np.testing.assert_allclose(g_m * features, g_s, rtol=1e-4, atol=1e-7)
  assert float(jnp.abs(grad_s["quantize"]["codebooks"]).sum()) > 0


def test_unknown_loss_reduction_and_equal_width_are_config_errors():
  config = tiny_config()
  config.quantizer_loss_reduction = "mean"
  with pytest.raises(ConfigError, match="config.quantizer_loss_reduction = 'mean'"):
    vqvae.build_model(config)
  config = ml_collections.ConfigDict({**tiny_config().to_dict(), "equal_width": 1})
  with pytest.raises(ConfigError, match="config.equal_width"):
    vqvae.build_model(config)


@pytest.mark.parametrize("quantizer, latent, codebooks, decoder_in", [
    ("dvq", 8, (2, 16, 4), 8), ("mvq", 8, (2, 16, 8), 16), ("vq", 8, (1, 16, 8), 8),
    ("svq", 8, (2, 16, 8), 8)])
def test_equal_width_gives_every_quantizer_an_encoder_output_of_l_times_d(
    quantizer, latent, codebooks, decoder_in):
  config = tiny_config(quantizer)  # L = 2, D = 4
  config.equal_width = True
  model = vqvae.build_model(config, IMAGE_SHAPE)
  params = init(model, tiny_images())
  encoder_out = params["encoder"]
  last_conv = encoder_out[sorted(k for k in encoder_out if k.startswith("Conv"))[-1]]
  assert last_conv["kernel"].shape[-1] == latent
  assert params["quantize"]["codebooks"].shape == codebooks
  assert params["decoder"]["Conv_0"]["kernel"].shape[-2] == decoder_in
  config.equal_width = False  # the paper's baselines: D-wide latents for all but dvq
  params = init(vqvae.build_model(config, IMAGE_SHAPE), tiny_images())
  assert params["quantize"]["codebooks"].shape[-1] == 4


# sample 5: the histogram of training images 0, 2, 5, 7 and 10 (evenly spaced), in a padded batch.
@pytest.mark.parametrize("quantizer,sample", [("dvq", 0), ("vq", 0), ("svq", 0), ("dvq", 5)])
def test_unigram_rate_matches_a_numpy_code_length(tmp_path, quantizer, sample):
  config = tiny_config(quantizer)
  config.likelihood = "mse"
  config.num_recon_images = 0
  config.unigram_train_examples = sample
  config.batch_size = 4  # 13 train and 6 test images: both splits end in a padded batch
  rng = np.random.default_rng(1)
  train_images = rng.integers(0, 256, (13, *IMAGE_SHAPE), dtype=np.uint8)
  test_images = rng.integers(0, 256, (6, *IMAGE_SHAPE), dtype=np.uint8)
  data = data_lib.ImageData("tiny", IMAGE_SHAPE, 13, 6, train_images, test_images)
  model = vqvae.build_model(config, IMAGE_SHAPE)
  params = init(model, tiny_images())
  result = evaluate.Evaluator(config, model, data, sharding.make_mesh(), str(tmp_path)).run(
      params, 0)

  def codes(images):  # (images * positions, L) as numpy
    c = np.asarray(model.apply({"params": params}, jnp.asarray(images), method=model.encode))
    if quantizer == "svq":  # group l = l-th contiguous block of the 4 row-major positions
      return c.reshape(len(images), 2, -1).transpose(0, 2, 1).reshape(-1, 2)
    return c.reshape(-1, 1 if quantizer == "vq" else 2)

  sampled = train_images[[0, 2, 5, 7, 10]] if sample else train_images
  train_codes, test_codes = codes(sampled), codes(test_images)
  bits = 0.0
  for l in range(train_codes.shape[1]):
    counts = np.bincount(train_codes[:, l], minlength=config.codebook_size)
    probs = (counts + 0.5) / (counts.sum() + config.codebook_size / 2)
    bits -= np.log2(probs[test_codes[:, l]]).sum()
  expected = bits / (6 * np.prod(IMAGE_SHAPE))
  np.testing.assert_allclose(result["rate_unigram_bits_per_dim"], expected, rtol=1e-6)
  np.testing.assert_allclose(result["elbo_unigram_bits_per_dim"],
                             result["recon_bits_per_dim"] + expected, rtol=1e-6)
  # A histogram of 13 images cannot beat the uniform prior by much, nor cost far more.
  assert 0 < result["rate_unigram_bits_per_dim"] < 2 * result["rate_bits_per_dim"]


def test_an_evaluation_encodes_as_many_batches_whatever_the_training_split_size(
    tmp_path, monkeypatch):
  passes = []

  def counted(function):
    def wrapper(*args):
      jax.debug.callback(lambda: passes.append(function.__name__))
      return function(*args)
    return wrapper

  for name in ("eval_stats", "encode_code_counts"):  # every encoder pass of an evaluation
    monkeypatch.setattr(evaluate.objective, name, counted(getattr(evaluate.objective, name)))
  config = tiny_config("dvq")
  config.num_recon_images = 0
  config.batch_size = 4
  model = vqvae.build_model(config, IMAGE_SHAPE)
  params = init(model, tiny_images())
  rng = np.random.default_rng(0)
  test_images = rng.integers(0, 256, (6, *IMAGE_SHAPE), dtype=np.uint8)

  def passes_of_one_evaluation(num_train: int, sample: int) -> int:
    config.unigram_train_examples = sample
    train_images = rng.integers(0, 256, (num_train, *IMAGE_SHAPE), dtype=np.uint8)
    data = data_lib.ImageData("tiny", IMAGE_SHAPE, num_train, 6, train_images, test_images)
    evaluator = evaluate.Evaluator(config, model, data, sharding.make_mesh(), str(tmp_path))
    passes.clear()
    evaluator.run(params, 0)
    jax.effects_barrier()
    return len(passes)

  # 2 test batches + 16 sampled training images in 4 batches, for 40 or 400 training images.
  assert passes_of_one_evaluation(40, 16) == passes_of_one_evaluation(400, 16) == 2 + 4
  assert passes_of_one_evaluation(40, 0) == 2 + 10  # the whole split, when asked for


def test_lower_convex_hull():
  hull = rate_distortion.lower_convex_hull
  assert hull([0.0, 1.0, 2.0], [2.0, 1.0, 0.0]) == [0, 2]  # collinear middle point dropped
  assert hull([0.0, 1.0, 2.0], [2.0, 0.5, 0.0]) == [0, 1, 2]
  assert hull([1.0, 1.0, 0.0], [3.0, 1.0, 2.0]) == [2, 1]
  assert hull([0.0, 1.0, 2.0, 3.0], [2.0, 1.0, 0.9, 1.5]) == [0, 1, 2]  # more rate, worse: cut
  assert hull([0.0], [1.0]) == [0] and hull([], []) == []


def test_grid_points_and_their_configs():
  config = config_files.load("configs/rate_distortion.py")
  points = rate_distortion.points(config)
  assert len(points) == 4 * 3 * config.seeds
  assert len({p.name for p in points}) == len(points)
  rates = {}
  for p in points:
    point_config = rate_distortion.point_config(config, p)
    model = vqvae.build_model(point_config, (32, 32, 3))
    # Every point quantizes the same 16-channel encoder output.
    assert latent_channels(model.quantizer, model.num_codebooks, model.codebook_dim) == 16
    assert point_config.num_train_steps == config.base.num_train_steps
    rates.setdefault(p.quantizer, set()).add(model_fields.codes_per_image(
        point_config, (32, 32, 3)) * np.log2(p.codebook_size) / 3072)
  assert min(rates["dvq"]) < max(rates["vq"]) and min(rates["vq"]) < max(rates["dvq"])
  config.grid.dvq = ((3, 16),)
  with pytest.raises(ConfigError, match="config.grid.dvq"):
    rate_distortion.points(config)


def test_full_grid_spans_the_rate_range_with_overlapping_families():
  config = config_files.load("configs/rate_distortion.py:full")
  points = rate_distortion.points(config)
  assert {p.seed for p in points} == {config.base.seed + i for i in range(3)}
  rates = {}
  for p in points:
    point_config = rate_distortion.point_config(config, p)
    bits = metrics.rate_bits_per_dim(model_fields.codes_per_image(point_config, (32, 32, 3)),
                                     model_fields.code_alphabet_size(point_config), 3072)
    rates.setdefault(p.quantizer, set()).add(round(bits, 6))
    if point_config.quantizer in ("vq", "svq"):
      assert point_config.codebook_size <= 65536
  assert set(rates) == {"dvq", "mvq", "rvq", "fsq", "lfq", "bsq", "simvq", "dvq_learned",
                        "dvq_2level", "vq", "svq"}
  assert all(len(r) >= 5 for r in rates.values()), rates
  assert max(min(r) for r in rates.values()) < 0.06  # every family starts near 0.05 bits/dim
  # The paper's regime, L = 8 codebooks of K = 512 (1.5 bits/dim), is a rung of every family
  # that scales bits linearly (fsq's 8x8x8 grid has exactly 512 codes).
  assert all(1.5 in rates[family] for family in rates if family not in ("vq", "svq", "dvq_2level"))
  for family, r in rates.items():
    if family not in ("vq", "svq"):
      assert max(r) >= 2.0, family
    # The families overlap: at least 2 points of each lie in every other family's rate range.
    for other, o in rates.items():
      assert sum(min(o) <= a <= max(o) for a in r) >= 2, (family, other)
  with config.unlocked():
    config.grid.fsq = ((2, 100),)
  with pytest.raises(ConfigError, match="fsq K = 100"):
    rate_distortion.points(config)


@pytest.mark.slow
def test_a_study_trains_families_with_their_own_fields(tmp_path):
  config = config_files.load("configs/rate_distortion.py:small")
  config.quantizers = ("dvq_2level", "lfq")
  config.families = ml_collections.ConfigDict({"dvq_2level": {"quantizer": "dvq", "levels": 2}})
  config.grid.dvq_2level = ((2, 4),)
  config.grid.lfq = ((2, 8),)
  records = rate_distortion.run(config, str(tmp_path))
  assert [r["quantizer"] for r in records] == ["dvq_2level", "lfq"]
  point_configs = [json.loads((tmp_path / f"{p.name}/config.json").read_text())
                   for p in rate_distortion.points(config)]
  assert point_configs[0]["levels"] == 2 and point_configs[1]["codebook_dim"] == 3
  # The demo's 32x32x3 patches on the small model's latent grid (h x w), L = 2.
  factor = 2**config.base.model.num_downsamples
  positions = (32 // factor) ** 2
  expected = [(positions + positions // 4) * 2 * 2, positions * 2 * 3]  # 2-level K = 4; lfq 3 bits
  np.testing.assert_allclose([r["rate_bits_per_dim"] for r in records],
                             np.array(expected) / 3072, rtol=1e-9)


@pytest.mark.slow
def test_small_study_writes_tables_and_plot_resumes_trains_priors_and_checks_the_steps(
    tmp_path, monkeypatch):
  config = config_files.load("configs/rate_distortion.py:small")
  config.quantizers = ("vq", "dvq")
  records = rate_distortion.run(config, str(tmp_path))
  assert [(r["quantizer"], r["num_codebooks"], r["codebook_size"]) for r in records] == [
      ("vq", 1, 16), ("dvq", 2, 4)]
  for r in records:
    assert set(r) == {*rate_distortion.RECORD_KEYS, "config"}
    np.testing.assert_allclose(r["elbo_unigram_bits_per_dim"],
                               r["recon_bits_per_dim"] + r["rate_unigram_bits_per_dim"])
    assert r["num_train_steps"] == config.base.num_train_steps
    # Its config: the point's own fields and those that differ from the base, as trained.
    point_config = json.loads((tmp_path / r["config_path"]).read_text())
    assert r["config"] == {key: point_config[key] for key in r["config"]}
    assert r["config"]["codebook_dim"] == config.latent_width // r["num_codebooks"]
    assert r["config"]["seed"] == r["seed"] and "batch_size" not in r["config"]
  assert [r["bits_per_position"] for r in records] == [4.0, 4.0]  # log2 16; 2 x log2 4
  assert json.loads((tmp_path / "rd.json").read_text()) == records
  rows = (tmp_path / "rd.csv").read_text().splitlines()
  assert rows[0] == ",".join(rate_distortion.RECORD_KEYS)
  assert rows[1].split(",")[-3:] == ["4.0", str(config.base.num_train_steps),
                                     "vq_L1_K16_seed0/config.json"]
  assert (tmp_path / "rd.png").stat().st_size > 1000
  # A finished point is read back, not trained again; collect_only skips unfinished ones.
  monkeypatch.setattr(train, "train_and_evaluate", lambda *a: pytest.fail("retrained a point"))
  assert rate_distortion.run(config, str(tmp_path)) == records
  config.quantizers = ("vq", "dvq", "mvq")
  config.collect_only = True
  assert rate_distortion.run(config, str(tmp_path)) == records
  # The code priors of the points on a rung: trained after the grid (not retrained), then read
  # back by collect_only.
  config.quantizers = ("vq", "dvq")
  config.collect_only = False
  config.prior_bits = (4,)
  assert rate_distortion.run(config, str(tmp_path)) == records
  priors = json.loads((tmp_path / "rd_priors.json").read_text())
  assert [(p["quantizer"], p["prior_workdir"]) for p in priors] == [
      ("vq", "priors/vq_L1_K16_seed0"), ("dvq", "priors/dvq_L2_K4_seed0")]
  for prior, record in zip(priors, records):
    assert set(prior) == set(rate_distortion.PRIOR_KEYS)
    result = json.loads((tmp_path / prior["prior_workdir"] / "eval.json").read_text())
    assert result["step"] == prior["num_train_steps"] == config.prior.num_train_steps
    assert prior["rate_prior_bits_per_dim"] == result["rate_prior_bits_per_dim"] > 0
    np.testing.assert_allclose(prior["elbo_prior_bits_per_dim"],
                               record["recon_bits_per_dim"] + prior["rate_prior_bits_per_dim"])
    # The prior run's own unigram rate is the point's: the same codes, the same histogram.
    np.testing.assert_allclose(result["rate_unigram_bits_per_dim"],
                               prior["rate_unigram_bits_per_dim"], rtol=1e-5)
  monkeypatch.setattr(prior_train, "train_and_evaluate", lambda *a: pytest.fail("retrained"))
  config.collect_only = True
  rate_distortion.run(config, str(tmp_path))
  assert json.loads((tmp_path / "rd_priors.json").read_text()) == priors
  # The 4x-steps check against this study: the order of the two families at both lengths.
  monkeypatch.undo()
  check = config_files.load("configs/rate_distortion.py:small,check")
  check.quantizers = ("vq", "dvq")
  check.compare_with = str(tmp_path)
  long = rate_distortion.run(check, str(tmp_path / "check"))
  assert [r["num_train_steps"] for r in long] == [4 * config.base.num_train_steps] * 2
  comparison = json.loads((tmp_path / "check" / "steps_check.json").read_text())
  short_recon = [r["recon_bits_per_dim"] for r in records]
  long_recon = [r["recon_bits_per_dim"] for r in long]
  rows = {row["quantizer"]: row for row in comparison["rows"]}
  assert [rows[q]["short"] for q in ("vq", "dvq")] == short_recon
  assert [rows[q]["long"] for q in ("vq", "dvq")] == long_recon
  same = (short_recon[0] < short_recon[1]) == (long_recon[0] < long_recon[1])
  assert comparison["rungs"] == [{"bits_per_position": 4.0, "num_families": 2,
                                  "spearman": pytest.approx(1.0 if same else -1.0),
                                  "pairwise_agreement": 1.0 if same else 0.0,
                                  "ahead_pairs": 1, "ahead_pairs_kept": int(same)}]
  csv_rows = (tmp_path / "check" / "steps_check.csv").read_text().splitlines()
  assert csv_rows[0] == ",".join(steps_check.ROW_KEYS) and len(csv_rows) == 3
