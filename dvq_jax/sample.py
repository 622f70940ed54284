r"""Draws images from a trained code prior: `python -m dvq_jax.sample`.

  python -m dvq_jax.sample --prior_workdir=P --num_samples=64 --temperature=1.0 \
      --output=samples.png [--seed=0 --top_k=0]

Codes are drawn token by token with the KV cache inside one jitted loop, decoded by the
VQ-VAE's tokenizer, tiled into a PNG grid at `--output` (a `.png`; upscaled for viewing, titled
with the sampling settings, labelled with the quantizer, L, K and the prior's step and order),
and saved with the images in an npz of the same name (`samples.npz`: `codes` `(N, h, w, L)`,
`images` `(N, H, W, C)`). Both files are checked before any compute and appear whole or not at
all (`dvq_jax.outputs`).
From Python: `dvq_jax.sample.write_samples(...)` or `dvq_jax.prior.sampling.sample(...)`.
"""

import io
import math
import typing

import numpy as np
from absl import flags
from etils import epath

from dvq_jax import cli
from dvq_jax import figures
from dvq_jax import outputs
from dvq_jax.errors import ConfigError

if typing.TYPE_CHECKING:  # the prior imports JAX, which the flag checks should not wait for
  from dvq_jax import prior

MAX_SAMPLES = 4096  # per command: the grid and the npz hold every image in memory

_FLAGS = cli.new_flags()
flags.DEFINE_string("prior_workdir", None, "The --workdir of a trained prior.", flag_values=_FLAGS)
flags.DEFINE_integer("num_samples", 64, "Images to draw.", lower_bound=1, upper_bound=MAX_SAMPLES,
                     flag_values=_FLAGS)
flags.DEFINE_float("temperature", 1.0, "Divides the log-probs; 1 = the prior.", flag_values=_FLAGS)
flags.DEFINE_integer("top_k", 0, "Draw only among the k most likely codes; 0 = all.",
                     lower_bound=0, flag_values=_FLAGS)
flags.DEFINE_integer("seed", 0, "PRNG seed.", flag_values=_FLAGS)
flags.DEFINE_string("output", "samples.png", "The PNG grid (.png); the npz goes beside it.",
                    flag_values=_FLAGS)


def _npz_path(output: str) -> str:
  return str(epath.Path(output).with_suffix(".npz"))


def panel_label(loaded: "prior.LoadedPrior") -> str:
  """The sample grid's panel label: which VQ-VAE decodes the codes and which prior drew them."""
  tokenizer = loaded.tokenizer
  return (f"decoded by the {tokenizer.config.quantizer} VQ-VAE ({tokenizer.num_codebooks} of"
          f" K = {tokenizer.codebook_size} codes a position); prior at step"
          f" {loaded.checkpoint_step}, {loaded.config.order}")


def write_samples(prior_workdir: str, output: str, *, num_samples: int = 64,
                  temperature: float = 1.0, top_k: int = 0, seed: int = 0) -> dict:
  """Samples, writes `output` (PNG) and its `.npz`; returns `{"codes", "images"}`.

  Raises:
    ConfigError: a bad argument or output path (before any compute), or a failed write.
  """
  outputs.check_file(output, "--output", (".png",))
  outputs.check_file(_npz_path(output), "--output")
  if not (math.isfinite(temperature) and temperature > 0):
    raise ConfigError(f"--temperature={temperature} must be a finite number > 0 (1 samples the"
                      " prior itself, lower is more conservative)")
  if not 1 <= num_samples <= MAX_SAMPLES:
    raise ConfigError(f"--num_samples={num_samples} must be in [1, {MAX_SAMPLES}]; for more, run"
                      " again with another --seed")
  # Imported here: loading JAX and the prior is slow, and the checks above come first.
  from dvq_jax import prior  # pylint: disable=import-outside-toplevel
  from dvq_jax.prior import sampling  # pylint: disable=import-outside-toplevel
  loaded = prior.load(prior_workdir)
  try:
    codes, images = sampling.sample(loaded, num_samples, temperature=temperature, top_k=top_k,
                                    seed=seed)
  except ValueError as e:
    raise ConfigError(str(e)) from None
  title = (f"{num_samples} samples of the code prior, temperature {temperature:g},"
           f" top_k {top_k or 'all'}, seed {seed}")
  grid = figures.labeled_panels(
      [(panel_label(loaded), images)], title, columns=math.ceil(math.sqrt(num_samples)))
  png = io.BytesIO()
  figures.png_image(grid).save(png, "PNG")
  with outputs.atomic_file(_npz_path(output), "--output") as arrays, \
      outputs.atomic_file(output, "--output") as f:
    np.savez(arrays, codes=codes, images=images)
    f.write(png.getvalue())
  return {"codes": codes, "images": images}


def _body(argv) -> None:
  args = _FLAGS
  if len(argv) > 1 or not args.prior_workdir:
    cli.fail("use --prior_workdir=P [--num_samples --temperature --top_k --seed --output]"
             " (P: the --workdir of a trained code prior)")
  write_samples(args.prior_workdir, args.output, num_samples=args.num_samples,
                temperature=args.temperature, top_k=args.top_k, seed=args.seed)
  print(f"wrote {args.num_samples} samples to {args.output} and {_npz_path(args.output)}")


def main(argv: list[str] | None = None) -> None:
  """The command line; `argv` (program name first) defaults to `sys.argv`."""
  cli.run(_body, _FLAGS, argv, doc=__doc__)


if __name__ == "__main__":
  cli.program(main)
