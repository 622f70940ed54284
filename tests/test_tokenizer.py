"""The tokenizer against the VQ-VAE it wraps, its errors, and the tokenize CLI."""

import json

import numpy as np
import pytest

from dvq_jax import tokenize
from dvq_jax import tokenizer as tokenizer_lib
from dvq_jax.errors import ConfigError
from dvq_jax.training import checkpointing
from dvq_jax.vqvae import likelihoods
from tests import prior_fixtures


@pytest.mark.parametrize("quantizer,num_codebooks", [("dvq", 2), ("vq", 1)])
def test_encode_decode_match_the_model(tmp_path, quantizer, num_codebooks):
  workdir = prior_fixtures.vqvae_workdir(tmp_path, quantizer)
  tok = tokenizer_lib.Tokenizer.from_workdir(str(workdir), batch_size=4)
  assert (tok.num_codebooks, tok.codebook_size, tok.grid) == (num_codebooks, 16, (4, 4))
  assert tok.image_shape == prior_fixtures.IMAGE_SHAPE and tok.checkpoint_step == 3
  assert tok.checkpoint_digest == checkpointing.state_digest(tok.params)
  images = np.random.default_rng(1).integers(0, 256, (7, 16, 16, 3), dtype=np.uint8)
  codes = tok.encode(images)  # 7 images over batches of 4: the last one padded
  model = tok.model
  expected = np.asarray(model.apply({"params": tok.params}, images, method=model.encode))
  assert codes.dtype == np.int32 and codes.shape == (7, 4, 4, num_codebooks)
  np.testing.assert_array_equal(codes, expected.reshape(codes.shape))
  head = tok.decode_head(codes)
  expected_head = model.apply({"params": tok.params}, expected, method=model.decode)
  np.testing.assert_allclose(head, expected_head, rtol=1e-5, atol=1e-5)
  mean = np.asarray(likelihoods.mean_image(tok.likelihood, expected_head, 3))
  decoded = tok.decode(codes)
  assert decoded.dtype == np.uint8
  assert np.max(np.abs(decoded.astype(float) - np.round(mean))) <= 1  # float rounding ties
  assert np.mean(decoded == np.round(mean)) > 0.99


def test_bad_workdir_and_codes_give_one_line_errors(tmp_path):
  with pytest.raises(ConfigError, match="config.json does not exist"):
    tokenizer_lib.Tokenizer.from_workdir(str(tmp_path))
  workdir = prior_fixtures.vqvae_workdir(tmp_path)
  with pytest.raises(ConfigError, match="step = 9 has no checkpoint"):
    tokenizer_lib.Tokenizer.from_workdir(str(workdir), step=9)
  empty = tmp_path / "empty"
  empty.mkdir()
  (empty / "config.json").write_text((workdir / "config.json").read_text())
  with pytest.raises(ConfigError, match="no checkpoint"):
    tokenizer_lib.Tokenizer.from_workdir(str(empty))
  tok = tokenizer_lib.Tokenizer.from_workdir(str(workdir))
  with pytest.raises(ValueError, match=r"shape \(batch, 4, 4, 2\)"):
    tok.decode(np.zeros((1, 4, 4), np.int32))
  with pytest.raises(ValueError, match=r"\[0, K = 16\)"):
    tok.decode(np.full((1, 4, 4, 2), 16, np.int32))
  with pytest.raises(ValueError, match="uint8"):
    tok.encode(np.zeros((1, 16, 16, 3), np.float32))


def test_tokenize_cli_writes_both_splits(tmp_path):
  workdir = prior_fixtures.vqvae_workdir(tmp_path)
  output = tmp_path / "out" / "codes.npz"
  output.parent.mkdir()
  tokenize.tokenize(str(workdir), str(output))
  codes = np.load(output)
  meta = json.loads((tmp_path / "out" / "codes.json").read_text())
  assert codes["train"].shape == (24, 4, 4, 2) and codes["test"].shape == (10, 4, 4, 2)
  assert codes["train"].dtype == np.int16
  tok = tokenizer_lib.Tokenizer.from_workdir(str(workdir))
  images = np.load(tmp_path / "images.npz")["test"]
  np.testing.assert_array_equal(codes["test"], tok.encode(images))
  assert meta["codebook_size"] == 16 and meta["num_codebooks"] == 2 and meta["grid"] == [4, 4]
  assert meta["quantizer"] == "dvq" and meta["checkpoint_step"] == 3
  assert meta["dataset"].startswith("npz:")


def test_codes_by_codebook_splits_svq_positions_into_groups(tmp_path):
  tok = tokenizer_lib.Tokenizer.from_workdir(str(prior_fixtures.vqvae_workdir(tmp_path, "svq")))
  assert tok.num_codebooks == 1
  codes = np.arange(16).reshape(1, 4, 4, 1)
  grouped = tok.codes_by_codebook(codes)  # L = 2 groups of 8 positions, row-major
  np.testing.assert_array_equal(grouped[0, :, 0], np.arange(8))
  np.testing.assert_array_equal(grouped[0, :, 1], np.arange(8, 16))
