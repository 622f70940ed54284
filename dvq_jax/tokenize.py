r"""Writes the codes of a VQ-VAE run's train and test splits: `python -m dvq_jax.tokenize`.

  python -m dvq_jax.tokenize --workdir=/tmp/dvq_demo --output=codes.npz [--step=N]

`codes.npz` holds `train` and `test`, `(N, h, w, L)` int16 (int32 when K > 32767); `codes.json`
beside it records K, L, the grid, the quantizer, the checkpoint step and digest and the data set.
"""

import sys

from absl import app
from absl import flags
from absl import logging

from dvq_jax import data as data_lib
from dvq_jax import tokenizer as tokenizer_lib
from dvq_jax.errors import ConfigError



def _define_flags() -> None:
  # Defined only when run as a program: importing this module (doctests, tests) next to
  # dvq_jax.main, which owns --workdir, must not clash.
  flags.DEFINE_string("workdir", None, "The --workdir of a trained VQ-VAE run.")
  flags.DEFINE_string("output", "codes.npz", "Where the codes go (.npz).")
  flags.DEFINE_integer("step", None, "Checkpoint step; default the newest.")


def tokenize(workdir: str, output: str, step: int | None = None) -> dict:
  """Encodes both splits of the run's data set; returns the metadata written to codes.json."""
  tokenizer = tokenizer_lib.Tokenizer.from_workdir(workdir, step)
  data = data_lib.load(tokenizer.config)
  codes = tokenizer_lib.encode_splits(tokenizer, data)
  metadata = tokenizer.metadata(data.name, data.num_train, data.num_test)
  tokenizer_lib.write_codes(output, codes, metadata)
  return metadata


def main(argv):
  args = flags.FLAGS
  if not args["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # orbax logs every restore at INFO
  if len(argv) > 1 or not args.workdir:
    print("error: use --workdir=W --output=codes.npz [--step=N]", file=sys.stderr)
    sys.exit(2)
  try:
    metadata = tokenize(args.workdir, args.output, args.step)
  except ConfigError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  print(f"wrote {metadata['num_train']} train and {metadata['num_test']} test code grids"
        f" {tuple(metadata['grid'])} x L={metadata['num_codebooks']} to {args.output}")


if __name__ == "__main__":
  _define_flags()
  app.run(main)
