r"""`python -m dvq_jax.codec compress|decompress`: images <-> .dvqz files.

  python -m dvq_jax.codec compress --prior_workdir=P --input=images.npz --output=F.dvqz \
      [--mode=lossless|lossy]
  python -m dvq_jax.codec decompress --input=F.dvqz --output=decoded.npz [--prior_workdir=P]

--input/--output: an .npz with key `images` (uint8 (N, H, W, C)) or a folder of image files of
the model's size (decompress writes 000000.png, ...). compress records the absolute prior
workdir in the file; decompress uses it unless --prior_workdir is given. Bad input, a file that
is not ours, is truncated or corrupted, or was made with other checkpoints: one-line `error:`
and exit 2.
"""

import os
import sys
import time

from absl import app
from absl import flags
from absl import logging

from dvq_jax.errors import ConfigError

_COMMANDS = ("compress", "decompress")


def _define_flags() -> None:
  # Defined only when run as a program, so importing this module clashes with no other CLI.
  flags.DEFINE_string("prior_workdir", None, "The code prior's --workdir.")
  flags.DEFINE_string("input", None, "compress: .npz or image folder; decompress: .dvqz file.")
  flags.DEFINE_string("output", None, "compress: .dvqz file; decompress: .npz or folder.")
  flags.DEFINE_enum("mode", "lossless", ["lossless", "lossy"], "What compress stores.")


def run(command: str, input_path: str, output_path: str, *, prior_workdir: str | None = None,
        mode: str = "lossless") -> str:
  """Runs one command; returns the summary line the CLI prints.

  Raises:
    ConfigError: bad paths or images; CodecError (a ConfigError) for bad files.
  """
  from dvq_jax import codec  # pylint: disable=import-outside-toplevel  (JAX loads slowly)
  from dvq_jax import prior  # pylint: disable=import-outside-toplevel
  from dvq_jax.codec import files  # pylint: disable=import-outside-toplevel
  start = time.perf_counter()
  if command == "compress":
    if not prior_workdir:
      raise ConfigError("--prior_workdir is required for compress, e.g. --prior_workdir=/tmp/prior")
    loaded = prior.load(prior_workdir)
    images = files.read_images(input_path, loaded.tokenizer.image_shape[-1])
    data = codec.compress(images, loaded, mode=mode, workdir=os.path.abspath(prior_workdir))
    with open(output_path, "wb") as f:
      f.write(data)
  else:
    try:
      with open(input_path, "rb") as f:
        data = f.read()
    except OSError as e:
      raise ConfigError(f"cannot read --input={input_path} ({e.strerror})") from None
    images = codec.decompress(data, prior_workdir)
    files.write_images(output_path, images)
  seconds = time.perf_counter() - start
  return (f"{command}: {len(images)} images, {len(data)} bytes, {8 * len(data) / images.size:.4f}"
          f" bits/dim, {seconds:.1f} s -> {output_path}")


def main(argv):
  args = flags.FLAGS
  if not args["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  if len(argv) != 2 or argv[1] not in _COMMANDS:
    print(f"error: give one command, compress or decompress (got {argv[1:]})", file=sys.stderr)
    sys.exit(2)
  try:
    for name in ("input", "output"):
      if not args[name].value:
        raise ConfigError(f"--{name} is required")
    print(run(argv[1], args.input, args.output, prior_workdir=args.prior_workdir,
              mode=args.mode))
  except ConfigError as e:  # CodecError included
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  _define_flags()
  app.run(main)
