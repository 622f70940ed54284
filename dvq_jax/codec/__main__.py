r"""`python -m dvq_jax.codec compress|decompress`: images <-> .dvqz files.

  python -m dvq_jax.codec compress --prior_workdir=P --input=images.npz --output=F.dvqz \
      [--mode=lossless|lossy]
  python -m dvq_jax.codec decompress --input=F.dvqz --output=decoded.npz [--prior_workdir=P]

--input/--output: an .npz with key `images` (uint8 (N, H, W, C)) or a folder of image files of
the model's size (decompress writes 000000.png, ...). decompress uses the prior workdir
recorded in the file unless --prior_workdir is given. Bad input, a file that is not ours, is
truncated or corrupted, or was made with other checkpoints: one-line `error:` and exit 2.
"""

import os
import sys
import time

from absl import app
from absl import flags
from absl import logging

from dvq_jax.errors import ConfigError

_PRIOR_WORKDIR = flags.DEFINE_string("prior_workdir", None, "The code prior's --workdir.")
_INPUT = flags.DEFINE_string("input", None, "compress: .npz or image folder; decompress: .dvqz.")
_OUTPUT = flags.DEFINE_string("output", None, "compress: .dvqz; decompress: .npz or folder.")
_MODE = flags.DEFINE_enum("mode", "lossless", ["lossless", "lossy"], "What compress stores.")
_COMMANDS = ("compress", "decompress")


def _fail(message: str) -> None:
  print(f"error: {message}", file=sys.stderr)
  sys.exit(2)


def run(command: str) -> str:
  """Runs one command with the parsed flags; returns the summary line it prints."""
  from dvq_jax import codec  # after flag parsing: importing JAX is slow
  from dvq_jax.codec import files
  start = time.perf_counter()
  if command == "compress":
    if not _PRIOR_WORKDIR.value:
      raise ConfigError("--prior_workdir is required for compress, e.g. --prior_workdir=/tmp/prior")
    from dvq_jax import prior
    loaded = prior.load(_PRIOR_WORKDIR.value)
    images = files.read_images(_INPUT.value, loaded.tokenizer.image_shape[-1])
    data = codec.compress(images, loaded, mode=_MODE.value,
                          workdir=os.path.abspath(_PRIOR_WORKDIR.value))
    with open(_OUTPUT.value, "wb") as f:
      f.write(data)
    dims = images.size
  else:
    try:
      with open(_INPUT.value, "rb") as f:
        data = f.read()
    except OSError as e:
      raise ConfigError(f"cannot read --input={_INPUT.value} ({e.strerror})") from None
    images = codec.decompress(data, _PRIOR_WORKDIR.value)
    files.write_images(_OUTPUT.value, images)
    dims = images.size
  seconds = time.perf_counter() - start
  return (f"{command}: {len(images)} images, {len(data)} bytes, {8 * len(data) / dims:.4f}"
          f" bits/dim, {seconds:.1f} s -> {_OUTPUT.value}")


def main(argv):
  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  if len(argv) != 2 or argv[1] not in _COMMANDS:
    _fail(f"give one command, compress or decompress (got {argv[1:]})")
  for name, flag in (("input", _INPUT), ("output", _OUTPUT)):
    if not flag.value:
      _fail(f"--{name} is required")
  try:
    print(run(argv[1]))
  except ConfigError as e:  # CodecError included
    _fail(str(e))


if __name__ == "__main__":
  app.run(main)
