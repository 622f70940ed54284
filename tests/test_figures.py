"""The figures a person looks at: labeled, upscaled grids of test images spread over the split."""

import numpy as np

from dvq_jax import data as data_lib
from dvq_jax import figures


def _find(figure: np.ndarray, tile: np.ndarray) -> list[tuple[int, int]]:
  """Every (top, left) where `tile` `(h, w, 3)` sits in `figure` pixel for pixel."""
  h, w, _ = tile.shape
  windows = np.lib.stride_tricks.sliding_window_view(figure, (h, w, 3))[..., 0, :, :, :]
  return [tuple(int(i) for i in p) for p in np.argwhere((windows == tile).all(axis=(2, 3, 4)))]


def test_recon_figure_puts_each_pair_at_the_same_place_in_two_labeled_panels():
  rng = np.random.default_rng(0)
  originals = rng.integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)
  recons = rng.uniform(-20.0, 275.0, originals.shape)
  figure = figures.recon_figure(originals, recons, "step 7: test PSNR 12.34 dB")
  scale = figures.display_scale(8, 8)
  assert scale == 8 and figure.dtype == np.uint8 and figure.shape[-1] == 3
  shown = np.clip(np.round(recons), 0, 255).astype(np.uint8)
  offsets = set()
  places = []
  for original, recon in zip(originals, shown):
    big = original.repeat(scale, 0).repeat(scale, 1)  # nearest neighbour, 8x
    (found,) = _find(figure, big)
    (found_recon,) = _find(figure, recon.repeat(scale, 0).repeat(scale, 1))
    offsets.add((found_recon[0] - found[0], found_recon[1] - found[1]))
    places.append(found)
  (offset,) = offsets  # one shift maps the originals' panel onto the reconstructions'
  assert offset[0] == 0 and offset[1] > 2 * scale * 8  # side by side, not overlapping
  assert len(set(places)) == 6 and min(top for top, _ in places) > 2 * 18  # under title, labels
  header = figure[:min(top for top, _ in places)]
  assert (header < 100).any()  # the title and the panel labels are drawn in black


def test_sample_panel_keeps_grayscale_images_and_fits_a_long_title():
  images = np.arange(4 * 4 * 4, dtype=np.uint8).reshape(4, 4, 4, 1) * 3
  title = "4 samples of the code prior, temperature 1, top_k all, seed 0, and more words"
  figure = figures.labeled_panels([("decoded", images)], title, columns=2)
  scale = figures.display_scale(4, 4)
  for image in images:
    assert len(_find(figure, np.repeat(image.repeat(scale, 0).repeat(scale, 1), 3, -1))) == 1
  assert figure.shape[1] > 2 * 4 * scale  # widened to the title


def test_spread_test_images_span_the_split_in_order():
  test = np.arange(100, dtype=np.uint8).reshape(100, 1, 1, 1)
  data = data_lib.ImageData("hundred", (1, 1, 1), 100, 100, test, test)
  assert data_lib.spread_test_images(data, 5).ravel().tolist() == [0, 25, 50, 74, 99]
  assert data_lib.spread_test_images(data, 500).ravel().tolist() == list(range(100))
