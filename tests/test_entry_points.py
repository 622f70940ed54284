"""Every entry point under bad input and faults: `python -m dvq_jax.main`, `dvq_jax.tokenize`,
`dvq_jax.sample` and `dvq_jax.codec`.

Each case runs the command's `main(argv)` in this process and must end with exit code 2 and one
`error:` line on stderr naming the fix, no traceback, and nothing lost or half-written: the
output absent, no temporary file left, the workdirs it was pointed at unchanged. Signals need a
process of their own (exit 130 / 143, one line, no output).
"""

import errno
import hashlib
import importlib
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time
import types

import numpy as np
import pytest
from PIL import Image

from dvq_jax import codec
from dvq_jax import main as trainer_cli
from dvq_jax import outputs
from dvq_jax import prior as prior_lib
from dvq_jax import sample as sample_cli
from dvq_jax import tokenize as tokenize_cli
from dvq_jax import tokenizer as tokenizer_lib
from dvq_jax.codec import files
from dvq_jax.prior import train as prior_train
from tests import codec_fixtures
from tests import prior_fixtures

codec_cli = importlib.import_module("dvq_jax.codec.__main__")

ROOT = pathlib.Path(__file__).resolve().parents[1]
COMMANDS = {"main": trainer_cli.main, "tokenize": tokenize_cli.main, "sample": sample_cli.main,
            "codec": codec_cli.main}


# ------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> types.SimpleNamespace:
  """A VQ-VAE workdir, a code prior on it, input files good and bad, and a (lossy) .dvqz."""
  root = tmp_path_factory.mktemp("entry_points")
  vqvae = prior_fixtures.vqvae_workdir(root)
  r = types.SimpleNamespace(root=root, vqvae=vqvae, prior=codec_fixtures.prior_workdir(root, vqvae))
  r.images = codec_fixtures.photo_crops(3)
  inputs = root / "inputs"
  inputs.mkdir()
  r.npz = inputs / "images.npz"
  np.savez(r.npz, images=r.images)
  r.train_npz = inputs / "train.npz"
  prior_fixtures.write_npz(r.train_npz)
  (inputs / "text.npz").write_text("these are not images\n")
  np.savez(inputs / "objects.npz", images=np.array([{"a": 1}, None], dtype=object))
  np.savez(inputs / "no_key.npz", pictures=r.images)
  np.savez(inputs / "float.npz", images=r.images.astype(np.float32))
  np.savez(inputs / "rank3.npz", images=r.images[..., 0])
  np.savez(inputs / "none.npz", images=r.images[:0])
  np.savez(inputs / "small.npz", images=r.images[:, :8, :8])
  np.save(inputs / "single.npy", r.images)
  os.rename(inputs / "single.npy", inputs / "single.npz")
  (inputs / "truncated.npz").write_bytes(r.npz.read_bytes()[:200])
  for name, image in {"rgba": Image.new("RGBA", (16, 16)), "gray": Image.new("L", (16, 16)),
                      "palette": Image.new("P", (16, 16)), "wide": Image.new("RGB", (17, 16)),
                      "bits16": Image.new("I;16", (16, 16))}.items():
    folder = inputs / name
    folder.mkdir()
    Image.fromarray(r.images[0]).save(folder / "a.png")
    image.save(folder / "b.png")
  (inputs / "empty").mkdir()
  for name in ("folder.npz", "folder.png", "folder.dvqz", "codes.json", "samples.npz"):
    (inputs / name).mkdir()  # folders named like files an output writes
  (inputs / "broken").mkdir()
  (inputs / "broken" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
  (inputs / "clash").mkdir()
  Image.fromarray(r.images[0]).save(inputs / "clash" / "a.png")
  Image.fromarray(r.images[1]).save(inputs / "clash" / "a.bmp")
  r.photos = inputs / "photos"
  r.photos.mkdir()
  r.names = ("coffee.png", "z_cat.bmp", "1.png")
  for name, image in zip(r.names, r.images):
    Image.fromarray(image).save(r.photos / name)
  r.inputs = inputs
  r.dvqz = root / "three.dvqz"
  r.dvqz.write_bytes(codec.compress(r.images, prior_lib.load(str(r.prior)), mode="lossy",
                                    workdir=str(r.prior), names=r.names))
  return r


def _tree(path: pathlib.Path) -> dict:
  """Every file under `path` with the sha256 of its bytes."""
  return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
          for p in sorted(path.rglob("*")) if p.is_file()}


def _call(command: str, argv: list[str], capsys) -> tuple[int, str, str]:
  capsys.readouterr()
  try:
    COMMANDS[command]([command, *argv])
    code = 0
  except SystemExit as e:
    code = e.code if isinstance(e.code, int) else 1
  out, err = capsys.readouterr()
  return code, out, err


def _partial_files(*folders: pathlib.Path) -> list[str]:
  return [str(p) for folder in folders if folder.exists() for p in folder.rglob("*partial*")]


def _assert_one_error_line(code: int, err: str, fragment: str, *, after_compute=False) -> None:
  assert code == 2 and "Traceback" not in err, (code, err)
  lines = err.strip().splitlines()
  if after_compute:  # progress lines may come before the error
    lines = [line for line in lines if line.startswith("error:") or line is lines[-1]]
  assert len(lines) == 1 and lines[0].startswith("error: "), err
  assert fragment in lines[0], lines[0]


# ------------------------------------------------------------------------ the bad-input battery
def _forge(data: bytes, offset: int, fmt: str, value: int) -> bytes:
  """A header field rewritten with the header CRC made to match (codec/container.py layout)."""
  import struct  # pylint: disable=import-outside-toplevel
  import zlib  # pylint: disable=import-outside-toplevel
  forged = bytearray(data)
  struct.pack_into(fmt, forged, offset, value)
  end = 106 + sum(struct.unpack_from("<HI", forged, 100))
  struct.pack_into("<I", forged, end, zlib.crc32(bytes(forged[:end])))
  return bytes(forged)


def _damaged(r, kind: str) -> str:
  """A damaged copy of r.dvqz; returns its path."""
  data = r.dvqz.read_bytes()
  damaged = {
      "empty": b"",
      "short": data[:5],
      "not ours": b"%PDF-1.7" + data[8:],
      "header cut": data[:60],
      "payload cut": data[:-9],
      "trailing bytes": data + b"\0" * 4,
      "header bit": data[:13] + bytes([data[13] ^ 4]) + data[14:],
      "version bit": data[:9] + bytes([data[9] ^ 0x80]) + data[10:],
      "payload bit": data[:-3] + bytes([data[-3] ^ 1]) + data[-2:],
      "newer version": _forge(data, 8, "<H", 3),
      "mode 9": _forge(data, 10, "<B", 9),
      "count 0": _forge(data, 12, "<I", 0),
      "count 2^31": _forge(data, 12, "<I", 2**31),
      "height 0": _forge(data, 16, "<H", 0),
      "width 999": _forge(data, 18, "<H", 999),
      "batch 0": _forge(data, 22, "<H", 0),
      "batch 60000": _forge(data, 22, "<H", 60000),
      "payload length odd": _forge(data, 92, "<I", 7),
  }[kind]
  path = r.root / "damaged" / f"{kind.replace(' ', '_').replace('^', '')}.dvqz"
  path.parent.mkdir(exist_ok=True)
  path.write_bytes(damaged)
  return str(path)


DEMO = "--config=configs/demo.py:small"
PRIOR = "--config=configs/prior.py:small"


def _learned(r, tmp, *overrides):
  return [DEMO, f"--config.dataset=npz:{r.train_npz}", f"--workdir={tmp / 'run'}", *overrides]


# (command, argv from (runs, tmp_path), fragment of the one error line)
CASES = {
    # ---- python -m dvq_jax.main: flags and config values, before anything is written
    "main no flags": ("main", lambda r, t: [], "--config is required"),
    "main no workdir": ("main", lambda r, t: [DEMO], "--workdir is required"),
    "main extra argument": ("main", lambda r, t: _learned(r, t, "now"), "unexpected arguments"),
    "main unknown flag": ("main", lambda r, t: _learned(r, t, "--steps=3"), "steps"),
    "main missing config file": ("main", lambda r, t: ["--config=configs/nope.py",
                                                       f"--workdir={t}"], "nope.py"),
    "main config arg unknown": ("main", lambda r, t: ["--config=configs/demo.py:tiny",
                                                      f"--workdir={t}"], "tiny"),
    "main unknown field": ("main", lambda r, t: _learned(r, t, "--config.codebook_sise=8"),
                           "did you mean 'codebook_size'"),
    "main unknown nested field": ("main", lambda r, t: _learned(r, t, "--config.model.hiden=8"),
                                  "model.hiden"),
    "main field type": ("main", lambda r, t: _learned(r, t, "--config.batch_size=abc"),
                        "batch_size"),
    "main float field type": ("main", lambda r, t: _learned(r, t, "--config.learning_rate=fast"),
                              "learning_rate"),
    "main K = 0": ("main", lambda r, t: _learned(r, t, "--config.codebook_size=0"),
                   "codebook_size"),
    "main L = 0": ("main", lambda r, t: _learned(r, t, "--config.num_codebooks=0"),
                   "num_codebooks"),
    "main batch 0": ("main", lambda r, t: _learned(r, t, "--config.batch_size=0"), "batch_size"),
    "main steps 0": ("main", lambda r, t: _learned(r, t, "--config.num_train_steps=0"),
                     "num_train_steps"),
    "main negative lr": ("main", lambda r, t: _learned(r, t, "--config.learning_rate=-1"),
                         "learning_rate"),
    "main quantizer": ("main", lambda r, t: _learned(r, t, "--config.quantizer=pq"), "quantizer"),
    "main likelihood": ("main", lambda r, t: _learned(r, t, "--config.likelihood=gauss"),
                        "likelihood"),
    "main schedule": ("main", lambda r, t: _learned(r, t, "--config.lr_schedule=linear"),
                      "lr_schedule"),
    "main experiment": ("main", lambda r, t: _learned(r, t, "--config.experiment=gan"),
                        "experiment"),
    "main downsampling": ("main", lambda r, t: _learned(r, t, "--config.model.num_downsamples=6"),
                          "num_downsamples"),
    "main dataset name": ("main", lambda r, t: _learned(r, t, "--config.dataset=mnist_typo"),
                          "mnist_typo"),
    "main dataset missing npz": ("main", lambda r, t: _learned(
        r, t, f"--config.dataset=npz:{t / 'none.npz'}"), "no such file"),
    "main dataset text npz": ("main", lambda r, t: _learned(
        r, t, f"--config.dataset=npz:{r.inputs / 'text.npz'}"), "not an .npz"),
    "main dataset no train": ("main", lambda r, t: _learned(
        r, t, f"--config.dataset=npz:{r.npz}"), "no array 'train'"),
    "main dataset folder missing": ("main", lambda r, t: _learned(
        r, t, f"--config.dataset=folder:{t / 'nowhere'}"), "nowhere"),
    "main workdir under a file": ("main", lambda r, t: [
        DEMO, f"--config.dataset=npz:{r.train_npz}", f"--workdir={r.npz}/run"], "not writable"),
    "main workdir is a file": ("main", lambda r, t: [
        DEMO, f"--config.dataset=npz:{r.train_npz}", f"--workdir={r.npz}"], "not writable"),
    "main other K on a trained workdir": ("main", lambda r, t: [
        DEMO, "--config.codebook_size=32", f"--workdir={r.vqvae}"], "config.codebook_size = 16"),
    "main other quantizer on a trained workdir": ("main", lambda r, t: [
        DEMO, "--config.quantizer=mvq", f"--workdir={r.vqvae}"], "new --workdir"),
    "main VQ-VAE config on a prior workdir": ("main", lambda r, t: [
        DEMO, f"--workdir={r.prior}"], "holds a 'code_prior' run"),
    "main prior config on its VQ-VAE workdir": ("main", lambda r, t: [
        PRIOR, f"--config.vqvae_workdir={r.vqvae}", f"--workdir={r.vqvae}"],
        "holds a 'learned_prior' run"),
    "main prior without VQ-VAE": ("main", lambda r, t: [PRIOR, f"--workdir={t / 'run'}"],
                                  "vqvae_workdir"),
    "main prior order": ("main", lambda r, t: [
        PRIOR, f"--config.vqvae_workdir={r.vqvae}", "--config.order=spiral",
        f"--workdir={t / 'run'}"], "order"),
    "main prior on a missing VQ-VAE": ("main", lambda r, t: [
        PRIOR, f"--config.vqvae_workdir={t / 'nowhere'}", f"--workdir={t / 'run'}"],
        "config.json does not exist"),
    # ---- python -m dvq_jax.tokenize
    "tokenize no flags": ("tokenize", lambda r, t: [], "use --workdir=W"),
    "tokenize extra argument": ("tokenize", lambda r, t: [f"--workdir={r.vqvae}", "x"],
                                "use --workdir=W"),
    "tokenize unknown flag": ("tokenize", lambda r, t: [f"--workdir={r.vqvae}", "--ouput=x.npz"],
                              "ouput"),
    "tokenize step not a number": ("tokenize", lambda r, t: [f"--workdir={r.vqvae}", "--step=abc"],
                                   "--step=abc"),
    "tokenize negative step": ("tokenize", lambda r, t: [f"--workdir={r.vqvae}", "--step=-1"],
                               "--step"),
    "tokenize missing step": ("tokenize", lambda r, t: [
        f"--workdir={r.vqvae}", "--step=99", f"--output={t / 'c.npz'}"], "step = 99 has no"),
    "tokenize missing workdir": ("tokenize", lambda r, t: [
        f"--workdir={t / 'nowhere'}", f"--output={t / 'c.npz'}"], "config.json does not exist"),
    "tokenize prior workdir": ("tokenize", lambda r, t: [
        f"--workdir={r.prior}", f"--output={t / 'c.npz'}"], "holds a 'code_prior' run"),
    "tokenize text output": ("tokenize", lambda r, t: [
        f"--workdir={r.vqvae}", f"--output={t / 'codes.txt'}"], "must end in .npz"),
    "tokenize output folder missing": ("tokenize", lambda r, t: [
        f"--workdir={r.vqvae}", f"--output={t / 'no' / 'codes.npz'}"], "does not exist"),
    "tokenize output is a folder": ("tokenize", lambda r, t: [
        f"--workdir={r.vqvae}", f"--output={r.inputs / 'folder.npz'}"], "is a directory"),
    "tokenize its json is a folder": ("tokenize", lambda r, t: [
        f"--workdir={r.vqvae}", f"--output={r.inputs / 'codes.npz'}"], "codes.json is a directory"),
    "tokenize output under a file": ("tokenize", lambda r, t: [
        f"--workdir={r.vqvae}", f"--output={r.npz}/codes.npz"], "does not exist"),
    "tokenize empty output": ("tokenize", lambda r, t: [f"--workdir={r.vqvae}", "--output="],
                              "--output is empty"),
    # ---- python -m dvq_jax.sample
    "sample no flags": ("sample", lambda r, t: [], "use --prior_workdir=P"),
    "sample extra argument": ("sample", lambda r, t: [f"--prior_workdir={r.prior}", "x"],
                              "use --prior_workdir=P"),
    "sample unknown flag": ("sample", lambda r, t: [f"--prior_workdir={r.prior}", "--temp=2"],
                            "temp"),
    "sample count not a number": ("sample", lambda r, t: [
        f"--prior_workdir={r.prior}", "--num_samples=four"], "--num_samples=four"),
    "sample count 0": ("sample", lambda r, t: [f"--prior_workdir={r.prior}", "--num_samples=0"],
                       "--num_samples"),
    "sample count 10^9": ("sample", lambda r, t: [
        f"--prior_workdir={r.prior}", "--num_samples=1000000000"], "--num_samples"),
    "sample temperature inf": ("sample", lambda r, t: [
        f"--prior_workdir={r.prior}", "--temperature=inf", f"--output={t / 's.png'}"],
        "--temperature=inf must be a finite number > 0"),
    "sample temperature nan": ("sample", lambda r, t: [
        f"--prior_workdir={r.prior}", "--temperature=nan", f"--output={t / 's.png'}"],
        "--temperature=nan"),
    "sample temperature 0": ("sample", lambda r, t: [
        f"--prior_workdir={r.prior}", "--temperature=0", f"--output={t / 's.png'}"],
        "--temperature=0.0"),
    "sample temperature negative": ("sample", lambda r, t: [
        f"--prior_workdir={r.prior}", "--temperature=-1", f"--output={t / 's.png'}"],
        "--temperature=-1.0"),
    "sample temperature text": ("sample", lambda r, t: [
        f"--prior_workdir={r.prior}", "--temperature=hot"], "--temperature=hot"),
    "sample top_k negative": ("sample", lambda r, t: [f"--prior_workdir={r.prior}", "--top_k=-1"],
                              "--top_k"),
    "sample top_k above K": ("sample", lambda r, t: [
        f"--prior_workdir={r.prior}", "--top_k=999", "--num_samples=1",
        f"--output={t / 's.png'}"], "top_k = 999 must be in [0, K = 16]"),
    "sample seed text": ("sample", lambda r, t: [f"--prior_workdir={r.prior}", "--seed=x"],
                         "--seed=x"),
    "sample jpg output": ("sample", lambda r, t: [
        f"--prior_workdir={r.prior}", f"--output={t / 's.jpg'}"], "must end in .png"),
    "sample npz output": ("sample", lambda r, t: [
        f"--prior_workdir={r.prior}", f"--output={t / 's.npz'}"], "must end in .png"),
    "sample its npz is a folder": ("sample", lambda r, t: [
        f"--prior_workdir={r.prior}", f"--output={r.inputs / 'samples.png'}"],
        "samples.npz is a directory"),
    "sample output folder missing": ("sample", lambda r, t: [
        f"--prior_workdir={r.prior}", f"--output={t / 'no' / 's.png'}"], "does not exist"),
    "sample output is a folder": ("sample", lambda r, t: [
        f"--prior_workdir={r.prior}", f"--output={r.inputs / 'folder.png'}"], "is a directory"),
    "sample missing prior": ("sample", lambda r, t: [
        f"--prior_workdir={t / 'nowhere'}", f"--output={t / 's.png'}"],
        "config.json does not exist"),
    "sample VQ-VAE workdir": ("sample", lambda r, t: [
        f"--prior_workdir={r.vqvae}", f"--output={t / 's.png'}"], "holds a 'learned_prior' run"),
    # ---- python -m dvq_jax.codec
    "codec no command": ("codec", lambda r, t: [], "give one command"),
    "codec unknown command": ("codec", lambda r, t: ["inflate", "--input=x", "--output=y"],
                              "give one command"),
    "codec two commands": ("codec", lambda r, t: ["compress", "decompress"], "give one command"),
    "codec mode typo": ("codec", lambda r, t: ["compress", "--mode=lossles"], "--mode=lossles"),
    "codec unknown flag": ("codec", lambda r, t: ["compress", "--inptu=x"], "inptu"),
    "compress no input": ("codec", lambda r, t: ["compress", "--output=x.dvqz"],
                          "--input is required"),
    "compress no output": ("codec", lambda r, t: ["compress", f"--input={r.npz}"],
                           "--output is required"),
    "compress no prior": ("codec", lambda r, t: ["compress", f"--input={r.npz}",
                                                 f"--output={t / 'f.dvqz'}"], "--prior_workdir"),
    "compress missing output folder": ("codec", lambda r, t: [
        "compress", f"--prior_workdir={r.prior}", f"--input={r.npz}",
        "--output=/nonexistent/x.dvqz"], "/nonexistent does not exist"),
    "compress output suffix": ("codec", lambda r, t: [
        "compress", f"--prior_workdir={r.prior}", f"--input={r.npz}", f"--output={t / 'f.zip'}"],
        "must end in .dvqz"),
    "compress output is a folder": ("codec", lambda r, t: [
        "compress", f"--prior_workdir={r.prior}", f"--input={r.npz}",
        f"--output={r.inputs / 'folder.dvqz'}"], "is a directory"),
    "compress missing input": ("codec", lambda r, t: [
        "compress", f"--prior_workdir={r.prior}", f"--input={t / 'none.npz'}",
        f"--output={t / 'f.dvqz'}"], "does not exist"),
    "compress missing prior": ("codec", lambda r, t: [
        "compress", f"--prior_workdir={t / 'nowhere'}", f"--input={r.npz}",
        f"--output={t / 'f.dvqz'}"], "config.json does not exist"),
    "compress empty output": ("codec", lambda r, t: [
        "compress", f"--prior_workdir={r.prior}", f"--input={r.npz}", "--output="],
        "--output is required"),
    "compress VQ-VAE as prior": ("codec", lambda r, t: [
        "compress", f"--prior_workdir={r.vqvae}", f"--input={r.npz}",
        f"--output={t / 'f.dvqz'}"], "holds a 'learned_prior' run"),
    **{f"compress {name}": ("codec", lambda r, t, name=name: [
        "compress", f"--prior_workdir={r.prior}", f"--input={r.inputs / name}",
        f"--output={t / 'f.dvqz'}"], fragment) for name, fragment in {
            "text.npz": "not an .npz",
            "objects.npz": "Object arrays cannot be loaded",
            "no_key.npz": "no array 'images'",
            "float.npz": "is float32; store uint8",
            "rank3.npz": "store (N, H, W, C)",
            "none.npz": "holds no images",
            "small.npz": "images must be uint8 (N, 16, 16, 3)",
            "single.npz": "single .npy array",
            "truncated.npz": "cannot be read",
            "rgba": "b.png in --input=",
            "gray": "is a L image but the model codes RGB",
            "palette": "is a P image",
            "bits16": "is a I;16 image",
            "wide": "17x16",
            "empty": "holds no image files",
            "broken": "cannot read image",
            "clash": "would both decompress to a.png",
        }.items()},
    "decompress no input": ("codec", lambda r, t: ["decompress", f"--output={t / 'o'}"],
                            "--input is required"),
    "decompress missing input": ("codec", lambda r, t: [
        "decompress", f"--input={t / 'none.dvqz'}", f"--output={t / 'o'}"], "cannot read --input"),
    "decompress output folder not empty": ("codec", lambda r, t: [
        "decompress", f"--input={r.dvqz}", f"--output={r.photos}"], "is a folder that is not empty"),
    "decompress output is a file": ("codec", lambda r, t: [
        "decompress", f"--input={r.dvqz}", f"--output={r.dvqz}"], "is a file, not a folder"),
    "decompress output parent missing": ("codec", lambda r, t: [
        "decompress", f"--input={r.dvqz}", f"--output={t / 'no' / 'o'}"], "does not exist"),
    "decompress npz parent missing": ("codec", lambda r, t: [
        "decompress", f"--input={r.dvqz}", "--output=/nonexistent/o.npz"], "does not exist"),
    "decompress unknown flag": ("codec", lambda r, t: [
        "decompress", f"--input={r.dvqz}", f"--output={t / 'o'}", "--prior=x"], "prior"),
    "decompress VQ-VAE as prior": ("codec", lambda r, t: [
        "decompress", f"--input={r.dvqz}", f"--output={t / 'o'}", f"--prior_workdir={r.vqvae}"],
        "holds a 'learned_prior' run"),
    **{f"decompress {kind}": ("codec", lambda r, t, kind=kind: [
        "decompress", f"--input={_damaged(r, kind)}", f"--output={t / 'o'}"], fragment)
       for kind, fragment in {
           "empty": "truncated file: 0 bytes",
           "short": "truncated file: 5 bytes",
           "not ours": "not a dvq_jax codec file",
           "header cut": "truncated file",
           "payload cut": "truncated file",
           "trailing bytes": "bytes after the payload",
           "header bit": "header checksum",
           "version bit": "header checksum",
           "payload bit": "payload checksum",
           "newer version": "format version 3 is not supported",
           "mode 9": "mode 9 is out of bounds",
           "count 0": "image count 0 is out of bounds",
           "count 2^31": "3 distinct image names for 2147483648 images",
           "height 0": "image size (0, 16, 3) is out of bounds",
           "width 999": "the model takes (16, 16, 3)",
           "batch 0": "batch size 0 is out of bounds",
           "batch 60000": "batch size 60000 is out of bounds",
           "payload length odd": "payload length 7 is out of bounds",
       }.items()},
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_one_line_exit_2_and_changes_nothing(runs, tmp_path, capsys, name):
  command, argv, fragment = CASES[name]
  argv = argv(runs, tmp_path)
  before = _tree(runs.root)
  code, _, err = _call(command, argv, capsys)
  _assert_one_error_line(code, err, fragment)
  assert _tree(runs.root) == before  # workdirs and inputs untouched, nothing added
  assert not list(tmp_path.iterdir()), list(tmp_path.iterdir())  # no workdir, no output


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_exits_0(capsys, command):
  code, out, _ = _call(command, ["--help"], capsys)
  assert code == 0 and "--verbosity" in out and "flags:" in out


# ----------------------------------------------------------------- faults: full disk, damage
def _full_disk(monkeypatch, limit: int = 300) -> None:
  """Files opened for writing by `dvq_jax.outputs` take `limit` bytes, then raise ENOSPC."""
  real_open = open

  class Full:
    def __init__(self, f):
      self._f, self._written = f, 0

    def write(self, data):
      room = max(0, limit - self._written)
      if len(data) > room:
        self._f.write(bytes(data[:room]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
      self._written += len(data)
      return self._f.write(data)

    def __getattr__(self, name):
      return getattr(self._f, name)

    def __enter__(self):
      return self

    def __exit__(self, *exc):
      self._f.close()

  monkeypatch.setattr(outputs, "open", lambda path, mode="r": Full(real_open(path, mode)),
                      raising=False)


FULL_DISK = {
    "tokenize": lambda r, t: ["tokenize", f"--workdir={r.vqvae}", f"--output={t / 'codes.npz'}"],
    "sample": lambda r, t: ["sample", f"--prior_workdir={r.prior}", "--num_samples=2",
                            f"--output={t / 's.png'}"],
    "compress": lambda r, t: ["codec", "compress", f"--prior_workdir={r.prior}",
                              f"--input={r.npz}", f"--output={t / 'f.dvqz'}"],
    "decompress npz": lambda r, t: ["codec", "decompress", f"--input={r.dvqz}",
                                    f"--output={t / 'o.npz'}"],
}


@pytest.mark.parametrize("name", sorted(FULL_DISK))
def test_a_full_disk_leaves_nothing_partial(runs, tmp_path, capsys, monkeypatch, name):
  _full_disk(monkeypatch)
  command, *argv = FULL_DISK[name](runs, tmp_path)
  before = _tree(runs.root)
  code, _, err = _call(command, argv, capsys)
  _assert_one_error_line(code, err, "No space left on device", after_compute=True)
  assert not list(tmp_path.iterdir()) and _tree(runs.root) == before


def test_a_full_disk_while_writing_a_folder_leaves_nothing(runs, tmp_path, capsys, monkeypatch):
  real_save, calls = Image.Image.save, []

  def save(image, path, *args, **kwargs):
    calls.append(path)
    if len(calls) == 2:
      pathlib.Path(path).write_bytes(b"\x89PNG half")
      raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return real_save(image, path, *args, **kwargs)

  monkeypatch.setattr(Image.Image, "save", save)
  code, _, err = _call("codec", ["decompress", f"--input={runs.dvqz}",
                                 f"--output={tmp_path / 'out'}"], capsys)
  _assert_one_error_line(code, err, "No space left on device", after_compute=True)
  assert len(calls) == 2 and not list(tmp_path.iterdir())


def test_damaged_checkpoint_metadata_is_one_line(runs, tmp_path, capsys):
  workdir = tmp_path / "vqvae"
  shutil.copytree(runs.vqvae, workdir)
  metadata = next(p for p in (workdir / "checkpoints").rglob("_METADATA"))
  data = bytearray(metadata.read_bytes())
  data[len(data) // 2] ^= 0x20
  metadata.write_bytes(bytes(data))
  code, _, err = _call("tokenize", [f"--workdir={workdir}", f"--output={tmp_path / 'c.npz'}"],
                       capsys)
  _assert_one_error_line(code, err, "cannot be read")
  assert not (tmp_path / "c.npz").exists()


def test_a_truncated_code_cache_is_rebuilt(runs, tmp_path, capsys):
  tokenizer = tokenizer_lib.Tokenizer.from_workdir(str(runs.vqvae))
  codes, _ = prior_train.load_or_extract_codes(str(tmp_path), tokenizer)
  cache = tmp_path / prior_train.CODES_FILE
  cache.write_bytes(cache.read_bytes()[:100])
  again, _ = prior_train.load_or_extract_codes(str(tmp_path), tokenizer)
  assert "is damaged" in capsys.readouterr().out
  for split in ("train", "test"):
    np.testing.assert_array_equal(again[split], codes[split])
  assert _partial_files(tmp_path) == []


# ------------------------------------------------------------ what succeeds must be exact
def test_a_folder_round_trip_keeps_names_and_pixels(runs, tmp_path, capsys):
  code, _, err = _call("codec", ["compress", f"--prior_workdir={runs.prior}",
                                 f"--input={runs.photos}", f"--output={tmp_path / 'f.dvqz'}"],
                       capsys)
  assert code == 0, err
  code, _, err = _call("codec", ["decompress", f"--input={tmp_path / 'f.dvqz'}",
                                 f"--output={tmp_path / 'out'}"], capsys)
  assert code == 0, err
  images, names = files.read_images(str(runs.photos), 3)
  assert sorted(os.listdir(tmp_path / "out")) == sorted(files.png_name(n) for n in names)
  for name, image in zip(names, images):
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / files.png_name(name))),
                                  image)
  assert "compress" in err and "image" in err  # the progress line, in images
  assert _partial_files(tmp_path) == []


def test_sample_writes_png_and_npz(runs, tmp_path, capsys):
  code, _, err = _call("sample", [f"--prior_workdir={runs.prior}", "--num_samples=2",
                                  f"--output={tmp_path / 's.png'}"], capsys)
  assert code == 0, err
  assert Image.open(tmp_path / "s.png").format == "PNG"
  with np.load(tmp_path / "s.npz") as saved:
    assert saved["images"].shape == (2, 16, 16, 3)
  assert sorted(os.listdir(tmp_path)) == ["s.npz", "s.png"]


# ------------------------------------------------------------------------------------- signals
def _wait_for_signal_policy(proc: subprocess.Popen, timeout: float = 300) -> None:
  """Until the process catches SIGTERM (Linux: /proc/PID/status SigCgt), i.e. `cli.run` has
  installed the signal policy."""
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline and proc.poll() is None:
    status = pathlib.Path(f"/proc/{proc.pid}/status").read_text()
    caught = int(next(line.split()[1] for line in status.splitlines()
                      if line.startswith("SigCgt:")), 16)
    if caught >> (signal.SIGTERM - 1) & 1:
      return
    time.sleep(0.02)
  raise AssertionError(f"no signal policy in {timeout} s: {proc.communicate()}")


def _start(*argv: str, cwd) -> subprocess.Popen:
  env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
  return subprocess.Popen([sys.executable, "-m", *argv], cwd=cwd, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _assert_interrupted(proc: subprocess.Popen, signum: int) -> str:
  _, err = proc.communicate(timeout=120)
  errors = [line for line in err.splitlines() if line.startswith("error:")]
  assert proc.returncode == 128 + signum and "Traceback" not in err, (proc.returncode, err)
  assert errors == [f"error: interrupted by {signal.Signals(signum).name}; no partial output"
                    " was left, run the command again to redo it"], err
  assert err.strip().splitlines()[-1] == errors[0]
  return err


def test_ctrl_c_during_compress_exits_130_and_leaves_nothing(runs, tmp_path):
  rng = np.random.default_rng(0)
  np.savez(tmp_path / "many.npz", images=rng.integers(0, 256, (256, 16, 16, 3), np.uint8))
  out = tmp_path / "out"
  out.mkdir()
  proc = _start("dvq_jax.codec", "compress", f"--prior_workdir={runs.prior}",
                f"--input={tmp_path / 'many.npz'}", f"--output={out / 'f.dvqz'}", cwd=tmp_path)
  for line in proc.stderr:  # the first progress line: 64 of 256 images coded
    if line.startswith("compress"):
      break
  proc.send_signal(signal.SIGINT)
  _assert_interrupted(proc, signal.SIGINT)
  assert not list(out.iterdir())


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_before_training_exits_with_one_line(runs, tmp_path, signum):
  proc = _start("dvq_jax.main", PRIOR, f"--config.vqvae_workdir={runs.vqvae}",
                f"--workdir={tmp_path / 'prior'}", cwd=ROOT)
  _wait_for_signal_policy(proc)
  proc.send_signal(signum)
  _assert_interrupted(proc, signum)
  assert not (tmp_path / "prior" / "checkpoints").exists()


def test_sigterm_while_sampling_exits_143_and_leaves_nothing(runs, tmp_path):
  proc = _start("dvq_jax.sample", f"--prior_workdir={runs.prior}", "--num_samples=4",
                f"--output={tmp_path / 's.png'}", cwd=tmp_path)
  _wait_for_signal_policy(proc)
  proc.send_signal(signal.SIGTERM)
  _assert_interrupted(proc, signal.SIGTERM)
  assert not list(tmp_path.iterdir())
