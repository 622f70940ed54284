"""`npz:PATH`: the user's own images as uint8 arrays `train` and `test` in one .npz file; and
the checked .npz reader the codec and the code prior's cache share with it."""

import zipfile

import numpy as np
from etils import epath

from dvq_jax.errors import ConfigError

_SAVE_HINT = "save it with np.savez(PATH, train=..., test=...) holding uint8 (N, H, W, C) arrays"
_READ_ERRORS = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile)


def read_npz(path: str, keys: tuple[str, ...], where: str, hint: str) -> dict[str, np.ndarray]:
  """The arrays `keys` of the .npz file `path`, read whole, without pickles.

  Args:
    path: the file (local or gs://).
    keys: the arrays to read.
    where: how the message names the file, e.g. `"--input=x.npz"`.
    hint: how to write a good file, ending each message.

  Raises:
    ConfigError: a missing file, a file that is not an .npz (text, a single .npy, a truncated
      zip), an object array, or a missing key.
  """
  file = epath.Path(path)
  if not file.is_file():
    raise ConfigError(f"{where}: no such file; {hint}")
  with file.open("rb") as f:
    if f.read(4) not in (b"PK\x03\x04", b"PK\x05\x06", b"\x93NUM"):  # zip or .npy, not pickle
      raise ConfigError(f"{where} is not an .npz file (no zip header); {hint}")
    f.seek(0)
    try:
      npz = np.load(f, allow_pickle=False)
    except _READ_ERRORS as e:
      raise ConfigError(f"{where} cannot be read as an .npz ({_one_line(e)}); {hint}") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
      raise ConfigError(f"{where} is a single .npy array, not an .npz; {hint}")
    missing = [k for k in keys if k not in npz.files]
    if missing:
      raise ConfigError(f"{where} has no array {missing[0]!r} (it has {sorted(npz.files)});"
                        f" {hint}")
    try:
      return {k: npz[k] for k in keys}
    except _READ_ERRORS as e:
      raise ConfigError(f"{where} cannot be read ({_one_line(e)}); {hint}") from None


def check_images(array: np.ndarray, name: str, where: str) -> None:
  """`array` holds uint8 `(N, H, W, C)` images, N >= 1.

  Raises:
    ConfigError: one line naming `where`, the array `name` and the fix.
  """
  if array.dtype != np.uint8:
    raise ConfigError(
        f"{where}: array {name!r} is {array.dtype}; store uint8 pixels 0..255, e.g. "
        f"np.clip(x * 255, 0, 255).round().astype(np.uint8)"
    )
  if array.ndim != 4:
    raise ConfigError(
        f"{where}: array {name!r} has shape {array.shape}; store (N, H, W, C) images "
        f"(grayscale: add a channel axis, x[..., None])"
    )
  if not len(array):
    raise ConfigError(f"{where}: array {name!r} holds no images")


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
  arrays = read_npz(path, ("train", "test"), where, _SAVE_HINT)
  for key, array in arrays.items():
    check_images(array, key, where)
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
