r"""Draws images from a trained code prior: `python -m dvq_jax.sample`.

  python -m dvq_jax.sample --prior_workdir=P --num_samples=64 --temperature=1.0 \
      --output=samples.png [--seed=0 --top_k=0]

Codes are drawn token by token with the KV cache inside one jitted loop, decoded by the
VQ-VAE's tokenizer, tiled into a titled PNG grid (upscaled for viewing) at `--output`, and saved
with the images in an npz of the same name (`samples.npz`: `codes` `(N, h, w, L)`, `images` `(N, H, W, C)`).
From Python: `dvq_jax.sample.write_samples(...)` or `dvq_jax.prior.sampling.sample(...)`.
"""

import math
import sys

import numpy as np
from absl import app
from absl import flags
from absl import logging
from etils import epath

from dvq_jax import figures
from dvq_jax import prior
from dvq_jax.errors import ConfigError
from dvq_jax.prior import sampling



def _define_flags() -> None:
  # Defined only when run as a program, so importing this module clashes with no other CLI.
  flags.DEFINE_string("prior_workdir", None, "The --workdir of a trained prior.")
  flags.DEFINE_integer("num_samples", 64, "Images to draw.")
  flags.DEFINE_float("temperature", 1.0, "Divides the log-probs; 1 = the prior.")
  flags.DEFINE_integer("top_k", 0, "Draw only among the k most likely codes; 0 = all.")
  flags.DEFINE_integer("seed", 0, "PRNG seed.")
  flags.DEFINE_string("output", "samples.png", "The PNG grid; the npz goes beside it.")


def write_samples(prior_workdir: str, output: str, *, num_samples: int = 64,
                  temperature: float = 1.0, top_k: int = 0, seed: int = 0) -> dict:
  """Samples, writes `output` (PNG) and its `.npz`; returns `{"codes", "images"}`."""
  loaded = prior.load(prior_workdir)
  codes, images = sampling.sample(loaded, num_samples, temperature=temperature, top_k=top_k,
                                  seed=seed)
  path = epath.Path(output)
  path.parent.mkdir(parents=True, exist_ok=True)
  title = (f"{num_samples} samples of the code prior, temperature {temperature:g},"
           f" top_k {top_k or 'all'}, seed {seed}")
  figures.write_png(path, figures.labeled_panels(
      [("decoded by the VQ-VAE", images)], title, columns=math.ceil(math.sqrt(num_samples))))
  with path.with_suffix(".npz").open("wb") as f:
    np.savez(f, codes=codes, images=images)
  return {"codes": codes, "images": images}


def main(argv):
  args = flags.FLAGS
  if not args["verbosity"].present:
    logging.set_verbosity(logging.WARNING)  # orbax logs every restore at INFO
  if len(argv) > 1 or not args.prior_workdir:
    print("error: use --prior_workdir=P [--num_samples --temperature --top_k --seed --output]",
          file=sys.stderr)
    sys.exit(2)
  try:
    write_samples(args.prior_workdir, args.output, num_samples=args.num_samples,
                  temperature=args.temperature, top_k=args.top_k, seed=args.seed)
  except (ConfigError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  print(f"wrote {args.num_samples} samples to {args.output} and"
        f" {epath.Path(args.output).with_suffix('.npz')}")


if __name__ == "__main__":
  _define_flags()
  app.run(main)
