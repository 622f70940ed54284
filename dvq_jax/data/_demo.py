"""`demo`: 32x32 patches of the photographs bundled with scikit-image (offline, deterministic)."""

import functools

import numpy as np
import skimage.data

PATCH_SIZE = 32
# Only these photographs ship inside scikit-image; the others in skimage.data download on use.
TRAIN_PHOTOS = (
    "astronaut", "rocket", "hubble_deep_field", "immunohistochemistry", "retina", "colorwheel",
    "stereo_motorcycle",
)
TEST_PHOTOS = ("coffee", "chelsea")
# The retina's black border alone gives ~360 identical patches; flat patches teach nothing.
_MIN_PATCH_STD = 2.0


@functools.lru_cache(maxsize=1)
def demo_patches() -> tuple[np.ndarray, np.ndarray]:
  """Non-overlapping RGB patches: train and test cut from different photographs.

  Patches are taken row by row from each photograph in the order of `TRAIN_PHOTOS` and
  `TEST_PHOTOS` (both views of `stereo_motorcycle`); patches whose pixel standard deviation is
  below 2 (flat background) are left out. Built once per process and cached.

  Returns:
    `(train, test)`, read-only uint8 arrays of shape `(num_patches, 32, 32, 3)`.

  >>> train, test = demo_patches()
  >>> train.shape, test.shape
  ((3971, 32, 32, 3), (342, 32, 32, 3))
  """
  train = np.concatenate([_patches(photo) for name in TRAIN_PHOTOS for photo in _photos(name)])
  test = np.concatenate([_patches(photo) for name in TEST_PHOTOS for photo in _photos(name)])
  for array in (train, test):
    array.flags.writeable = False
  return train, test


def _photos(name: str) -> list[np.ndarray]:
  photo = getattr(skimage.data, name)()
  if name == "stereo_motorcycle":  # (left view, right view, disparity map)
    return [photo[0], photo[1]]
  return [photo]


def _patches(photo: np.ndarray) -> np.ndarray:
  """`(rows, cols, 3)` photo -> `(num_patches, 32, 32, 3)`, dropping flat patches."""
  rows, cols = photo.shape[0] // PATCH_SIZE, photo.shape[1] // PATCH_SIZE
  grid = photo[:rows * PATCH_SIZE, :cols * PATCH_SIZE, :3].reshape(
      rows, PATCH_SIZE, cols, PATCH_SIZE, 3
  )
  patches = grid.transpose(0, 2, 1, 3, 4).reshape(-1, PATCH_SIZE, PATCH_SIZE, 3)
  keep = patches.reshape(len(patches), -1).std(axis=1) >= _MIN_PATCH_STD
  return np.ascontiguousarray(patches[keep], dtype=np.uint8)
