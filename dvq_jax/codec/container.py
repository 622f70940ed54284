"""The .dvqz file format: a versioned, checksummed header followed by the range coder's words.

Layout (little-endian; format version 2):

  offset    size  field
  0         8     magic b"DVQCODEC"
  8         2     format version (uint16) = 2
  10        1     mode: 0 = lossless, 1 = lossy
  11        1     reserved, 0
  12        4     image count N (uint32), >= 1
  16        6     height, width, channels (uint16 each), >= 1
  22        2     batch size B the encoder padded to (uint16), 1..1024; the decoder uses the same
  24        32    sha256 of the VQ-VAE checkpoint's params (the tokenizer's digest)
  56        32    sha256 of the prior checkpoint's params
  88        4     CRC32 of the decoded images, uint8 (N, H, W, C) in C order
  92        4     payload length in bytes (uint32, a multiple of 4)
  96        4     CRC32 of the payload
  100       2     length P of the prior workdir path (uint16)
  102       4     length Q of the image names (uint32)
  106       P     the prior workdir the file was written with, UTF-8 (a default for decompress)
  106+P     Q     the input images' file names, UTF-8, one per image joined by "\\n" (Q = 0: none,
                  e.g. images from an .npz)
  106+P+Q   4     CRC32 of bytes [0, 106+P+Q)
  110+P+Q   ...   payload: the range coder's uint32 words

Checked in this order, each failure a `CodecError` with a one-line message before anything is
decoded or allocated: magic (and a file too short for it: truncated), lengths, the header CRC,
the version, then every field's bounds (a header can pass its CRC and still be forged), the
payload's length and CRC.
"""

import dataclasses
import struct
import zlib

from dvq_jax.errors import ConfigError

MAGIC = b"DVQCODEC"
FORMAT_VERSION = 2
MODES = ("lossless", "lossy")
_FIXED = struct.Struct("<8sHBBI3HH32s32sIIIHI")
MAX_BATCH_SIZE = 1024  # images coded together; bounds what a forged header can allocate
_MAX_NAMES_BYTES = 1 << 30


class CodecError(ConfigError):
  """A file that cannot be decoded here: not ours, truncated, corrupted or from other models."""


@dataclasses.dataclass(frozen=True)
class Header:
  """What a file records about how it was made; `payload_bytes`/`payload_crc` describe the rest."""
  mode: str
  count: int
  image_shape: tuple[int, int, int]
  batch_size: int
  vqvae_digest: bytes
  prior_digest: bytes
  images_crc: int
  prior_workdir: str
  names: tuple[str, ...] = ()  # the input files' names, or () (see `check_names`)
  payload_bytes: int = 0
  payload_crc: int = 0


def images_crc(images) -> int:
  """CRC32 of a uint8 image array's bytes in C order."""
  return zlib.crc32(memoryview(images).cast("B")) & 0xFFFFFFFF


def check_names(names, count: int) -> tuple[str, ...]:
  """`names` if they are `count` distinct plain file names (no folder part, no line break), or ().

  Raises:
    CodecError: names that could not be written back as files of one folder.
  """
  names = tuple(names)
  if not names:
    return ()
  if len(names) != count or len(set(names)) != count:
    raise CodecError(f"{len(names)} distinct image names for {count} images; give one per image")
  for name in names:
    if not name or name in (".", "..") or any(c in name for c in "/\\\n\0"):
      raise CodecError(f"image name {name!r} is not a plain file name")
  return names


def pack(header: Header, payload: bytes) -> bytes:
  """Header + payload -> the file's bytes."""
  path = header.prior_workdir.encode("utf-8")
  names = "\n".join(check_names(header.names, header.count)).encode("utf-8")
  fixed = _FIXED.pack(
      MAGIC, FORMAT_VERSION, MODES.index(header.mode), 0, header.count, *header.image_shape,
      header.batch_size, header.vqvae_digest, header.prior_digest, header.images_crc,
      len(payload), zlib.crc32(payload) & 0xFFFFFFFF, len(path), len(names))
  head = fixed + path + names
  return head + struct.pack("<I", zlib.crc32(head) & 0xFFFFFFFF) + payload


def unpack(data: bytes) -> tuple[Header, bytes]:
  """The file's bytes -> (header, payload), checked in the order the module docstring gives.

  Raises:
    CodecError: the bytes are not a dvq_jax codec file, are truncated or longer than recorded,
      fail a checksum, are of another format version, or hold a field out of bounds.
  """
  data = bytes(data)
  if len(data) < len(MAGIC):
    raise CodecError(f"truncated file: {len(data)} bytes, shorter than a header; pass a whole"
                     " file written by `python -m dvq_jax.codec compress`")
  if data[:len(MAGIC)] != MAGIC:
    raise CodecError("not a dvq_jax codec file (bad magic bytes); pass a file written by"
                     " `python -m dvq_jax.codec compress`")
  if len(data) < _FIXED.size + 4:
    raise CodecError(f"truncated file: {len(data)} bytes is shorter than the header")
  (_, version, mode, _, count, height, width, channels, batch_size, vqvae_digest, prior_digest,
   crc, payload_bytes, payload_crc, path_bytes, names_bytes) = _FIXED.unpack_from(data)
  end = _FIXED.size + path_bytes + min(names_bytes, _MAX_NAMES_BYTES)
  if names_bytes > _MAX_NAMES_BYTES or len(data) < end + 4:
    raise CodecError(f"truncated file: {len(data)} bytes is shorter than its header")
  (header_crc,) = struct.unpack_from("<I", data, end)
  if zlib.crc32(data[:end]) & 0xFFFFFFFF != header_crc:
    raise CodecError("corrupted file: the header checksum does not match")
  if version != FORMAT_VERSION:
    raise CodecError(f"file format version {version} is not supported (this dvq_jax reads"
                     f" version {FORMAT_VERSION}); decompress it with the dvq_jax that wrote it")
  for field, value, ok in (("mode", mode, mode < len(MODES)), ("image count", count, count >= 1),
                           ("image size", (height, width, channels), min(height, width,
                                                                          channels) >= 1),
                           ("batch size", batch_size, 1 <= batch_size <= MAX_BATCH_SIZE),
                           ("payload length", payload_bytes, payload_bytes % 4 == 0)):
    if not ok:
      raise CodecError(f"corrupted file: the header's {field} {value} is out of bounds")
  try:
    names = data[_FIXED.size + path_bytes:end].decode("utf-8")
    names = check_names(names.split("\n") if names else (), count)
  except (UnicodeDecodeError, CodecError) as e:
    raise CodecError(f"corrupted file: the header's image names are invalid ({e})") from None
  payload = data[end + 4:]
  if len(payload) < payload_bytes:
    raise CodecError(f"truncated file: {len(payload)} of {payload_bytes} payload bytes present")
  if len(payload) > payload_bytes:
    raise CodecError(f"corrupted file: {len(payload) - payload_bytes} bytes after the payload")
  if zlib.crc32(payload) & 0xFFFFFFFF != payload_crc:
    raise CodecError("corrupted file: the payload checksum does not match")
  header = Header(
      mode=MODES[mode], count=count, image_shape=(height, width, channels),
      batch_size=batch_size, vqvae_digest=vqvae_digest, prior_digest=prior_digest,
      images_crc=crc, prior_workdir=data[_FIXED.size:_FIXED.size + path_bytes].decode(
          "utf-8", "replace"),
      names=names, payload_bytes=payload_bytes, payload_crc=payload_crc)
  return header, payload
