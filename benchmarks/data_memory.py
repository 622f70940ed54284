r"""Host memory of reading an ImageNet-sized training split: what grows with the data set.

Reads training batches with `data.train_batches` (grain read-ahead threads, as the trainer
does) from a stand-in split of `--images` images (default 1,281,167: ImageNet's training
split) of `--shape` (default 64x64x3, imagenet_resized/64x64) whose images are all one shared
array, so that only what `data/` itself allocates is measured: `--steps` steps on each side of
an epoch boundary. Prints tracemalloc's peak of Python and numpy allocations while reading, the
epoch permutations held (`_epoch_permutation`'s cache) and one batch's bytes, for one process
of `--processes`.

  PYTHONPATH=. python benchmarks/data_memory.py            # ~1 min on 2 CPU cores
  PYTHONPATH=. python benchmarks/data_memory.py --images 100000 --steps 4   # seconds
"""

import argparse
import time
import tracemalloc

import numpy as np

import results_file
from dvq_jax import data as data_lib
from dvq_jax.data import _batches


class _OneImage:
  """`count` images that are all the same array: reading them allocates nothing."""

  def __init__(self, count: int, shape: tuple[int, int, int]):
    self._count, self._image = count, np.zeros(shape, np.uint8)

  def __len__(self) -> int:
    return self._count

  def __getitem__(self, index: int) -> np.ndarray:
    return self._image


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--images", type=int, default=1_281_167)
  parser.add_argument("--shape", type=int, nargs=3, default=(64, 64, 3))
  parser.add_argument("--batch", type=int, default=1024, help="global batch")
  parser.add_argument("--processes", type=int, default=4, help="hosts sharing the batch")
  parser.add_argument("--steps", type=int, default=20, help="steps read on each side of the"
                      " epoch boundary")
  results_file.add_flag(parser)
  args = parser.parse_args()

  source = _OneImage(args.images, tuple(args.shape))
  split = data_lib.ImageData("stand-in", tuple(args.shape), args.images, 1, source,
                             _OneImage(1, tuple(args.shape)))
  steps_per_epoch = args.images // args.batch
  tracemalloc.start()
  start = time.perf_counter()
  batches = data_lib.train_batches(split, start_step=steps_per_epoch - args.steps,
                                   global_batch_size=args.batch, seed=0, process_index=0,
                                   process_count=args.processes)
  for _ in range(2 * args.steps):
    batch = next(batches)
  batches.close()
  seconds = time.perf_counter() - start
  _, peak = tracemalloc.get_traced_memory()
  tracemalloc.stop()
  held = sum(_batches._epoch_permutation(args.images, 0, epoch).nbytes  # pylint: disable=protected-access
             for epoch in (0, 1))
  print(f"{args.images:,} images of {tuple(args.shape)}, global batch {args.batch} over"
        f" {args.processes} processes, {2 * args.steps} steps across the epoch boundary"
        f" in {seconds:.1f} s")
  print(f"epoch permutations held: {held / 1e6:.2f} MB (2 epochs x {args.images:,} x"
        f" {held // (2 * args.images)} bytes)")
  print(f"one process's batch: {batch.nbytes / 1e6:.2f} MB")
  print(f"tracemalloc peak while reading: {peak / 1e6:.2f} MB")
  results_file.write(args.output, [{
      "global_batch": args.batch, "processes": args.processes, "steps": 2 * args.steps,
      "permutations_mb": held / 1e6, "batch_mb": batch.nbytes / 1e6,
      "tracemalloc_peak_mb": peak / 1e6, "seconds": seconds}],
                     images=args.images, shape=list(args.shape))


if __name__ == "__main__":
  main()
