"""Images a training run writes: reconstruction and sample grids, per-codebook usage plots."""

import io

import numpy as np
from etils import epath
from PIL import Image


def recon_grid(originals: np.ndarray, reconstructions: np.ndarray, pad: int = 2) -> np.ndarray:
  """Originals in the top row, their reconstructions below: `(2*H + 3*pad, n*(W+pad)+pad, C)`.

  >>> recon_grid(np.zeros((3, 4, 4, 3), np.uint8), np.zeros((3, 4, 4, 3))).shape
  (14, 20, 3)
  """
  n, height, width, channels = originals.shape
  rows = [originals, np.clip(np.round(reconstructions), 0, 255).astype(np.uint8)]
  grid = np.full((2 * height + 3 * pad, n * (width + pad) + pad, channels), 255, np.uint8)
  for r, images in enumerate(rows):
    top = pad + r * (height + pad)
    for i, image in enumerate(images):
      left = pad + i * (width + pad)
      grid[top:top + height, left:left + width] = image
  return grid


def image_grid(images: np.ndarray, columns: int = 8, pad: int = 2) -> np.ndarray:
  """uint8 images `(n, H, W, C)` tiled row by row, `columns` wide, on a white background.

  >>> image_grid(np.zeros((10, 4, 4, 3), np.uint8), columns=4).shape
  (20, 26, 3)
  """
  n, height, width, channels = images.shape
  columns = max(1, min(columns, n))
  rows = -(-n // columns)
  grid = np.full((rows * (height + pad) + pad, columns * (width + pad) + pad, channels), 255,
                 np.uint8)
  for i, image in enumerate(images):
    top, left = pad + (i // columns) * (height + pad), pad + (i % columns) * (width + pad)
    grid[top:top + height, left:left + width] = image
  return grid


def png_image(image: np.ndarray) -> Image.Image:
  """A uint8 `(H, W, C)` array (C = 1 or 3) as a PIL image of mode L or RGB."""
  return Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image)


def write_png(path: epath.PathLike, image: np.ndarray) -> None:
  """Writes a uint8 `(H, W, C)` image to a local or gs:// path."""
  buffer = io.BytesIO()
  png_image(image).save(buffer, "PNG")
  epath.Path(path).write_bytes(buffer.getvalue())


def write_usage_plot(path: epath.PathLike, usage: np.ndarray, perplexity: np.ndarray,
                     codebook_size: int, title: str) -> None:
  """Bar chart of each codebook's usage (fraction of K used) and perplexity over the test set."""
  # A bare Figure, not pyplot: switching pyplot's backend would break inline plots in notebooks.
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top

  index = np.arange(len(usage))
  fig = Figure(figsize=(8, 3))
  ax_usage, ax_perp = fig.subplots(1, 2)
  ax_usage.bar(index, usage)
  ax_usage.set(xlabel="codebook", ylabel="fraction of K used", ylim=(0, 1.05), xticks=index)
  ax_perp.bar(index, perplexity)
  ax_perp.axhline(codebook_size, color="gray", linestyle="--", label=f"K = {codebook_size}")
  ax_perp.set(xlabel="codebook", ylabel="perplexity", xticks=index)
  ax_perp.legend()
  fig.suptitle(title)
  fig.tight_layout()
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png", dpi=100)
  epath.Path(path).write_bytes(buffer.getvalue())
