"""compress / decompress: the codes under the code prior, then (lossless) every subpixel under the
VQ-VAE decoder's likelihood head, range-coded with `constriction`.

Symbols are coded in this order, chunk by chunk of `batch_size` images (the last chunk padded
with zero images and zero tokens, which are never coded): token t = 0 .. T-1 of every image in
the chunk, each under `prior.step`'s distribution given the earlier tokens; then, lossless only,
channel 0 of every pixel of the chunk, channel 1, ..., each under `likelihoods.channel_log_pmf`
given the codes and the earlier channels; a context head (`vqvae.context`) codes its pixel groups
one after another, channels 0, 1, ... of each group's pixels under its parameters given the
earlier groups. The encoder and the decoder run the one loop below
(`_code_chunk`) with the same buffers, so their probability tables are computed from identical
inputs by the same jitted functions; only the callback differs (write the known symbol, or read
it back).
"""

import hashlib
import math
import os
from collections.abc import Callable

import constriction
import jax.numpy as jnp
import numpy as np

from dvq_jax.codec import container
from dvq_jax.codec import tables
from dvq_jax.codec.container import CodecError
from dvq_jax.training.progress import Progress
from dvq_jax.vqvae import context
from dvq_jax.vqvae import likelihoods

DEFAULT_BATCH_SIZE = 64

_Code = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _family():
  return constriction.stream.model.Categorical(perfect=False)


def _load(prior):
  """A prior workdir (str) or an already loaded `dvq_jax.prior.load` result."""
  if isinstance(prior, str):
    from dvq_jax import prior as prior_lib  # only when a path is given: loading is slow
    return prior_lib.load(prior)
  return prior


def _digest(value) -> bytes:
  """A checkpoint digest (32 raw bytes, 64 hex digits, or any other string) -> 32 bytes."""
  if isinstance(value, bytes) and len(value) == 32:
    return value
  text = str(value)
  if len(text) == 64:
    try:
      return bytes.fromhex(text)
    except ValueError:
      pass
  return hashlib.sha256(text.encode("utf-8")).digest()


def _code_chunk(loaded, mode: str, tokens: np.ndarray, pixels: np.ndarray, count: int,
                code: _Code) -> None:
  """Runs the coding loop over one chunk; `code(counts, symbols) -> symbols` writes or reads.

  Args:
    loaded: the loaded prior (with its `.tokenizer`).
    mode: lossless | lossy.
    tokens: int32 `(B, T)`: the encoder's tokens, or zeros the decoder fills in. Rows >= count
      stay zero at both ends.
    pixels: uint8 `(B, H, W, C)`: the encoder's images, or zeros the decoder fills in. Lossy
      mode overwrites it with the decoded mean image at both ends.
    count: how many of the B rows are real images.
    code: the callback, given quantized tables `(n, A)` and the encoder's symbols `(n,)`.
  """
  batch = tokens.shape[0]
  cache = loaded.init_cache(batch)
  previous = np.zeros(batch, np.int32)
  for t in range(loaded.num_tokens):
    log_probs, cache = loaded.step(cache, jnp.asarray(previous), t)
    counts = tables.quantize(np.asarray(log_probs)[:count])
    tokens[:count, t] = code(counts, tokens[:count, t])
    previous = tokens[:, t].copy()
  tokenizer = loaded.tokenizer
  codes = loaded.from_sequence(jnp.asarray(tokens))
  if mode == "lossy":
    pixels[...] = np.asarray(tokenizer.decode(codes))
    return
  head = tokenizer.decode_head(codes)
  if tokenizer.likelihood not in likelihoods.CONTEXT_NAMES:
    _code_channels(tokenizer.likelihood, head, pixels, count, code)
    return
  for group in range(len(context.GROUPS)):
    known = jnp.asarray(tables.known_pixels(pixels, group))
    group_head = tokenizer.group_head(head, known, group)
    row, column = context.GROUPS[group]
    _code_channels(tokenizer.likelihood, group_head, pixels[:, row::2, column::2], count, code)


def _code_channels(likelihood: str, head, pixels: np.ndarray, count: int, code: _Code) -> None:
  """Channel 0 of every pixel of `pixels` (a view, written in place), then channel 1, ..."""
  for channel in range(pixels.shape[-1]):
    counts = tables.subpixel_counts(likelihood, head, pixels, channel, count)
    values = code(counts, pixels[:count, ..., channel].reshape(-1).astype(np.int32))
    pixels[:count, ..., channel] = values.reshape(pixels[:count, ..., channel].shape)


def _check_images(images, image_shape) -> np.ndarray:
  images = np.asarray(images)
  if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != tuple(image_shape):
    raise CodecError(
        f"images must be uint8 (N, {', '.join(map(str, image_shape))}) for this model, got"
        f" {images.dtype} {images.shape}; resize or convert them first")
  if not len(images):
    raise CodecError("no images to compress; pass at least one")
  return images


def compress(images, prior, *, mode: str = "lossless", batch_size: int | None = None,
             workdir: str | None = None, names=(), progress: bool = False) -> bytes:
  """Images -> the bytes of a .dvqz file (header + range-coded payload).

  Args:
    images: uint8 `(N, H, W, C)` of the model's image shape.
    prior: a prior workdir (`python -m dvq_jax.main --config=configs/prior.py --workdir=P`)
      or the object `dvq_jax.prior.load(P)` returned (reuse it to skip reloading). A path is
      recorded in the header as decompress's default.
    mode: "lossless" (decoded bit for bit) or "lossy" (only the codes; decodes to the head's
      mean image, i.e. `Tokenizer.decode(Tokenizer.encode(images))`).
    batch_size: images coded together (padded to it); default min(N, 64). Recorded in the
      header; only speed depends on it.
    workdir: the prior workdir recorded in the header as decompress's default; None records
      `prior` when it is a path, else nothing.
    names: the images' file names, recorded for decompress to write back (or none).
    progress: draw a progress line in images on stderr.

  Returns:
    The file's bytes; `decompress` reads them back.
  """
  if mode not in container.MODES:
    raise CodecError(f"mode {mode!r} is unknown; use one of {container.MODES}")
  loaded = _load(prior)
  tokenizer = loaded.tokenizer
  images = _check_images(images, tokenizer.image_shape)
  batch_size = batch_size or min(len(images), DEFAULT_BATCH_SIZE)
  if not 1 <= batch_size <= container.MAX_BATCH_SIZE:
    raise CodecError(f"batch_size = {batch_size} is outside [1, {container.MAX_BATCH_SIZE}]")
  names = container.check_names(names, len(images))
  encoder = constriction.stream.queue.RangeEncoder()
  family = _family()

  def write(counts, symbols):
    encoder.encode(np.ascontiguousarray(symbols, np.int32), family, counts)
    return symbols

  decoded = np.empty_like(images)
  bar = Progress(len(images), "compress", unit="image", enabled=progress)
  for start in range(0, len(images), batch_size):
    chunk = images[start:start + batch_size]
    count = len(chunk)
    pixels = np.zeros((batch_size,) + images.shape[1:], np.uint8)
    pixels[:count] = chunk
    tokens = np.array(loaded.to_sequence(tokenizer.encode(pixels)), np.int32)
    tokens[count:] = 0
    _code_chunk(loaded, mode, tokens, pixels, count, write)
    decoded[start:start + count] = pixels[:count]
    bar.update(count)
  bar.close()
  payload = np.ascontiguousarray(encoder.get_compressed(), "<u4").tobytes()
  header = container.Header(
      mode=mode, count=len(images), image_shape=tuple(images.shape[1:]), batch_size=batch_size,
      vqvae_digest=_digest(tokenizer.checkpoint_digest),
      prior_digest=_digest(loaded.checkpoint_digest), images_crc=container.images_crc(decoded),
      prior_workdir=workdir or (prior if isinstance(prior, str) else ""), names=names)
  return container.pack(header, payload)


def read_header(data: bytes) -> container.Header:
  """The checked header of a .dvqz file's bytes (raises CodecError on a bad file)."""
  return container.unpack(data)[0]


def _check_fits_in_memory(header: container.Header) -> None:
  """A forged count (the CRC only proves the header was written as it is) must not allocate."""
  size = header.count * math.prod(header.image_shape)
  try:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
  except (ValueError, OSError, AttributeError):  # not POSIX: no bound to check against
    return
  if size > memory // 2:
    raise CodecError(f"the file holds {header.count} images of {header.image_shape}"
                     f" ({size / 2**30:.1f} GiB), more than half this machine's memory; the header"
                     " is corrupted, or decompress it on a larger machine")


def decompress(data: bytes, prior=None, *, progress: bool = False) -> np.ndarray:
  """The bytes of a .dvqz file -> uint8 `(N, H, W, C)` images (`read_header(data).names` holds
  their file names, if the images came from files).

  Args:
    data: what `compress` returned.
    prior: the prior workdir or loaded prior it was compressed with; None uses the workdir
      recorded in the header.
    progress: draw a progress line in images on stderr.

  Raises:
    CodecError: the file is not ours, truncated, corrupted, made with other checkpoints, or
      decodes to images whose CRC differs from the recorded one (e.g. probabilities computed
      differently on another kind of machine).
  """
  header, payload = container.unpack(data)
  _check_fits_in_memory(header)
  if prior is None:
    if not header.prior_workdir:
      raise CodecError("the file records no prior workdir; pass the one it was compressed with"
                       " (--prior_workdir)")
    prior = header.prior_workdir
  loaded = _load(prior)
  tokenizer = loaded.tokenizer
  for what, recorded, here in (
      ("VQ-VAE", header.vqvae_digest, _digest(tokenizer.checkpoint_digest)),
      ("prior", header.prior_digest, _digest(loaded.checkpoint_digest))):
    if recorded != here:
      raise CodecError(
          f"the file was compressed with a {what} checkpoint of sha256 {recorded.hex()[:16]}..."
          f" but {prior if isinstance(prior, str) else 'the given prior'} has"
          f" {here.hex()[:16]}...; pass the prior workdir it was made with")
  if tuple(header.image_shape) != tuple(tokenizer.image_shape):
    raise CodecError(f"the file holds {header.image_shape} images but the model takes"
                     f" {tuple(tokenizer.image_shape)}")
  words = np.frombuffer(payload, "<u4").astype(np.uint32)
  decoder = constriction.stream.queue.RangeDecoder(words)
  family = _family()

  def read(counts, _):
    try:
      return np.asarray(decoder.decode(family, counts), np.int32)
    except (ValueError, RuntimeError, OverflowError) as e:  # an exhausted or invalid stream
      raise CodecError(f"corrupted file: the payload does not decode ({e})") from None

  images = np.zeros((header.count,) + tuple(header.image_shape), np.uint8)
  batch_size = header.batch_size
  bar = Progress(header.count, "decompress", unit="image", enabled=progress)
  for start in range(0, header.count, batch_size):
    count = min(batch_size, header.count - start)
    pixels = np.zeros((batch_size,) + tuple(header.image_shape), np.uint8)
    tokens = np.zeros((batch_size, loaded.num_tokens), np.int32)
    _code_chunk(loaded, header.mode, tokens, pixels, count, read)
    images[start:start + count] = pixels[:count]
    bar.update(count)
  bar.close()
  if container.images_crc(images) != header.images_crc:
    raise CodecError("the decoded images fail the file's CRC32 (the probabilities differ from"
                     " the compressing machine's, or the file is corrupted); nothing was written")
  return images
