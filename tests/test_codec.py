"""The codec on a real (tiny, untrained) VQ-VAE and code prior: exact lossless round trips on
photographs, the file size against the model's bits, lossy = the tokenizer's decode, the CLI."""

import os
import subprocess
import sys

import numpy as np
import pytest

from dvq_jax import codec
from dvq_jax import prior as prior_lib
from dvq_jax.codec import container
from dvq_jax.codec import files
from dvq_jax.vqvae import context
from dvq_jax.vqvae import likelihoods
from tests import codec_fixtures
from tests import prior_fixtures


@pytest.fixture(scope="module")
def workdirs(tmp_path_factory):
  tmp_path = tmp_path_factory.mktemp("codec")
  vqvae = prior_fixtures.vqvae_workdir(tmp_path)  # logistic_mixture head, dvq, L = 2
  return (codec_fixtures.prior_workdir(tmp_path, vqvae),
          codec_fixtures.prior_workdir(tmp_path, vqvae, seed=5, name="other_prior"))


@pytest.fixture(scope="module")
def loaded(workdirs):
  return prior_lib.load(str(workdirs[0]))


def test_lossless_round_trip_on_photos_costs_the_models_bits(loaded, workdirs):
  images = codec_fixtures.photo_crops(6)
  data = codec.compress(images, loaded, batch_size=4, workdir=str(workdirs[0]))
  np.testing.assert_array_equal(codec.decompress(data), images)  # the recorded workdir
  tokens = loaded.to_sequence(loaded.tokenizer.encode(images))
  log_probs = loaded.log_probs(tokens)
  code_bits = -np.take_along_axis(log_probs, tokens[..., None], -1).sum() / np.log(2)
  head = loaded.tokenizer.decode_head(loaded.from_sequence(tokens))
  pixel_bits = float(np.sum(likelihoods.nll("logistic_mixture", head, images))) / np.log(2)
  payload_bits = 8 * codec.read_header(data).payload_bytes
  assert 0.99 * (code_bits + pixel_bits) <= payload_bits <= 1.01 * (code_bits + pixel_bits) + 64
  assert len(data) - payload_bits // 8 < 200 + len(str(workdirs[0]))  # the header


def test_lossy_decode_equals_the_tokenizer_decode(loaded):
  images = codec_fixtures.photo_crops(3)
  decoded = codec.decompress(codec.compress(images, loaded, mode="lossy"), loaded)
  tokenizer = loaded.tokenizer
  np.testing.assert_array_equal(decoded, tokenizer.decode(tokenizer.encode(images)))


def test_another_prior_checkpoint_is_refused(loaded, workdirs):
  data = codec.compress(codec_fixtures.photo_crops(1), loaded, mode="lossy")
  with pytest.raises(codec.CodecError, match="prior checkpoint of sha256"):
    codec.decompress(data, str(workdirs[1]))


def _cli(*args):
  env = {**os.environ, "PYTHONPATH": os.getcwd()}
  return subprocess.run([sys.executable, "-m", "dvq_jax.codec", *args], capture_output=True,
                        text=True, env=env, timeout=600)


def test_cli_errors_are_one_line(tmp_path):
  not_ours = tmp_path / "x.dvqz"
  not_ours.write_bytes(b"hello, world")
  for args in (["decompress", f"--input={not_ours}", f"--output={tmp_path / 'y.npz'}"],
               ["decompress", f"--input={tmp_path / 'missing'}", "--output=y.npz"],
               ["compress", "--input=x.npz", "--output=y"],
               ["inflate", "--input=x", "--output=y"]):
    result = _cli(*args)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr


@pytest.mark.slow
def test_cli_round_trip_through_files(tmp_path, workdirs):
  images = codec_fixtures.photo_crops(3)
  np.savez(tmp_path / "in.npz", images=images)
  result = _cli("compress", f"--prior_workdir={workdirs[0]}", f"--input={tmp_path / 'in.npz'}",
                f"--output={tmp_path / 'f.dvqz'}")
  assert result.returncode == 0, result.stderr
  result = _cli("decompress", f"--input={tmp_path / 'f.dvqz'}", f"--output={tmp_path / 'out'}")
  assert result.returncode == 0, result.stderr
  np.testing.assert_array_equal(files.read_images(str(tmp_path / "out"), 3)[0], images)
  truncated = tmp_path / "t.dvqz"
  truncated.write_bytes((tmp_path / "f.dvqz").read_bytes()[:-7])
  result = _cli("decompress", f"--input={truncated}", f"--output={tmp_path / 'out2'}")
  assert result.returncode == 2 and "truncated" in result.stderr


@pytest.fixture(scope="module")
def context_loaded(tmp_path_factory):
  tmp_path = tmp_path_factory.mktemp("codec_context")
  vqvae = prior_fixtures.vqvae_workdir(tmp_path, noise=0.05,
                                       likelihood="context_logistic_mixture")
  return prior_lib.load(str(codec_fixtures.prior_workdir(tmp_path, vqvae)))


def test_context_head_round_trip_costs_the_models_bits(context_loaded, monkeypatch):
  images = codec_fixtures.photo_crops(5)
  tokenizer = context_loaded.tokenizer
  passes = []
  group_head = tokenizer.group_head
  monkeypatch.setattr(tokenizer, "group_head",
                      lambda *args: passes.append(args[-1]) or group_head(*args))
  data = codec.compress(images, context_loaded, batch_size=4)  # a padded last chunk
  assert passes == 2 * list(range(len(context.GROUPS)))  # one pass per group and chunk
  np.testing.assert_array_equal(codec.decompress(data, context_loaded), images)
  tokens = context_loaded.to_sequence(tokenizer.encode(images))
  log_probs = context_loaded.log_probs(tokens)
  code_bits = -np.take_along_axis(log_probs, tokens[..., None], -1).sum() / np.log(2)
  model = tokenizer.model
  base = tokenizer.decode_head(context_loaded.from_sequence(tokens))
  head = model.apply({"params": tokenizer.params}, base, images, method=model.conditioned_head)
  assert not np.allclose(head, base, atol=1e-3)  # the earlier groups do move the parameters
  pixel_bits = float(np.sum(likelihoods.nll(model.likelihood, head, images))) / np.log(2)
  payload_bits = 8 * codec.read_header(data).payload_bytes
  assert (code_bits + pixel_bits) * (1 - 1e-3) <= payload_bits
  assert payload_bits <= (code_bits + pixel_bits) * (1 + 1e-3) + 64
  damaged = bytearray(data)
  damaged[-5] ^= 0x10
  with pytest.raises(codec.CodecError, match="corrupted"):
    codec.decompress(bytes(damaged), context_loaded)
  header, payload = container.unpack(data)  # images that decode to something else
  wrong = container.pack(container.Header(**{**header.__dict__, "images_crc": 0}), payload)
  with pytest.raises(codec.CodecError, match="CRC32"):
    codec.decompress(wrong, context_loaded)
  lossy = codec.decompress(codec.compress(images[:2], context_loaded, mode="lossy"),
                           context_loaded)
  np.testing.assert_array_equal(lossy, tokenizer.decode(tokenizer.encode(images[:2])))
