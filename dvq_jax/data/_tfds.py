"""TFDS data sets read through `tfds.data_source` (array_record random access, no TensorFlow)."""

import contextlib
import logging

import numpy as np
import tensorflow_datasets as tfds

from dvq_jax.errors import ConfigError


class TfdsImages:
  """The `image` feature of a TFDS random-access source, decoded to uint8 on access."""

  def __init__(self, source):
    self._source = source

  def __len__(self) -> int:
    return len(self._source)

  def __getitem__(self, index: int) -> np.ndarray:
    return self._source[index]["image"]


def _drop_missing_variant_warnings(record: logging.LogRecord) -> bool:
  # TFDS warns about every version folder without dataset_info.json before raising "not
  # prepared"; the ConfigError below says the same in one line.
  return "has no dataset_info.json" not in record.getMessage()


@contextlib.contextmanager
def _quiet_tfds_probing():
  logger = logging.getLogger("absl")
  logger.addFilter(_drop_missing_variant_warnings)
  try:
    yield
  finally:
    logger.removeFilter(_drop_missing_variant_warnings)


def load_tfds(
    name: str, data_dir: str, train_split: str, test_split: str
) -> tuple[TfdsImages, TfdsImages, tuple[int, int, int]]:
  """Opens the two splits of a prepared TFDS data set; never downloads.

  Args:
    name: TFDS name, e.g. `cifar10` or `imagenet_resized/64x64`.
    data_dir: TFDS data directory; "" = TFDS default (`$TFDS_DATA_DIR` or ~/tensorflow_datasets).
    train_split: e.g. `train` or `train[:90%]`.
    test_split: e.g. `test` or `validation`.

  Returns:
    `(train, test, (height, width, channels))`.

  Raises:
    ConfigError: the data set is not prepared (in array_record format) under `data_dir`, or a
      split does not exist; the message says how to get it.
  """
  with _quiet_tfds_probing():
    try:
      train, test = tfds.data_source(
          name, split=[train_split, test_split], data_dir=data_dir or None, download=False
      )
    except Exception as e:  # tfds raises NotImplementedError, ValueError, AssertionError, ...
      raise ConfigError(_explain(name, data_dir, train_split, test_split, e)) from None
  image_shape = tuple(train.dataset_info.features["image"].shape)
  if len(image_shape) != 3 or None in image_shape:
    raise ConfigError(f"TFDS {name} has images of shape {image_shape}; use a fixed-size data set")
  return TfdsImages(train), TfdsImages(test), image_shape


def _explain(name: str, data_dir: str, train_split: str, test_split: str, error: Exception) -> str:
  """One line saying why `name` cannot be read and how to get it."""
  build = (
      f"on a machine with internet run `pip install tensorflow tensorflow-datasets && tfds build "
      f"{name} --file_format=array_record --data_dir=DIR`, copy DIR to this machine and set "
      f"--config.data_dir=DIR"
  )
  try:
    builder = tfds.builder(name, data_dir=data_dir or None)
    where, prepared = builder.data_dir, builder.is_prepared()
    file_format = str(builder.info.file_format.value) if prepared else ""
  except Exception:  # an unreadable data_dir: fall through to the generic hint
    where, prepared, file_format = data_dir or "the TFDS default data_dir", False, ""
  if not prepared:
    return f"TFDS data set {name} is not prepared in {where} and nothing downloads here; {build}"
  if file_format != "array_record":
    return (
        f"TFDS data set {name} in {where} is stored as {file_format}, but reading without "
        f"TensorFlow needs array_record; {build}"
    )
  message = " ".join(str(error).split())
  return (
      f"cannot read splits {train_split!r}, {test_split!r} of TFDS {name} in {where} ({message}); "
      f"check --config.train_split and --config.test_split"
  )


def image_shape(name: str) -> tuple[int, int, int]:
  """`(height, width, channels)` of a TFDS image data set from its builder's metadata (no files
  read, nothing downloaded)."""
  with _quiet_tfds_probing():
    return tuple(int(n) for n in tfds.builder(name).info.features["image"].shape)
