r"""`python -m dvq_jax.codec compress|decompress`: images <-> .dvqz files.

  python -m dvq_jax.codec compress --prior_workdir=P --input=images.npz --output=F.dvqz \
      [--mode=lossless|lossy]
  python -m dvq_jax.codec decompress --input=F.dvqz --output=decoded.npz [--prior_workdir=P]

--input/--output: an .npz with key `images` (uint8 (N, H, W, C)) or a folder of image files of
the model's size and mode (RGB or L; anything else is refused, not converted). Decompress writes
a folder's images back under their names as PNGs (`x.jpg` -> `x.png`; images from an npz:
000000.png, ...), into a new or empty folder. compress records the absolute prior workdir in the
file; decompress uses it unless --prior_workdir is given. Outputs are checked before any compute
and appear whole or not at all. Bad input, a file that is not ours, is truncated or corrupted,
or was made with other checkpoints: one-line `error:` and exit 2.
"""

import os
import time

from absl import flags

from dvq_jax import cli
from dvq_jax import outputs
from dvq_jax.codec import files
from dvq_jax.errors import ConfigError

_COMMANDS = ("compress", "decompress")

_FLAGS = cli.new_flags()
flags.DEFINE_string("prior_workdir", None, "The code prior's --workdir.", flag_values=_FLAGS)
flags.DEFINE_string("input", None, "compress: .npz or image folder; decompress: .dvqz file.",
                    flag_values=_FLAGS)
flags.DEFINE_string("output", None, "compress: .dvqz file; decompress: .npz or a new folder.",
                    flag_values=_FLAGS)
flags.DEFINE_enum("mode", "lossless", ["lossless", "lossy"], "What compress stores.",
                  flag_values=_FLAGS)


def run(command: str, input_path: str, output_path: str, *, prior_workdir: str | None = None,
        mode: str = "lossless", progress: bool = False) -> str:
  """Runs one command; returns the summary line the CLI prints.

  Raises:
    ConfigError: bad paths or images, a failed write; CodecError (a ConfigError) for bad files.
  """
  start = time.perf_counter()
  if command == "compress":
    if not prior_workdir:
      raise ConfigError("--prior_workdir is required for compress, e.g. --prior_workdir=/tmp/prior")
    outputs.check_file(output_path, "--output", (".dvqz",))
    if not os.path.exists(input_path):
      raise ConfigError(f"--input={input_path} does not exist; give an .npz or a folder of images")
    # Imported here: JAX loads slowly, and the checks above come first.
    from dvq_jax import codec  # pylint: disable=import-outside-toplevel
    from dvq_jax import prior  # pylint: disable=import-outside-toplevel
    loaded = prior.load(prior_workdir)
    images, names = files.read_images(input_path, loaded.tokenizer.image_shape[-1])
    data = codec.compress(images, loaded, mode=mode, workdir=os.path.abspath(prior_workdir),
                          names=names, progress=progress)
    with outputs.atomic_file(output_path, "--output") as f:
      f.write(data)
  else:
    files.check_output(output_path)
    try:
      with open(input_path, "rb") as f:
        data = f.read()
    except OSError as e:
      raise ConfigError(f"cannot read --input={input_path} ({e.strerror})") from None
    from dvq_jax import codec  # pylint: disable=import-outside-toplevel
    images = codec.decompress(data, prior_workdir, progress=progress)
    files.write_images(output_path, images, codec.read_header(data).names)
  seconds = time.perf_counter() - start
  return (f"{command}: {len(images)} images, {len(data)} bytes, {8 * len(data) / images.size:.4f}"
          f" bits/dim, {seconds:.1f} s -> {output_path}")


def _body(argv) -> None:
  args = _FLAGS
  if len(argv) != 2 or argv[1] not in _COMMANDS:
    cli.fail(f"give one command, compress or decompress (got {argv[1:]})")
  for name in ("input", "output"):
    if not args[name].value:
      raise ConfigError(f"--{name} is required")
  print(run(argv[1], args.input, args.output, prior_workdir=args.prior_workdir, mode=args.mode,
            progress=True))


def main(argv: list[str] | None = None) -> None:
  """The command line; `argv` (program name first) defaults to `sys.argv`."""
  cli.run(_body, _FLAGS, argv, doc=__doc__)


if __name__ == "__main__":
  cli.program(main)
