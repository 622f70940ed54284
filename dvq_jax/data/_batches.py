"""Batches of an `ImageData`: training batches as a pure function of the step, padded eval batches.

A training epoch is a permutation of the training set drawn from `(seed, epoch)` and cut into
`num_train // global_batch_size` global batches (the remainder is dropped); process p of P reads
only its slice p of each global batch. So the batch at step s depends on nothing but
`(seed, s, process_index, process_count)`: resuming at step s needs no iterator state.
"""

from collections.abc import Iterator
import functools
import itertools
import sys

from absl import flags
import grain
import numpy as np

from dvq_jax.data._dataset import ImageData
from dvq_jax.data._dataset import ImageSource
from dvq_jax.errors import ConfigError


def train_batch(
    data: ImageData,
    *,
    step: int,
    global_batch_size: int,
    seed: int,
    process_index: int = 0,
    process_count: int = 1,
) -> np.ndarray:
  """This process's share of the training batch at `step`; a pure function of its arguments.

  The global batch is the concatenation of all processes' batches in process order.

  Args:
    data: the data set (`load`).
    step: training step, >= 0.
    global_batch_size: images per step over all processes; a multiple of `process_count`.
    seed: shuffling seed, >= 0.
    process_index: this process (`jax.process_index()`).
    process_count: number of processes (`jax.process_count()`).

  Returns:
    uint8 `(global_batch_size // process_count, height, width, channels)`.

  >>> import numpy as np
  >>> images = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1)
  >>> data = ImageData("ten", (1, 1, 1), 10, 10, images, images)
  >>> batch = train_batch(data, step=0, global_batch_size=4, seed=0)
  >>> batch.shape, batch.dtype
  ((4, 1, 1, 1), dtype('uint8'))
  >>> second_half = train_batch(data, step=0, global_batch_size=4, seed=0, process_index=1,
  ...                           process_count=2)
  >>> bool((second_half == batch[2:]).all())
  True
  """
  local_batch_size = _local_batch_size(global_batch_size, process_index, process_count)
  steps_per_epoch = _steps_per_epoch(data, global_batch_size)
  if step < 0 or seed < 0:
    raise ValueError(f"step = {step} and seed = {seed} must be >= 0")
  epoch, batch_in_epoch = divmod(step, steps_per_epoch)
  start = batch_in_epoch * global_batch_size + process_index * local_batch_size
  indices = _epoch_permutation(data.num_train, seed, epoch)[start:start + local_batch_size]
  return _gather(data.train, indices)


def train_batches(
    data: ImageData,
    *,
    start_step: int,
    global_batch_size: int,
    seed: int,
    process_index: int = 0,
    process_count: int = 1,
    prefetch: int = 2,
    worker_count: int = 0,
) -> Iterator[np.ndarray]:
  """`train_batch` for `start_step`, `start_step + 1`, ..., read ahead by a grain pipeline.

  Args:
    data: the data set (`load`).
    start_step: the first step to yield (the restored step when resuming).
    global_batch_size: images per step over all processes.
    seed: shuffling seed, >= 0.
    process_index: this process.
    process_count: number of processes.
    prefetch: batches read ahead by as many threads; 0 reads each batch when asked for.
    worker_count: grain worker processes (`config.grain_workers`); 0 reads in this process.

  Returns:
    An endless iterator of uint8 `(global_batch_size // process_count, height, width,
    channels)` arrays, identical to `train_batch` at each step; `close()` it to stop its threads.
  """
  # Check the arguments now, not at the first next().
  _local_batch_size(global_batch_size, process_index, process_count)
  _steps_per_epoch(data, global_batch_size)
  if start_step < 0 or seed < 0 or prefetch < 0 or worker_count < 0:
    raise ValueError(
        f"start_step = {start_step}, seed = {seed}, prefetch = {prefetch} and "
        f"worker_count = {worker_count} must be >= 0"
    )
  batch_at = functools.partial(
      _train_batch_at, data, global_batch_size, seed, process_index, process_count
  )
  if not prefetch and not worker_count:
    return (batch_at(step) for step in itertools.count(start_step))
  steps = grain.MapDataset.range(start_step, sys.maxsize).map(batch_at)
  batches = steps.to_iter_dataset(
      grain.ReadOptions(num_threads=max(prefetch, 1), prefetch_buffer_size=max(prefetch, 1))
  )
  if worker_count:
    # grain's worker processes read absl flags; unparsed (tests, notebooks) they raise.
    if not flags.FLAGS.is_parsed():
      flags.FLAGS.mark_as_parsed()
    batches = batches.mp_prefetch(grain.MultiprocessingOptions(num_workers=worker_count))
  return _closing(iter(batches))


def eval_batches(
    data: ImageData,
    *,
    global_batch_size: int,
    process_index: int = 0,
    process_count: int = 1,
) -> Iterator[dict[str, np.ndarray]]:
  """The test set in order, each image exactly once over all processes and batches.

  Global batch b holds test images `b * global_batch_size` onwards and process p its slice p;
  past the end, images are zeros with `mask` False. Every process yields
  `ceil(num_test / global_batch_size)` batches, so collective eval steps line up.

  Args:
    data: the data set (`load`).
    global_batch_size: images per eval step over all processes; a multiple of `process_count`.
    process_index: this process.
    process_count: number of processes.

  Returns:
    An iterator of dicts: `image` uint8 `(global_batch_size // process_count, height, width,
    channels)` and `mask` bool `(global_batch_size // process_count,)`.

  >>> import numpy as np
  >>> images = np.ones((5, 1, 1, 1), np.uint8)
  >>> data = ImageData("five", (1, 1, 1), 5, 5, images, images)
  >>> [b["mask"].tolist() for b in eval_batches(data, global_batch_size=4)]
  [[True, True, True, True], [True, False, False, False]]
  """
  local_batch_size = _local_batch_size(global_batch_size, process_index, process_count)
  num_batches = -(-data.num_test // global_batch_size)

  def batches():
    for batch in range(num_batches):
      start = batch * global_batch_size + process_index * local_batch_size
      stop = min(start + local_batch_size, data.num_test)
      count = max(stop - start, 0)
      image = np.zeros((local_batch_size, *data.image_shape), np.uint8)
      if count:
        image[:count] = _gather(data.test, np.arange(start, stop))
      yield {"image": image, "mask": np.arange(local_batch_size) < count}

  return batches()


def check_batch_size(data: ImageData, global_batch_size: int, process_count: int = 1) -> None:
  """Raises ConfigError unless the batch splits over the processes and fits the training set.

  Cheap (no image is read): trainers call it before building models.
  """
  _local_batch_size(global_batch_size, 0, process_count)
  _steps_per_epoch(data, global_batch_size)


def _local_batch_size(global_batch_size: int, process_index: int, process_count: int) -> int:
  if global_batch_size <= 0 or global_batch_size % process_count:
    raise ConfigError(
        f"batch size {global_batch_size} must be a positive multiple of the {process_count} "
        f"processes; change config.batch_size (or config.eval_batch_size)"
    )
  if not 0 <= process_index < process_count:
    raise ValueError(f"process_index = {process_index} is not in [0, {process_count})")
  return global_batch_size // process_count


def _steps_per_epoch(data: ImageData, global_batch_size: int) -> int:
  if data.num_train < global_batch_size:
    raise ConfigError(
        f"config.batch_size = {global_batch_size} exceeds the {data.num_train} training images of "
        f"{data.name}; lower it"
    )
  return data.num_train // global_batch_size


# The epoch being read and, while read-ahead threads cross into it, the next one.
@functools.lru_cache(maxsize=2)
def _epoch_permutation(num_examples: int, seed: int, epoch: int) -> np.ndarray:
  """The order of the training images in `epoch`; cached because each epoch is read in steps.

  The only host array that grows with the data set: 4 bytes an image (5.1 MB for ImageNet's
  1.28M), built once an epoch (in each grain worker process too); a step reads a slice of it.
  """
  # `Generator.permutation(n)` shuffles an int64 arange; shuffling an int32 one gives the same
  # order at half the memory.
  permutation = np.arange(num_examples, dtype=np.int32 if num_examples < 2**31 else np.int64)
  np.random.default_rng((seed, epoch)).shuffle(permutation)
  permutation.flags.writeable = False
  return permutation


def spread_test_images(data: ImageData, count: int) -> np.ndarray:
  """`min(count, num_test)` test images at evenly spaced indices from first to last, in order.

  Every process reads the same images (for figures that show the whole split, not one photo).

  Returns:
    uint8 `(min(count, num_test), height, width, channels)`.

  >>> import numpy as np
  >>> images = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1)
  >>> data = ImageData("ten", (1, 1, 1), 10, 10, images, images)
  >>> spread_test_images(data, 4).ravel().tolist()
  [0, 3, 6, 9]
  """
  indices = np.unique(np.round(np.linspace(0, data.num_test - 1, max(count, 1))).astype(int))
  return _gather(data.test, indices[:count])


def _gather(source: ImageSource, indices: np.ndarray) -> np.ndarray:
  """`(len(indices), height, width, channels)` uint8 images `source[i]` for i in `indices`."""
  if isinstance(source, np.ndarray):
    return source[indices]
  return np.stack([np.asarray(source[int(i)], np.uint8) for i in indices])


def _train_batch_at(
    data: ImageData, global_batch_size: int, seed: int, process_index: int, process_count: int,
    step: int,
) -> np.ndarray:
  """`train_batch` with positional arguments, so grain can map (and pickle) it."""
  return train_batch(
      data, step=step, global_batch_size=global_batch_size, seed=seed,
      process_index=process_index, process_count=process_count,
  )


def _closing(batches: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
  """Yields from a grain iterator and stops its threads and workers when closed."""
  try:
    yield from batches
  finally:
    batches.close()
