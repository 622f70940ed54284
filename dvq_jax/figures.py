"""Images a training run writes: reconstruction and sample grids, per-codebook usage plots."""

import io
import math
from collections.abc import Sequence

import numpy as np
from etils import epath
from PIL import Image
from PIL import ImageDraw
from PIL import ImageFont

_FONT_SIZE = 18  # pixels; PIL's bundled font, so no system fonts are needed


def upscale(images: np.ndarray, factor: int) -> np.ndarray:
  """Nearest-neighbour upscaling of `(n, H, W, C)` images to `(n, factor*H, factor*W, C)`.

  >>> upscale(np.arange(2, dtype=np.uint8).reshape(1, 1, 2, 1), 2)[0, ..., 0].tolist()
  [[0, 0, 1, 1], [0, 0, 1, 1]]
  """
  return np.repeat(np.repeat(images, factor, axis=1), factor, axis=2)


def display_scale(height: int, width: int) -> int:
  """The nearest-neighbour factor that shows an image ~128 pixels wide, within 4x..8x.

  >>> [display_scale(s, s) for s in (8, 32, 64)]
  [8, 4, 4]
  """
  return int(np.clip(128 // max(height, width, 1), 4, 8))


def labeled_panels(panels: Sequence[tuple[str, np.ndarray]], title: str,
                   columns: int) -> np.ndarray:
  """Image panels side by side, each under its label, upscaled for viewing, under one title.

  Args:
    panels: `(label, images)` pairs; images uint8 `(n, H, W, C)` (C = 1 or 3), tiled `columns`
      wide, each image `display_scale` times its size.
    title: one line across the top.
    columns: images per panel row.

  Returns:
    uint8 RGB `(height, width, 3)`.
  """
  first = panels[0][1]
  scale = display_scale(first.shape[1], first.shape[2])
  tiles = []
  for _, images in panels:
    grid = image_grid(upscale(images, scale), columns=columns, pad=4)
    tiles.append(np.repeat(grid, 3, axis=-1) if grid.shape[-1] == 1 else grid)
  font = ImageFont.load_default(size=_FONT_SIZE)
  line = _FONT_SIZE + 8
  gap = 2 * _FONT_SIZE
  width = sum(t.shape[1] for t in tiles) + gap * (len(tiles) - 1)
  width = max(width, int(font.getlength(title)) + 8)
  height = 2 * line + max(t.shape[0] for t in tiles)
  canvas = Image.new("RGB", (width, height), "white")
  draw = ImageDraw.Draw(canvas)
  draw.text((4, 4), title, fill="black", font=font)
  left = 0
  for (label, _), tile in zip(panels, tiles):
    draw.text((left + 4, line + 4), label, fill="black", font=font)
    canvas.paste(Image.fromarray(tile), (left, 2 * line))
    left += tile.shape[1] + gap
  return np.asarray(canvas)


def recon_figure(originals: np.ndarray, reconstructions: np.ndarray, title: str) -> np.ndarray:
  """Originals | reconstructions as two labeled panels, image i at the same place in both.

  Args:
    originals: uint8 `(n, H, W, C)`.
    reconstructions: `(n, H, W, C)` in [0, 255] (rounded and clipped here).
    title: one line, e.g. the step and the test PSNR.

  Returns:
    uint8 RGB `(height, width, 3)`.
  """
  recons = np.clip(np.round(reconstructions), 0, 255).astype(np.uint8)
  columns = math.ceil(math.sqrt(len(originals) / 2))  # the two panels together roughly square
  return labeled_panels([("originals", originals), ("reconstructions", recons)], title, columns)


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
