"""`ImageData` and `load`: one config field, `config.dataset`, picks where the images come from."""

import dataclasses
from typing import Protocol

import numpy as np

from dvq_jax.data import _demo
from dvq_jax.data import _folder
from dvq_jax.data import _npz
from dvq_jax.data import _tfds
from dvq_jax.errors import ConfigError

TFDS_NAMES = ("cifar10", "imagenet_resized/32x32", "imagenet_resized/64x64")
_FORMS = ", ".join(TFDS_NAMES) + ", npz:PATH, folder:PATH or demo"


class ImageSource(Protocol):
  """Random access to uint8 images: `len(source)` and `source[i]` -> `(height, width, channels)`."""

  def __len__(self) -> int:
    ...

  def __getitem__(self, index: int) -> np.ndarray:
    ...


@dataclasses.dataclass(frozen=True, eq=False)
class ImageData:
  """A data set as two random-access sources of uint8 `(height, width, channels)` images.

  Attributes:
    name: `config.dataset` it was loaded from.
    image_shape: `(height, width, channels)` of every image.
    num_train: `len(train)`.
    num_test: `len(test)` (after `config.max_eval_examples`).
    train: the training images; `train_batch` shuffles them.
    test: the evaluation images, read in order by `eval_batches`.

  >>> import numpy as np
  >>> images = np.zeros((10, 4, 4, 3), np.uint8)
  >>> ImageData("zeros", (4, 4, 3), 10, 10, images, images).num_test
  10
  """

  name: str
  image_shape: tuple[int, int, int]
  num_train: int
  num_test: int
  train: ImageSource
  test: ImageSource

  def __post_init__(self):
    if self.num_train != len(self.train) or self.num_test != len(self.test):
      raise ValueError(
          f"ImageData {self.name!r}: num_train={self.num_train}, num_test={self.num_test} but the "
          f"sources hold {len(self.train)} and {len(self.test)} images; pass their len()"
      )


def check_dataset_name(name: str) -> None:
  """Raises ConfigError unless `name` is a form `load` accepts; reads nothing.

  >>> check_dataset_name("npz:/data/faces.npz")
  >>> check_dataset_name("mnist")
  Traceback (most recent call last):
  ...
  dvq_jax.errors.ConfigError: config.dataset = 'mnist' is unknown; use cifar10, \
imagenet_resized/32x32, imagenet_resized/64x64, npz:PATH, folder:PATH or demo
  """
  if name in TFDS_NAMES or name == "demo":
    return
  for prefix in ("npz:", "folder:"):
    if isinstance(name, str) and name.startswith(prefix):
      if not name[len(prefix):]:
        raise ConfigError(f"config.dataset = {name!r} names no path; use {prefix}PATH")
      return
  raise ConfigError(f"config.dataset = {name!r} is unknown; use {_FORMS}")


def load(config) -> ImageData:
  """Opens the data set `config.dataset` names; TFDS images are decoded lazily, on access.

  Reads `config.dataset`, `config.data_dir` ("" = TFDS default), `config.train_split`,
  `config.test_split` (TFDS only: `npz:` and `folder:` data always use their `train` and `test`
  parts, and `demo` its own photographs) and `config.max_eval_examples` (0 = the whole test split,
  N > 0 = its first N images; applied here because `tfds.testing.mock_data` ignores sub-splits).

  Args:
    config: a learned-prior config (`dvq_jax.vqvae.defaults.learned_prior`).

  Returns:
    The train and test sources with their image shape and sizes.

  Raises:
    ConfigError: unknown `config.dataset`, a TFDS data set that is not on this machine, or a
      malformed npz file or image folder; the one-line message says what to change.
  """
  name = config.dataset
  check_dataset_name(name)
  max_eval = config.max_eval_examples
  if not isinstance(max_eval, int) or max_eval < 0:
    raise ConfigError(
        f"config.max_eval_examples = {max_eval!r}; use 0 (the whole test split) or a positive count"
    )
  if name == "demo":
    train, test = _demo.demo_patches()
    image_shape = train.shape[1:]
  elif name.startswith("npz:"):
    train, test, image_shape = _npz.load_npz(name[len("npz:"):])
  elif name.startswith("folder:"):
    train, test, image_shape = _folder.load_folder(name[len("folder:"):])
  else:
    train, test, image_shape = _tfds.load_tfds(
        name, config.data_dir, config.train_split, config.test_split
    )
  if max_eval:
    test = _first(test, max_eval)
  return ImageData(
      name=name,
      image_shape=tuple(int(n) for n in image_shape),
      num_train=len(train),
      num_test=len(test),
      train=train,
      test=test,
  )


def image_shape(config) -> tuple[int, int, int]:
  """`(height, width, channels)` of the images of `config.dataset`, without its files for TFDS
  data sets (from the builder's metadata: a machine without the data can plan a run on it);
  other data sets are opened (`load`)."""
  name = config.dataset
  check_dataset_name(name)
  if name in TFDS_NAMES:
    return _tfds.image_shape(name)
  return load(config).image_shape


class _Subset:
  """`count` images of a source: its first ones, or (`spread`) image i is
  `source[i * len(source) // count]`."""

  def __init__(self, source: ImageSource, count: int, *, spread: bool):
    self._source = source
    self._count = min(count, len(source))
    self._spread = spread

  def __len__(self) -> int:
    return self._count

  def __getitem__(self, index: int) -> np.ndarray:
    if not -self._count <= index < self._count:
      raise IndexError(f"index {index} out of range for {self._count} images")
    index %= self._count
    return self._source[index * len(self._source) // self._count if self._spread else index]


def evenly_spaced(source: ImageSource, count: int) -> ImageSource:
  """A view of `min(count, len(source))` images spread evenly over `source` (no copy).

  Evenly spaced rather than the first ones, so that a split stored in class order (an image
  folder per class) is sampled across its classes.

  >>> images = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1)
  >>> sample = evenly_spaced(images, 4)
  >>> [int(sample[i][0, 0, 0]) for i in range(len(sample))]
  [0, 2, 5, 7]
  >>> len(evenly_spaced(images, 50))
  10
  """
  return _Subset(source, count, spread=True)


def _first(source: ImageSource, count: int) -> ImageSource:
  if isinstance(source, np.ndarray):
    return source[:count]
  return _Subset(source, count, spread=False)
