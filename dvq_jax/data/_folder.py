"""`folder:PATH`: the user's own image files under PATH/train/ and PATH/test/, read with PIL."""

import os

import numpy as np
from PIL import Image

from dvq_jax.errors import ConfigError

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")


class ImageFiles:
  """Image files decoded to uint8 RGB `(height, width, 3)` on access."""

  def __init__(self, paths: list[str]):
    self.paths = paths

  def __len__(self) -> int:
    return len(self.paths)

  def __getitem__(self, index: int) -> np.ndarray:
    with Image.open(self.paths[index]) as image:
      return np.array(image.convert("RGB"))


def load_folder(root: str) -> tuple[ImageFiles, ImageFiles, tuple[int, int, int]]:
  """Lists the images under `root/train/` and `root/test/` (subfolders included, sorted by path).

  Only the file headers are read here: every image must have the same width and height. Images
  of any PIL mode (grayscale, RGBA, palette) are converted to RGB when read.

  Args:
    root: the folder holding `train/` and `test/`.

  Returns:
    `(train, test, (height, width, 3))`.

  Raises:
    ConfigError: a missing or empty split folder, an unreadable image, or an image whose size
      differs from the first training image (the message names both files).
  """
  where = f"config.dataset = 'folder:{root}'"
  splits = {}
  for split in ("train", "test"):
    folder = os.path.join(root, split)
    if not os.path.isdir(folder):
      raise ConfigError(
          f"{where}: no folder {folder}; put training images under {root}/train/ and test "
          f"images under {root}/test/"
      )
    paths = _image_paths(folder)
    if not paths:
      raise ConfigError(
          f"{where}: {folder} holds no image files ({', '.join(EXTENSIONS)}); add some"
      )
    splits[split] = paths
  reference, size = None, None
  for path in splits["train"] + splits["test"]:
    try:
      with Image.open(path) as image:
        this_size = image.size
    except (OSError, ValueError) as e:  # PIL.UnidentifiedImageError is an OSError
      raise ConfigError(f"{where}: cannot read image {path} ({e}); remove or replace it") from None
    if size is None:
      reference, size = path, this_size
    elif this_size != size:
      raise ConfigError(
          f"{where}: {path} is {this_size[0]}x{this_size[1]} pixels but {reference} is "
          f"{size[0]}x{size[1]}; resize all images to one size"
      )
  width, height = size
  return ImageFiles(splits["train"]), ImageFiles(splits["test"]), (height, width, 3)


def _image_paths(folder: str) -> list[str]:
  paths = []
  for parent, subfolders, names in os.walk(folder):
    subfolders.sort()
    paths.extend(
        os.path.join(parent, name) for name in sorted(names)
        if name.lower().endswith(EXTENSIONS) and not name.startswith(".")
    )
  return sorted(paths)
