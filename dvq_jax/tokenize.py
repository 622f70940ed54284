r"""Writes the codes of a VQ-VAE run's train and test splits: `python -m dvq_jax.tokenize`.

  python -m dvq_jax.tokenize --workdir=/tmp/dvq_demo --output=codes.npz [--step=N]

`codes.npz` holds `train` and `test`, `(N, h, w, L)` int16 (int32 when K > 32767); `codes.json`
beside it records K, L, the grid, the quantizer, the checkpoint step and digest and the data set.
Both files are checked before any compute and appear whole or not at all (`dvq_jax.outputs`).
"""

from absl import flags

from dvq_jax import cli
from dvq_jax import data as data_lib
from dvq_jax import tokenizer as tokenizer_lib

_FLAGS = cli.new_flags()
flags.DEFINE_string("workdir", None, "The --workdir of a trained VQ-VAE run.", flag_values=_FLAGS)
flags.DEFINE_string("output", "codes.npz", "Where the codes go (.npz; codes.json beside it).",
                    flag_values=_FLAGS)
flags.DEFINE_integer("step", None, "Checkpoint step; default the newest.", lower_bound=0,
                     flag_values=_FLAGS)


def tokenize(workdir: str, output: str, step: int | None = None) -> dict:
  """Encodes both splits of the run's data set; returns the metadata written to codes.json."""
  tokenizer_lib.check_codes_path(output, "--output")
  tokenizer = tokenizer_lib.Tokenizer.from_workdir(workdir, step)
  data = data_lib.load(tokenizer.config)
  codes = tokenizer_lib.encode_splits(tokenizer, data)
  metadata = tokenizer.metadata(data.name, data.num_train, data.num_test)
  tokenizer_lib.write_codes(output, codes, metadata)
  return metadata


def _body(argv) -> None:
  args = _FLAGS
  if len(argv) > 1 or not args.workdir:
    cli.fail("use --workdir=W --output=codes.npz [--step=N] (W: the --workdir of a trained"
             " VQ-VAE run)")
  metadata = tokenize(args.workdir, args.output, args.step)
  print(f"wrote {metadata['num_train']} train and {metadata['num_test']} test code grids"
        f" {tuple(metadata['grid'])} x L={metadata['num_codebooks']} to {args.output}")


def main(argv: list[str] | None = None) -> None:
  """The command line; `argv` (program name first) defaults to `sys.argv`."""
  cli.run(_body, _FLAGS, argv, doc=__doc__)


if __name__ == "__main__":
  cli.program(main)
