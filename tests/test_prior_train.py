"""The code prior end to end: main.run on a tiny VQ-VAE's codes, eval.json, exact resume,
prior.load (what the codec uses) and sampling."""

import json
import math

import numpy as np
import pytest
from PIL import Image

from dvq_jax import figures
from dvq_jax import prior
from dvq_jax import sample
from dvq_jax.errors import ConfigError
from dvq_jax.main import run
from dvq_jax.training import checkpointing
from tests import config_files
from tests import prior_fixtures


def _config(vqvae_workdir, **overrides):
  return config_files.load_with("configs/prior.py:small", vqvae_workdir=str(vqvae_workdir),
                                 **overrides)


@pytest.mark.slow  # three compiled programs (encoder, prior step, sampler): ~30 s idle
def test_train_eval_load_and_sample(tmp_path):
  vqvae_workdir = prior_fixtures.vqvae_workdir(tmp_path)
  workdir = tmp_path / "prior"
  result = run(_config(vqvae_workdir, order="codebook_major"), str(workdir))
  saved = json.loads((workdir / "eval.json").read_text())
  assert saved["step"] == 4 and saved["num_examples"] == 10
  keys = ("rate_prior_bits_per_dim", "rate_unigram_bits_per_dim", "rate_bits_per_dim",
          "recon_bits_per_dim", "elbo_bits_per_dim", "nll_nats_per_code")
  for key in keys:
    assert np.isfinite(saved[key]) and saved[key] == pytest.approx(result[key])
  dims, tokens = 16 * 16 * 3, 4 * 4 * 2
  assert saved["rate_bits_per_dim"] == pytest.approx(tokens * math.log2(16) / dims)
  assert saved["elbo_bits_per_dim"] == pytest.approx(saved["recon_bits_per_dim"]
                                                     + saved["rate_prior_bits_per_dim"])
  assert len(saved["prior_bits_per_code"]) == 2
  # 4 steps from a uniform start: the prior is still close to log2 K bits per code.
  assert saved["nll_nats_per_code"] == pytest.approx(math.log(16), rel=0.05)
  codes = np.load(workdir / "codes.npz")
  assert codes["train"].shape == (24, 4, 4, 2) and codes["test"].shape == (10, 4, 4, 2)

  loaded = prior.load(str(workdir))
  assert loaded.num_tokens == tokens and loaded.codebook_of_token.tolist()[:17] == [0] * 16 + [1]
  assert loaded.checkpoint_step == 4
  state = checkpointing.Checkpointer(str(workdir), 3).restore_arrays(4)
  assert loaded.checkpoint_digest == checkpointing.state_digest(state["params"])
  assert loaded.tokenizer.checkpoint_digest == json.loads(
      (workdir / "codes.json").read_text())["checkpoint_digest"]
  test_tokens = loaded.to_sequence(codes["test"])
  np.testing.assert_array_equal(loaded.from_sequence(test_tokens), codes["test"])
  log_probs = loaded.log_probs(test_tokens)
  nll = -np.take_along_axis(log_probs, test_tokens[..., None], -1).sum()
  assert nll / math.log(2) / (10 * dims) == pytest.approx(saved["rate_prior_bits_per_dim"],
                                                          rel=1e-5)
  cache = loaded.init_cache(10)
  step_rows = []
  for t in range(loaded.num_tokens):
    row, cache = loaded.step(cache, test_tokens[:, t - 1] if t else np.zeros(10, np.int32), t)
    step_rows.append(np.asarray(row))
  np.testing.assert_allclose(np.stack(step_rows, 1), log_probs, atol=2e-5)

  output = tmp_path / "out" / "samples.png"
  output.parent.mkdir()  # outputs go into an existing folder
  drawn = sample.write_samples(str(workdir), str(output), num_samples=5, seed=1)
  assert sample.panel_label(loaded) == ("decoded by the dvq VQ-VAE (2 of K = 16 codes a position);"
                                        " prior at step 4, codebook_major")
  assert drawn["codes"].shape == (5, 4, 4, 2) and drawn["images"].shape == (5, 16, 16, 3)
  stored = np.load(tmp_path / "out" / "samples.npz")
  np.testing.assert_array_equal(stored["images"], drawn["images"])
  np.testing.assert_array_equal(stored["images"], loaded.tokenizer.decode(stored["codes"]))
  figure = np.asarray(Image.open(output).convert("RGB"))
  scale = figures.display_scale(16, 16)
  for image in drawn["images"]:  # each sample once in the grid, upscaled nearest-neighbour
    big = image.repeat(scale, 0).repeat(scale, 1)
    windows = np.lib.stride_tricks.sliding_window_view(figure, big.shape)[..., 0, :, :, :]
    assert (windows == big).all(axis=(2, 3, 4)).sum() == 1


@pytest.mark.parametrize("likelihood", ["logistic_mixture", "context_logistic_mixture"])
def test_recon_comes_from_the_vqvaes_eval_json_at_the_same_step(tmp_path, likelihood):
  vqvae_workdir = prior_fixtures.vqvae_workdir(tmp_path, likelihood=likelihood)
  (vqvae_workdir / "eval.json").write_text(json.dumps({"step": 3, "recon_bits_per_dim": 4.25}))
  result = run(_config(vqvae_workdir, num_train_steps=1, eval_every_steps=1),
               str(tmp_path / "prior"))
  assert result["recon_bits_per_dim"] == 4.25
  assert result["elbo_bits_per_dim"] == pytest.approx(4.25 + result["rate_prior_bits_per_dim"])
  # A context head's NLL is a compressor's cost (neighbours known): its numbers say so.
  labelled = {"context_recon_bits_per_dim", "context_elbo_bits_per_dim"}
  if likelihood == "context_logistic_mixture":
    assert {key: result[key] for key in labelled} == {
        "context_recon_bits_per_dim": 4.25,
        "context_elbo_bits_per_dim": result["elbo_bits_per_dim"]}
  else:
    assert not labelled & set(result)


@pytest.mark.slow  # three short runs
def test_resume_is_bit_identical(tmp_path):
  vqvae_workdir = prior_fixtures.vqvae_workdir(tmp_path, "vq")
  # Constant learning rate: a cosine's shape depends on num_train_steps, which differs here.
  overrides = {"model.dropout": 0.1, "lr_schedule": "constant"}  # dropout keys resume too
  straight, resumed = tmp_path / "straight", tmp_path / "resumed"
  run(_config(vqvae_workdir, **overrides), str(straight))
  run(_config(vqvae_workdir, num_train_steps=2, **overrides), str(resumed))
  run(_config(vqvae_workdir, **overrides), str(resumed))
  digests = [checkpointing.Checkpointer(str(w), 3).restore_arrays(4) for w in (straight, resumed)]
  assert checkpointing.state_digest(digests[0]) == checkpointing.state_digest(digests[1])


def test_bad_prior_config_and_workdir(tmp_path):
  with pytest.raises(ConfigError, match="config.vqvae_workdir is empty"):
    run(_config(""), str(tmp_path / "p"))
  with pytest.raises(ConfigError, match="not divisible by config.model.heads"):
    run(_config(tmp_path, **{"model.width": 10, "model.heads": 4}), str(tmp_path))
  with pytest.raises(ConfigError, match="config.json does not exist"):
    prior.load(str(tmp_path))
