"""Image sets for the codec CLI: an npz with key `images`, or a folder of image files."""

import os

import numpy as np
from PIL import Image

from dvq_jax.codec.container import CodecError
from dvq_jax.data._folder import EXTENSIONS


def read_images(path: str, channels: int) -> np.ndarray:
  """uint8 `(N, H, W, C)` from `path`: an .npz (key `images`) or a folder of images (sorted by
  name, converted to RGB for C = 3 or grayscale for C = 1).

  Raises:
    CodecError: a missing path, an npz without uint8 `images`, an empty folder, an unreadable
      file, or images of different sizes.
  """
  if path.endswith(".npz"):
    if not os.path.isfile(path):
      raise CodecError(f"--input={path}: no such file")
    with np.load(path) as archive:
      if "images" not in archive:
        raise CodecError(f"--input={path} has no key 'images' (keys: {list(archive.keys())});"
                         " save the images with np.savez(path, images=...)")
      images = archive["images"]
    if images.dtype != np.uint8 or images.ndim != 4:
      raise CodecError(f"--input={path}: 'images' must be uint8 (N, H, W, C), got"
                       f" {images.dtype} {images.shape}")
    return images
  if not os.path.isdir(path):
    raise CodecError(f"--input={path} is neither an .npz file nor a folder of images")
  names = sorted(n for n in os.listdir(path) if n.lower().endswith(EXTENSIONS))
  if not names:
    raise CodecError(f"--input={path} holds no image files ({', '.join(EXTENSIONS)})")
  images = []
  for name in names:
    try:
      with Image.open(os.path.join(path, name)) as image:
        array = np.asarray(image.convert("RGB" if channels == 3 else "L"))
    except (OSError, ValueError) as e:
      raise CodecError(f"cannot read image {os.path.join(path, name)} ({e})") from None
    if images and array.shape[:2] != images[0].shape[:2]:
      raise CodecError(f"{name} is {array.shape[1]}x{array.shape[0]} but {names[0]} is"
                       f" {images[0].shape[1]}x{images[0].shape[0]}; give images of one size")
    images.append(array.reshape(*array.shape[:2], channels))
  return np.stack(images).astype(np.uint8)


def write_images(path: str, images: np.ndarray) -> None:
  """Writes uint8 `(N, H, W, C)` to an .npz (key `images`) or as PNGs 000000.png ... in a folder."""
  if path.endswith(".npz"):
    np.savez(path, images=images)
    return
  os.makedirs(path, exist_ok=True)
  for index, image in enumerate(images):
    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(
        os.path.join(path, f"{index:06d}.png"))
