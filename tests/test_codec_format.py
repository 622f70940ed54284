"""The codec on a toy tokenizer and prior (tests/codec_fakes.py): exact round trips for every
head, file size against the ideal code length, and every bad-file case."""

import struct
import zlib

import jax.numpy as jnp
import numpy as np
import pytest

from dvq_jax import codec
from dvq_jax.codec import container
from dvq_jax.codec import tables
from dvq_jax.vqvae import likelihoods
from tests.codec_fakes import FakePrior
from tests.codec_fakes import FakeTokenizer

# The toy tokenizer has per-pixel heads only; the context head is coded by tests/test_codec.py.
PER_PIXEL = tuple(n for n in likelihoods.NAMES if n not in likelihoods.CONTEXT_NAMES)


def _images(count=5, seed=0):
  rng = np.random.default_rng(seed)
  smooth = rng.integers(0, 256, (count, 2, 2, 1)).repeat(4, axis=1).repeat(4, axis=2).repeat(3, -1)
  images = np.clip(smooth + rng.integers(-20, 21, smooth.shape), 0, 255).astype(np.uint8)
  images[0, :4, :4] = rng.integers(0, 8, (4, 4, 3))  # a dark block ...
  images[0, 0, 0] = 0  # ... with edge values, whose bins take the tails
  return images


def _ideal_bits(prior, images):
  """-log2 p(codes) under the prior + -log2 p(images | codes) under the head, in float64."""
  tokens = prior.to_sequence(prior.tokenizer.encode(images))
  cache, bits = prior.init_cache(len(images)), 0.0
  previous = jnp.zeros(len(images), jnp.int32)
  for t in range(prior.num_tokens):
    log_probs, cache = prior.step(cache, previous, t)
    bits -= np.sum(np.take_along_axis(np.asarray(log_probs), tokens[:, t:t + 1], 1)) / np.log(2)
    previous = jnp.asarray(tokens[:, t])
  head = prior.tokenizer.decode_head(prior.from_sequence(tokens))
  pixel_bits = np.sum(np.asarray(likelihoods.nll(prior.tokenizer.likelihood, head, images)))
  return bits, bits + pixel_bits / np.log(2)


def _assert_within_the_claim(payload_bits: int, ideal_bits: float) -> None:
  """The documented claim: a file is within 0.02% of the model's -log2 probability, plus the
  range coder's final state (whole 32-bit words, at most 64 bits) whatever the file's size."""
  assert ideal_bits * (1 - 2e-4) <= payload_bits <= ideal_bits * (1 + 2e-4) + 64


@pytest.mark.parametrize("likelihood", PER_PIXEL)
def test_lossless_round_trip_is_exact_and_costs_the_ideal_bits(likelihood):
  prior = FakePrior(FakeTokenizer(likelihood))
  images = _images()
  data = codec.compress(images, prior, batch_size=2)  # 3 chunks, the last one padded
  np.testing.assert_array_equal(codec.decompress(data, prior), images)
  header = codec.read_header(data)
  assert (header.mode, header.count, header.image_shape) == ("lossless", 5, (8, 8, 3))
  _, ideal = _ideal_bits(prior, images)
  _assert_within_the_claim(8 * header.payload_bytes, ideal)


def test_lossy_stores_the_codes_only_and_decodes_the_mean():
  prior = FakePrior(FakeTokenizer())
  images = _images()
  data = codec.compress(images, prior, mode="lossy")
  decoded = codec.decompress(data, prior)
  np.testing.assert_array_equal(decoded, prior.tokenizer.decode(prior.tokenizer.encode(images)))
  code_bits, _ = _ideal_bits(prior, images)
  _assert_within_the_claim(8 * codec.read_header(data).payload_bytes, code_bits)


def test_quantize_keeps_every_value_encodable():
  rng = np.random.default_rng(0)
  with np.errstate(divide="ignore"):
    log_probs = np.log(rng.dirichlet(np.full(256, 0.01), size=50))  # many are 0: -inf
  log_probs[0] = np.nan
  counts = tables.quantize(log_probs)
  assert counts.dtype == np.float32 and counts.min() >= 1
  np.testing.assert_array_equal(counts.sum(axis=1), np.full(50, 2.0**tables.PRECISION_BITS))
  np.testing.assert_array_equal(counts[0], counts[0, 0])  # no finite entry: uniform ...
  assert counts[0].max() - counts[0].min() == 0  # ... exactly


def test_subpixel_tables_do_not_read_later_channels():
  tokenizer = FakeTokenizer()
  images = _images()
  head = tokenizer.decode_head(jnp.asarray(tokenizer.encode(images)))
  other = images.copy()
  other[..., 1:] = 255 - other[..., 1:]
  np.testing.assert_array_equal(tables.subpixel_counts("logistic_mixture", head, images, 1, 5),
                                tables.subpixel_counts("logistic_mixture", head, other, 1, 5))
  assert not np.array_equal(tables.subpixel_counts("logistic_mixture", head, images, 2, 5),
                            tables.subpixel_counts("logistic_mixture", head, other, 2, 5))


@pytest.fixture(scope="module")
def lossless_file():
  prior = FakePrior(FakeTokenizer())
  return prior, codec.compress(_images(3), prior)


def _error(data, prior):
  with pytest.raises(codec.CodecError) as info:
    codec.decompress(data, prior)
  message = str(info.value)
  assert "\n" not in message
  return message


def test_bad_files_give_one_line_errors(lossless_file):
  prior, data = lossless_file
  assert "not a dvq_jax codec file" in _error(b"\x89PNG\r\n\x1a\n" + data[8:], prior)
  assert "truncated" in _error(data[:-5], prior)
  assert "truncated" in _error(data[:40], prior)
  assert "corrupted" in _error(data + b"\0\0\0\0", prior)
  flipped = bytearray(data)
  flipped[-3] ^= 0x10  # a payload byte
  assert "payload checksum" in _error(bytes(flipped), prior)
  flipped = bytearray(data)
  flipped[13] ^= 0x01  # the image count
  assert "header checksum" in _error(bytes(flipped), prior)
  flipped = bytearray(data)
  flipped[9] ^= 0x80  # the version field: a damaged header, not a newer format
  assert "header checksum" in _error(bytes(flipped), prior)
  assert "truncated" in _error(data[:5], prior)
  assert "truncated" in _error(b"", prior)


def _forged(data: bytes, fmt: str, offset: int, value: int) -> bytes:
  """`data` with one fixed header field rewritten and the header CRC made to match: a header the
  CRC cannot catch (the layout is container.py's docstring)."""
  forged = bytearray(data)
  struct.pack_into(fmt, forged, offset, value)
  path_bytes, names_bytes = struct.unpack_from("<HI", forged, 100)
  end = 106 + path_bytes + names_bytes
  if end + 4 <= len(forged):  # else a length that points past the file: nothing to re-sign
    struct.pack_into("<I", forged, end, zlib.crc32(bytes(forged[:end])) & 0xFFFFFFFF)
  return bytes(forged)


@pytest.mark.parametrize("fmt, offset, value, message", [
    ("<H", 8, container.FORMAT_VERSION + 1, "version 3 is not supported"),
    ("<B", 10, 2, "mode 2 is out of bounds"),
    ("<I", 12, 0, "image count 0 is out of bounds"),
    ("<I", 12, 2**31, "more than half this machine's memory"),
    ("<H", 16, 0, "image size (0, 8, 3) is out of bounds"),
    ("<H", 20, 0, "image size (8, 8, 0) is out of bounds"),
    ("<H", 22, 0, "batch size 0 is out of bounds"),
    ("<H", 22, 65535, "batch size 65535 is out of bounds"),
    ("<I", 92, 6, "payload length 6 is out of bounds"),
    ("<I", 92, 2**32 - 4, "truncated file"),
    ("<I", 102, 2**31, "truncated file"),  # the names' length
    ("<I", 102, 3, "image names are invalid"),
])
def test_forged_header_fields_are_bounded_before_any_allocation(lossless_file, fmt, offset,
                                                                value, message):
  prior, data = lossless_file
  assert message in _error(_forged(data, fmt, offset, value), prior)


def test_other_checkpoints_are_refused(lossless_file):
  prior, data = lossless_file
  other_vqvae = FakePrior(FakeTokenizer(seed=1, digest="c" * 64))
  assert "VQ-VAE checkpoint" in _error(data, other_vqvae)
  other_prior = FakePrior(prior.tokenizer, digest="d" * 64)
  assert "prior checkpoint" in _error(data, other_prior)


def test_images_that_decode_differently_fail_the_crc(lossless_file):
  prior, data = lossless_file
  header, payload = container.unpack(data)
  wrong = container.pack(container.Header(**{**header.__dict__, "images_crc": 0}), payload)
  assert "CRC32" in _error(wrong, prior)


def test_bad_arguments():
  prior = FakePrior(FakeTokenizer())
  with pytest.raises(codec.CodecError, match="uint8"):
    codec.compress(np.zeros((2, 16, 16, 3), np.uint8), prior)
  with pytest.raises(codec.CodecError, match="mode"):
    codec.compress(_images(1), prior, mode="lossy-ish")
  with pytest.raises(codec.CodecError, match="no prior workdir"):
    codec.decompress(codec.compress(_images(1), prior))


@pytest.mark.parametrize("likelihood", PER_PIXEL)
def test_channel_conditionals_multiply_to_the_heads_likelihood(likelihood):
  rng = np.random.default_rng(3)
  images = rng.integers(0, 256, (2, 3, 4, 3)).astype(np.uint8)
  images[0, 0, 0] = (0, 255, 7)
  channels = likelihoods.num_head_channels(likelihood, 3, 4)
  head = jnp.asarray(rng.normal(0, 0.4, (2, 3, 4, channels)), jnp.float32)
  total = np.zeros(2)
  for channel in range(3):
    log_pmf = np.asarray(likelihoods.channel_log_pmf(likelihood, head, images, channel), np.float64)
    np.testing.assert_allclose(np.exp(log_pmf).sum(-1), 1.0, atol=1e-5)
    total += np.take_along_axis(log_pmf, images[..., channel:channel + 1], -1).sum((1, 2, 3))
  np.testing.assert_allclose(-total, likelihoods.nll(likelihood, head, images), rtol=1e-5)
