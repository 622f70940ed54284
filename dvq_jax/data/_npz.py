"""`npz:PATH`: the user's own images as uint8 arrays `train` and `test` in one .npz file."""

import os
import zipfile

import numpy as np

from dvq_jax.errors import ConfigError

_SAVE_HINT = "save it with np.savez(PATH, train=..., test=...) holding uint8 (N, H, W, C) arrays"


def load_npz(path: str) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int]]:
  """Reads and validates `train` and `test`, uint8 `(num_images, height, width, channels)` each.

  Args:
    path: the .npz file, read with `np.load(path, allow_pickle=False)`.

  Returns:
    `(train, test, (height, width, channels))`; the arrays are read-only.

  Raises:
    ConfigError: a missing or unreadable file, a missing array, a dtype other than uint8, a rank
      other than 4, no images, or train and test images of different shapes.
  """
  where = f"config.dataset = 'npz:{path}'"
  if not os.path.isfile(path):
    raise ConfigError(f"{where}: no such file; {_SAVE_HINT}")
  try:
    npz = np.load(path, allow_pickle=False)
  except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
    raise ConfigError(f"{where} cannot be read ({_one_line(e)}); {_SAVE_HINT}") from None
  if not isinstance(npz, np.lib.npyio.NpzFile):
    raise ConfigError(f"{where} is a single .npy array, not an .npz; {_SAVE_HINT}")
  with npz:
    keys = sorted(npz.files)
    missing = [k for k in ("train", "test") if k not in keys]
    if missing:
      raise ConfigError(f"{where} has no array {missing[0]!r} (it has {keys}); {_SAVE_HINT}")
    try:
      arrays = {k: npz[k] for k in ("train", "test")}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
      raise ConfigError(f"{where} cannot be read ({_one_line(e)}); {_SAVE_HINT}") from None
  for key, array in arrays.items():
    if array.dtype != np.uint8:
      raise ConfigError(
          f"{where}: array {key!r} is {array.dtype}; store uint8 pixels 0..255, e.g. "
          f"np.clip(x * 255, 0, 255).round().astype(np.uint8)"
      )
    if array.ndim != 4:
      raise ConfigError(
          f"{where}: array {key!r} has shape {array.shape}; store (N, H, W, C) images "
          f"(grayscale: add a channel axis, x[..., None])"
      )
    if not len(array):
      raise ConfigError(f"{where}: array {key!r} holds no images")
    array.flags.writeable = False
  train, test = arrays["train"], arrays["test"]
  if train.shape[1:] != test.shape[1:]:
    raise ConfigError(
        f"{where}: train images are (H, W, C) = {train.shape[1:]} but test images are "
        f"{test.shape[1:]}; store both at one size"
    )
  return train, test, train.shape[1:]


def _one_line(error: Exception) -> str:
  return " ".join(str(error).split())
