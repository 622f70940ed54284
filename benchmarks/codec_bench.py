r"""The codec against PNG, WebP, JPEG 2000, JPEG XL (lossless) and JPEG, WebP (lossy) on photographs.

  python benchmarks/codec_bench.py \
      --prior_workdir=/tmp/codec_bench/prior --figure=docs/images/codec/codec_rd.png

Image sets (32x32 RGB patches, flat ones dropped as in `demo`):
  demo_test       the demo test split: coffee and chelsea, photographs the models never saw;
  grace_hopper    the photograph matplotlib ships (mpl-data/sample_data/grace_hopper.jpg,
                  600x512, JPEG-decoded), also unseen. (scikit-learn's sample images are not
                  installed here.)
Per set: bits/dim of our lossless file (all images in one file, and each image its own file on
the first --per_file_images), the model's bound (-log2 p(codes) - log2 p(x | codes); for a
context head, each pixel group given the earlier ones), PNG (optimize=True), WebP lossless
(method 6), JPEG 2000 lossless and JPEG XL lossless (effort 9; only where `pillow-jxl-plugin` is
installed), each image its own file and one mosaic of all of them; lossy: bits/pixel and PSNR
of our codes against JPEG and WebP at a quality sweep (per file and mosaic); images/s to
compress and decompress. Prints Markdown tables and writes the figure and its numbers
(`--figure`, and the same name with `.json`).
"""

import argparse
import io
import json
import math
import os
import sys
import time

import matplotlib
import matplotlib.cbook
import matplotlib.ticker
import jax
import numpy as np
from PIL import Image

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=wrong-import-position

from dvq_jax import codec  # pylint: disable=wrong-import-position
from dvq_jax import prior as prior_lib  # pylint: disable=wrong-import-position
from dvq_jax.data import _demo  # pylint: disable=wrong-import-position
from dvq_jax.vqvae import likelihoods  # pylint: disable=wrong-import-position

try:  # registers Pillow's "JXL" format; an optional peer
  import pillow_jxl  # pylint: disable=unused-import,wrong-import-position
  HAVE_JXL = True
except ImportError:
  HAVE_JXL = False

LOSSLESS = {
    "PNG": ("PNG", {"optimize": True}),
    "WebP lossless": ("WEBP", {"lossless": True, "quality": 100, "method": 6}),
    "JPEG 2000 lossless": ("JPEG2000", {"irreversible": False}),
    **({"JPEG XL lossless": ("JXL", {"lossless": True, "effort": 9})} if HAVE_JXL else {}),
}
LOSSY = {"JPEG": ("JPEG", {}), "WebP": ("WEBP", {"method": 6})}
QUALITIES = (5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95)


def image_sets() -> dict[str, np.ndarray]:
  with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
    photo = np.asarray(Image.open(f).convert("RGB"))
  return {"demo_test": _demo.demo_patches()[1],
          "grace_hopper": _demo._patches(photo)}  # pylint: disable=protected-access


def encode_pil(image: np.ndarray, fmt: str, **options) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format=fmt, **options)
  return buffer.getvalue()


def decode_pil(data: bytes) -> np.ndarray:
  with Image.open(io.BytesIO(data)) as image:
    return np.asarray(image.convert("RGB"))


def mosaic(images: np.ndarray) -> tuple[np.ndarray, int]:
  """All images tiled in one picture (zero tiles fill the last row); returns it and #columns."""
  count, height, width, channels = images.shape
  columns = math.ceil(math.sqrt(count))
  rows = math.ceil(count / columns)
  tiles = np.zeros((rows * columns, height, width, channels), np.uint8)
  tiles[:count] = images
  grid = tiles.reshape(rows, columns, height, width, channels).transpose(0, 2, 1, 3, 4)
  return grid.reshape(rows * height, columns * width, channels), columns


def unmosaic(picture: np.ndarray, count: int, shape) -> np.ndarray:
  height, width, channels = shape
  rows, columns = picture.shape[0] // height, picture.shape[1] // width
  tiles = picture.reshape(rows, height, columns, width, channels).transpose(0, 2, 1, 3, 4)
  return tiles.reshape(-1, height, width, channels)[:count]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
  """Mean over images of 10 log10(255^2 / MSE)."""
  mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2, axis=(1, 2, 3))
  return float(np.mean(10 * np.log10(255.0**2 / np.maximum(mse, 1e-10))))


def model_bound_bits(loaded, images: np.ndarray) -> tuple[float, float]:
  """(-log2 p(codes) under the prior, -log2 p(images | codes) under the head), summed."""
  tokens = loaded.to_sequence(loaded.tokenizer.encode(images))
  log_probs = loaded.log_probs(tokens)
  code_bits = -float(np.take_along_axis(log_probs, tokens[..., None], -1).sum()) / math.log(2)
  tokenizer = loaded.tokenizer
  head = tokenizer.decode_head(loaded.from_sequence(tokens))
  model = tokenizer.model
  conditioned = jax.jit(lambda p, h, x: model.apply(  # a context head's groups given the earlier
      {"params": p}, h, x, method=model.conditioned_head))
  nll = sum(float(np.sum(likelihoods.nll(tokenizer.likelihood,
                                         conditioned(tokenizer.params, head[i:i + 64],
                                                     images[i:i + 64]), images[i:i + 64])))
            for i in range(0, len(images), 64))
  return code_bits, float(nll) / math.log(2)


def timed(fn, *args, **kwargs):
  start = time.perf_counter()
  out = fn(*args, **kwargs)
  return out, time.perf_counter() - start


def bench_set(name: str, images: np.ndarray, loaded, per_file: int) -> dict:
  dims = images.size
  pixels = dims // images.shape[-1]
  row = {"name": name, "count": len(images), "lossless": {}, "per_file": {},
         **{label: [] for label in LOSSY}}
  lossless, row["compress_s"] = timed(codec.compress, images, loaded)
  decoded, row["decompress_s"] = timed(codec.decompress, lossless, loaded)
  assert np.array_equal(decoded, images)
  lossy, row["lossy_compress_s"] = timed(codec.compress, images, loaded, mode="lossy")
  recon, row["lossy_decompress_s"] = timed(codec.decompress, lossy, loaded)
  header_bytes = len(lossless) - codec.read_header(lossless).payload_bytes
  row["header_bytes"] = header_bytes
  row["ours_bits_per_dim"] = 8 * len(lossless) / dims
  code_bits, pixel_bits = model_bound_bits(loaded, images)
  row["bound_bits_per_dim"] = (code_bits + pixel_bits) / dims
  row["code_bits_per_dim"] = code_bits / dims
  row["ours_lossy_bpp"] = 8 * len(lossy) / pixels
  row["ours_lossy_psnr"] = psnr(recon, images)
  subset = images[:per_file]
  sizes = [len(codec.compress(image[None], loaded)) for image in subset]
  row["ours_per_file_bits_per_dim"] = 8 * sum(sizes) / subset.size
  lossy_sizes = [len(codec.compress(image[None], loaded, mode="lossy")) for image in subset]
  row["ours_lossy_per_file_bpp"] = 8 * sum(lossy_sizes) / (subset.size // subset.shape[-1])
  picture, _ = mosaic(images)
  for label, (fmt, options) in LOSSLESS.items():
    files = [encode_pil(image, fmt, **options) for image in images]
    assert all(np.array_equal(decode_pil(f), image) for f, image in zip(files, images)), label
    whole = encode_pil(picture, fmt, **options)
    assert np.array_equal(decode_pil(whole), picture), label
    row["lossless"][label] = 8 * len(whole) / dims
    row["per_file"][label] = 8 * sum(map(len, files)) / dims
    row["per_file"][label + " (subset)"] = 8 * sum(map(len, files[:per_file])) / subset.size
  for label, (fmt, options) in LOSSY.items():
    for quality in QUALITIES:
      files = [encode_pil(image, fmt, quality=quality, **options) for image in images]
      whole = encode_pil(picture, fmt, quality=quality, **options)
      row[label].append({
          "quality": quality,
          "per_file_bpp": 8 * sum(map(len, files)) / pixels,
          "per_file_psnr": psnr(np.stack([decode_pil(f) for f in files]), images),
          "mosaic_bpp": 8 * len(whole) / pixels,
          "mosaic_psnr": psnr(unmosaic(decode_pil(whole), len(images), images.shape[1:]),
                              images),
      })
  return row


def print_tables(rows: list[dict], per_file: int) -> None:
  print("\n| bits/dim (lower is better) | " + " | ".join(r["name"] for r in rows) + " |")
  print("|---|" + "---|" * len(rows))
  lines = [("ours, lossless, one file", lambda r: r["ours_bits_per_dim"]),
           ("model bound (prior + head)", lambda r: r["bound_bits_per_dim"]),
           ("  of which the codes", lambda r: r["code_bits_per_dim"])]
  for label in LOSSLESS:
    lines.append((f"{label}, one mosaic", lambda r, k=label: r["lossless"][k]))
  for label in LOSSLESS:
    lines.append((f"{label}, a file per image", lambda r, k=label: r["per_file"][k]))
  lines.append((f"ours, a file per image (first {per_file})",
                lambda r: r["ours_per_file_bits_per_dim"]))
  for label in LOSSLESS:
    lines.append((f"{label}, a file per image (first {per_file})",
                  lambda r, k=label: r["per_file"][k + " (subset)"]))
  for label, get in lines:
    print(f"| {label} | " + " | ".join(f"{get(r):.3f}" for r in rows) + " |")
  for r in rows:
    n = r["count"]
    print(f"\n{r['name']} ({n} images, header {r['header_bytes']} bytes): lossless compress"
          f" {n / r['compress_s']:.1f} images/s, decompress {n / r['decompress_s']:.1f} images/s;"
          f" lossy compress {n / r['lossy_compress_s']:.1f}, decompress"
          f" {n / r['lossy_decompress_s']:.1f} images/s")
    print(f"ours lossy: {r['ours_lossy_bpp']:.3f} bits/pixel (one file),"
          f" {r['ours_lossy_per_file_bpp']:.3f} (a file per image, first {per_file}),"
          f" PSNR {r['ours_lossy_psnr']:.2f} dB")
    for label in LOSSY:
      print(f"| {label} quality | bits/pixel, per file | PSNR | bits/pixel, mosaic | PSNR |")
      print("|---|---|---|---|---|")
      for j in r[label]:
        print(f"| {j['quality']} | {j['per_file_bpp']:.3f} | {j['per_file_psnr']:.2f} |"
              f" {j['mosaic_bpp']:.3f} | {j['mosaic_psnr']:.2f} |")


def plot(rows: list[dict], path: str) -> None:
  """bits/pixel vs PSNR per image set: our lossy codes against the JPEG and WebP sweeps."""
  fig, axes = plt.subplots(1, len(rows), figsize=(6.5 * len(rows), 5), squeeze=False)
  ticks = [0.125, 0.25, 0.5, 1, 2, 4, 8]
  for ax, r in zip(axes[0], rows):
    for fmt, key, marker, label in (
        (fmt, key, marker, f"{fmt}, {where}") for fmt in LOSSY
        for key, marker, where in (("per_file", "o-", "a file per image"),
                                   ("mosaic", "s--", "all images in one mosaic"))):
      bpp = [j[f"{key}_bpp"] for j in r[fmt]]
      psnrs = [j[f"{key}_psnr"] for j in r[fmt]]
      ax.plot(bpp, psnrs, marker, label=label)
      for j, x, y in zip(r[fmt], bpp, psnrs):
        if j["quality"] in (5, 50, 95):
          ax.annotate(f"q{j['quality']}", (x, y), textcoords="offset points", xytext=(4, -10),
                      fontsize=8)
    x, y = r["ours_lossy_bpp"], r["ours_lossy_psnr"]
    ax.plot([x], [y], "r*", markersize=16, label="ours, lossy: the codes only, one file")
    ax.annotate(f"{x:.2f} bits/pixel, {y:.1f} dB", (x, y), textcoords="offset points",
                xytext=(8, 4), color="red", fontsize=9)
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(matplotlib.ticker.FixedLocator(ticks))
    ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlabel("bits per pixel (log scale; left is smaller)")
    ax.set_ylabel("PSNR (dB), mean over images (up is better)")
    ax.set_title(f"{r['name']} ({r['count']} images 32x32)\nlossless bits/dim: ours"
                 f" {r['ours_bits_per_dim']:.2f}, PNG {r['lossless']['PNG']:.2f}, WebP"
                 f" {r['lossless']['WebP lossless']:.2f} (one mosaic)", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.margins(x=0.08, y=0.08)
    ax.legend(fontsize=8, loc="upper left")
  fig.suptitle("Lossy rate-distortion: the codec's codes against JPEG and WebP")
  fig.tight_layout()
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  fig.savefig(path, dpi=110)
  with open(os.path.splitext(path)[0] + ".json", "w", encoding="utf-8") as f:
    json.dump(rows, f, indent=1)  # the numbers behind the figure and the tables


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--prior_workdir", required=True)
  parser.add_argument("--max_images", type=int, default=0, help="0 = every patch of each set")
  parser.add_argument("--per_file_images", type=int, default=16,
                      help="images each compressed into its own .dvqz (slow: T steps each)")
  parser.add_argument("--figure", default="docs/images/codec/codec_rd.png")
  args = parser.parse_args()
  loaded = prior_lib.load(args.prior_workdir)
  sets = image_sets()
  # Compile (the batch size of the full sets and batch 1) outside the timings.
  warm = sets["demo_test"][:min(64, args.max_images or 64)]
  codec.decompress(codec.compress(warm, loaded), loaded)
  codec.decompress(codec.compress(warm, loaded, mode="lossy"), loaded)
  codec.decompress(codec.compress(warm[:1], loaded), loaded)
  rows = []
  for name, images in sets.items():
    if args.max_images:
      images = images[:args.max_images]
    print(f"{name}: {len(images)} images ...", file=sys.stderr, flush=True)
    rows.append(bench_set(name, np.ascontiguousarray(images), loaded, args.per_file_images))
  print_tables(rows, args.per_file_images)
  plot(rows, args.figure)
  print(f"\nwrote {args.figure}")


if __name__ == "__main__":
  main()
