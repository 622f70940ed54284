"""A lossless and lossy image codec from a VQ-VAE and its code prior; files are `.dvqz`.

  data = codec.compress(images, "/tmp/prior", mode="lossless")   # uint8 (N, H, W, C) -> bytes
  images = codec.decompress(data)                                # bit for bit

CLI: `python -m dvq_jax.codec compress|decompress` (see `dvq_jax/codec/__main__.py`). The file
format is described in `dvq_jax/codec/container.py` and docs/codec.md.
"""

from dvq_jax.codec.coding import compress
from dvq_jax.codec.coding import decompress
from dvq_jax.codec.coding import read_header
from dvq_jax.codec.container import CodecError
from dvq_jax.codec.container import Header

__all__ = ["CodecError", "Header", "compress", "decompress", "read_header"]
