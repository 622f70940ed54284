"""The second stage on the new families: for a bsq, rfsq, rlfq or simvq VQ-VAE, the code prior
tokenizes the data set and trains on the codes, and the codec round-trips photographs through the
tokenizer and that prior bit for bit, at the cost the two models give them. (Their training and
evaluation runs are in test_vqvae_new_families.py; here freshly initialised params suffice.)"""

import json
import math

import numpy as np
import pytest

from dvq_jax import codec
from dvq_jax import prior as prior_lib
from dvq_jax.main import run
from dvq_jax.vqvae import likelihoods
from tests import codec_fixtures
from tests import config_files
from tests import prior_fixtures

# demo:small: L = 2 slices of D = 4, num_stages = 2, fsq_levels = (8, 5, 5, 5). The sign-code
# families take 2^D values a code whatever K is: K = 8 tells the two apart.
# name: (VQ-VAE config fields, code columns a position, values a code takes)
_FAMILIES = {
    "bsq": ({"quantizer": "bsq", "codebook_size": 8}, 2, 16),
    "rfsq": ({"quantizer": "rfsq"}, 4, 1000),
    "rlfq": ({"quantizer": "rlfq", "codebook_size": 8}, 4, 16),
    "simvq": ({"quantizer": "dvq", "codebook_parameterization": "simvq"}, 2, 16),
}


@pytest.mark.slow  # a tokenizer, a prior step and the codec compiled: ~20 s of CPU each
@pytest.mark.parametrize("name", sorted(_FAMILIES))
def test_family_codes_train_a_prior_and_round_trip_the_codec(tmp_path, name):
  fields, columns, alphabet = _FAMILIES[name]
  quantizer = fields["quantizer"]
  overrides = {k: v for k, v in fields.items() if k != "quantizer"}
  vqvae_workdir = prior_fixtures.vqvae_workdir(tmp_path, quantizer, **overrides)

  prior_workdir = tmp_path / "prior"
  result = run(config_files.load_with("configs/prior.py:small", vqvae_workdir=str(vqvae_workdir),
                                      num_train_steps=2, eval_every_steps=2),
               str(prior_workdir))
  metadata = json.loads((prior_workdir / "codes.json").read_text())
  assert (metadata["quantizer"], metadata["num_codebooks"]) == (quantizer, columns)
  assert metadata["codebook_size"] == alphabet
  codes = np.load(prior_workdir / "codes.npz")
  assert codes["train"].shape == (24, 4, 4, columns)
  assert 0 <= codes["train"].min() and codes["train"].max() < alphabet
  assert len(np.unique(codes["train"])) > 1  # the encoder's codes, not a constant
  dims = 16 * 16 * 3
  assert result["rate_bits_per_dim"] == pytest.approx(16 * columns * math.log2(alphabet) / dims)
  assert np.isfinite(result["rate_prior_bits_per_dim"])

  loaded = prior_lib.load(str(prior_workdir))
  images = codec_fixtures.photo_crops(3)
  tokens = loaded.to_sequence(loaded.tokenizer.encode(images))
  assert tokens.shape == (3, 16 * columns)
  data = codec.compress(images, loaded, batch_size=2)
  np.testing.assert_array_equal(codec.decompress(data, loaded), images)
  # The payload is what the two models say the codes and the pixels cost.
  code_nats = -np.take_along_axis(loaded.log_probs(tokens), tokens[..., None], -1).sum()
  head = loaded.tokenizer.decode_head(loaded.from_sequence(tokens))
  pixel_nats = float(np.sum(likelihoods.nll(loaded.tokenizer.likelihood, head, images)))
  model_bits = (code_nats + pixel_nats) / np.log(2)
  payload_bits = 8 * codec.read_header(data).payload_bytes
  assert 0.99 * model_bits <= payload_bits <= 1.01 * model_bits + 64
  lossy = codec.decompress(codec.compress(images, loaded, mode="lossy"), loaded)
  np.testing.assert_array_equal(lossy, loaded.tokenizer.decode(loaded.tokenizer.encode(images)))
