"""The .dvqz file format: a versioned, checksummed header followed by the range coder's words.

Layout (little-endian; format version 1):

  offset  size  field
  0       8     magic b"DVQCODEC"
  8       2     format version (uint16) = 1
  10      1     mode: 0 = lossless, 1 = lossy
  11      1     reserved, 0
  12      4     image count N (uint32)
  16      6     height, width, channels (uint16 each)
  22      2     batch size B the encoder padded to (uint16); the decoder must use the same
  24      32    sha256 of the VQ-VAE checkpoint's params (the tokenizer's digest)
  56      32    sha256 of the prior checkpoint's params
  88      4     CRC32 of the decoded images, uint8 (N, H, W, C) in C order
  92      4     payload length in bytes (uint32, a multiple of 4)
  96      4     CRC32 of the payload
  100     2     length P of the prior workdir path (uint16)
  102     P     the prior workdir the file was written with, UTF-8 (a default for decompress)
  102+P   4     CRC32 of bytes [0, 102+P)
  106+P   ...   payload: the range coder's uint32 words

Any mismatch -- magic, version, header CRC, length, payload CRC -- raises `CodecError` with a
one-line message before anything is decoded.
"""

import dataclasses
import struct
import zlib

from dvq_jax.errors import ConfigError

MAGIC = b"DVQCODEC"
FORMAT_VERSION = 1
MODES = ("lossless", "lossy")
_FIXED = struct.Struct("<8sHBBI3HH32s32sIIIH")


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
  payload_bytes: int = 0
  payload_crc: int = 0


def images_crc(images) -> int:
  """CRC32 of a uint8 image array's bytes in C order."""
  return zlib.crc32(memoryview(images).cast("B")) & 0xFFFFFFFF


def pack(header: Header, payload: bytes) -> bytes:
  """Header + payload -> the file's bytes."""
  path = header.prior_workdir.encode("utf-8")
  fixed = _FIXED.pack(
      MAGIC, FORMAT_VERSION, MODES.index(header.mode), 0, header.count, *header.image_shape,
      header.batch_size, header.vqvae_digest, header.prior_digest, header.images_crc,
      len(payload), zlib.crc32(payload) & 0xFFFFFFFF, len(path))
  head = fixed + path
  return head + struct.pack("<I", zlib.crc32(head) & 0xFFFFFFFF) + payload


def unpack(data: bytes) -> tuple[Header, bytes]:
  """The file's bytes -> (header, payload), checking magic, version, lengths and both CRCs.

  Raises:
    CodecError: the bytes are not a dvq_jax codec file, are of another format version, are
      truncated or longer than recorded, or fail a checksum.
  """
  data = bytes(data)
  if data[:len(MAGIC)] != MAGIC:
    raise CodecError("not a dvq_jax codec file (bad magic bytes); pass a file written by"
                     " `python -m dvq_jax.codec compress`")
  if len(data) < _FIXED.size + 4:
    raise CodecError(f"truncated file: {len(data)} bytes is shorter than the header")
  (_, version, mode, _, count, height, width, channels, batch_size, vqvae_digest, prior_digest,
   crc, payload_bytes, payload_crc, path_bytes) = _FIXED.unpack_from(data)
  if version != FORMAT_VERSION:
    raise CodecError(f"file format version {version} is not supported (this dvq_jax reads"
                     f" version {FORMAT_VERSION}); decompress it with the dvq_jax that wrote it")
  end = _FIXED.size + path_bytes
  if len(data) < end + 4:
    raise CodecError(f"truncated file: {len(data)} bytes is shorter than its header")
  (header_crc,) = struct.unpack_from("<I", data, end)
  if zlib.crc32(data[:end]) & 0xFFFFFFFF != header_crc or mode >= len(MODES):
    raise CodecError("corrupted file: the header checksum does not match")
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
      images_crc=crc, prior_workdir=data[_FIXED.size:end].decode("utf-8", "replace"),
      payload_bytes=payload_bytes, payload_crc=payload_crc)
  return header, payload
