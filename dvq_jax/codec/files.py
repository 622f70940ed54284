"""Image sets for the codec CLI: an npz with key `images`, or a folder of image files.

A folder's images must be of the model's mode (RGB for 3 channels, L for 1): anything else
(RGBA, a palette, 16-bit) is refused rather than converted, so that a lossless round trip gives
back exactly the pixels read. Their names are kept: decompress writes each image back under its
name, as a PNG (`photo.jpg` -> `photo.png`).
"""

import os

import numpy as np
from PIL import Image

from dvq_jax import data as data_lib
from dvq_jax import figures
from dvq_jax import outputs
from dvq_jax.codec.container import CodecError
from dvq_jax.data._folder import EXTENSIONS
from dvq_jax.errors import ConfigError

_MODES = {1: "L", 3: "RGB"}
_NPZ_HINT = "save the images with np.savez(path, images=...) as uint8 (N, H, W, C)"


def png_name(name: str) -> str:
  """The file decompress writes an image named `name` to."""
  return os.path.splitext(name)[0] + ".png"


def read_images(path: str, channels: int) -> tuple[np.ndarray, tuple[str, ...]]:
  """uint8 `(N, H, W, C)` and the file names (() for an npz) from `path`: an .npz (key
  `images`) or a folder of images of the model's mode, sorted by name.

  Raises:
    CodecError: a missing path, an npz without uint8 `images`, an empty folder, an unreadable
      file, an image of another mode or size, or two names that decode to one file.
  """
  where = f"--input={path}"
  if path.endswith(".npz"):
    try:
      images = data_lib.read_npz(path, ("images",), where, _NPZ_HINT)["images"]
      data_lib.check_images(images, "images", where)
    except ConfigError as e:
      raise CodecError(str(e)) from None
    return images, ()
  if not os.path.isdir(path):
    raise CodecError(f"{where} is neither an .npz file nor a folder of images")
  names = sorted(n for n in os.listdir(path) if n.lower().endswith(EXTENSIONS))
  if not names:
    raise CodecError(f"{where} holds no image files ({', '.join(EXTENSIONS)})")
  mode = _MODES[channels]
  images = []
  for name in names:
    try:
      with Image.open(os.path.join(path, name)) as image:
        image_mode, array = image.mode, np.asarray(image)
    except (OSError, ValueError) as e:
      raise CodecError(f"cannot read image {os.path.join(path, name)} ({e})") from None
    if image_mode != mode:
      raise CodecError(f"{name} in {where} is a {image_mode} image but the model codes {mode};"
                       f" convert it first (PIL: image.convert({mode!r})), which drops what"
                       f" {mode} cannot hold")
    if images and array.shape[:2] != images[0].shape[:2]:
      raise CodecError(f"{name} is {array.shape[1]}x{array.shape[0]} but {names[0]} is"
                       f" {images[0].shape[1]}x{images[0].shape[0]}; give images of one size")
    images.append(array.reshape(*array.shape[:2], channels))
  targets = [png_name(n) for n in names]
  clash = next((n for i, n in enumerate(names) if targets.index(targets[i]) != i), None)
  if clash:
    raise CodecError(f"{clash} and {names[targets.index(png_name(clash))]} in {where} would both"
                     f" decompress to {png_name(clash)}; rename one")
  return np.stack(images).astype(np.uint8), tuple(names)


def check_output(path: str) -> None:
  """decompress's --output can be written: an .npz file, or a new (or empty) folder."""
  if path.endswith(".npz"):
    outputs.check_file(path, "--output")
  else:
    outputs.check_folder(path, "--output")


def write_images(path: str, images: np.ndarray, names=()) -> None:
  """Writes uint8 `(N, H, W, C)` whole or not at all: to an .npz (key `images`, and `names` when
  given) or as PNGs in a new folder, under `png_name(name)` or 000000.png, 000001.png, ...

  Raises:
    ConfigError: a write failed; nothing is left behind.
  """
  if path.endswith(".npz"):
    arrays = {"images": images, **({"names": np.array(names)} if names else {})}
    with outputs.atomic_file(path, "--output") as f:
      np.savez(f, **arrays)
    return
  files = [png_name(n) for n in names] if names else [f"{i:06d}.png" for i in range(len(images))]
  with outputs.atomic_folder(path, "--output") as folder:
    for name, image in zip(files, images):
      figures.png_image(image).save(os.path.join(folder, name))
