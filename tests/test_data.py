"""The input pipeline: TFDS (mocked and on disk), npz, folders, demo data; pure, sharded batches."""

import io

import numpy as np
from PIL import Image
import pytest
import skimage.data
import tensorflow_datasets as tfds

from dvq_jax import data
from dvq_jax.vqvae import defaults
from dvq_jax.errors import ConfigError


def _config(dataset, **overrides):
  config = defaults.learned_prior()
  config.dataset = dataset
  for key, value in overrides.items():
    config[key] = value
  return config


def _indexed(num_train, num_test=5, shape=(2, 2, 3)):
  """ImageData whose image i holds i in pixel (0, 0) (channels 0, 1 = i % 256, i // 256)."""
  def images(count):
    x = np.zeros((count, *shape), np.uint8)
    x[:, 0, 0, 0] = np.arange(count) % 256
    x[:, 0, 0, 1] = np.arange(count) // 256
    return x
  return data.ImageData("indexed", shape, num_train, num_test, images(num_train), images(num_test))


def _indices(images):
  return images[:, 0, 0, 0].astype(int) + 256 * images[:, 0, 0, 1].astype(int)


def _one_line_error(match, fn, *args):
  with pytest.raises(ConfigError, match=match) as error:
    fn(*args)
  assert "\n" not in str(error.value)
  return str(error.value)


# --- names --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", [
    "cifar10", "imagenet_resized/32x32", "imagenet_resized/64x64", "demo", "npz:/no/such.npz",
    "folder:relative/dir",
])
def test_check_dataset_name_accepts_the_documented_forms_without_io(name):
  data.check_dataset_name(name)


@pytest.mark.parametrize("name", ["mnist", "imagenet_resized/128x128", "npz:", "folder:", "", None])
def test_check_dataset_name_and_load_reject_other_forms(name):
  message = _one_line_error("config.dataset", data.check_dataset_name, name)
  if name and not name.endswith(":"):
    assert "npz:PATH, folder:PATH or demo" in message
  _one_line_error("config.dataset", data.load, _config(name))


# --- TFDS ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,test_split", [
    ("cifar10", "test"), ("imagenet_resized/32x32", "validation"),
])
def test_tfds_under_mock_data(name, test_split):
  with tfds.testing.mock_data(num_examples=20):
    ds = data.load(_config(name, test_split=test_split, max_eval_examples=7))
    assert (ds.name, ds.image_shape, ds.num_train, ds.num_test) == (name, (32, 32, 3), 20, 7)
    batch = data.train_batch(ds, step=3, global_batch_size=8, seed=0)
    assert batch.shape == (8, 32, 32, 3) and batch.dtype == np.uint8
    np.testing.assert_array_equal(batch, data.train_batch(ds, step=3, global_batch_size=8, seed=0))
    assert not np.array_equal(batch, data.train_batch(ds, step=3, global_batch_size=8, seed=1))
    # One epoch of 20 // 4 steps reads every training image once.
    epoch = np.concatenate([data.train_batch(ds, step=s, global_batch_size=4, seed=2)
                            for s in range(5)])
    expected = np.stack([ds.train[i] for i in range(20)])
    assert sorted(x.tobytes() for x in epoch) == sorted(x.tobytes() for x in expected)
    # max_eval_examples=7 (mock_data ignores sub-splits such as test[:7]): the first 7, once each.
    batches = list(data.eval_batches(ds, global_batch_size=4))
    images = np.concatenate([b["image"] for b in batches])
    masks = np.concatenate([b["mask"] for b in batches])
    assert masks.tolist() == [True] * 7 + [False]
    np.testing.assert_array_equal(images[:7], np.stack([ds.test[i] for i in range(7)]))
    assert not images[7].any()


class _LocalCifar10(tfds.image_classification.Cifar10, skip_registration=True):
  """cifar10 prepared on disk from given images: the real array_record + PNG read path."""

  name = "cifar10"
  images = {}
  # tfds looks for a builder's files through a dotted module path, and for one outside
  # tensorflow_datasets that lookup imports the absent importlib_resources; a bare name skips it.
  __module__ = "local_cifar10"

  def _split_generators(self, dl_manager):
    return {split: self._generate(images) for split, images in self.images.items()}

  def _generate(self, images):
    for i, image in enumerate(images):
      png = io.BytesIO()
      Image.fromarray(image).save(png, format="PNG")  # encoding a numpy image needs TensorFlow
      png.seek(0)
      yield str(i), {"id": str(i), "image": png, "label": i % 10}


def test_tfds_reads_a_prepared_array_record_data_set(tmp_path):
  demo = data.load(_config("demo"))
  train, test = demo.train[:9], demo.test[:5]
  _LocalCifar10.images = {"train": train, "test": test}
  _LocalCifar10(data_dir=str(tmp_path), file_format="array_record").download_and_prepare()
  ds = data.load(_config("cifar10", data_dir=str(tmp_path), train_split="train[:8]"))
  assert (ds.image_shape, ds.num_train, ds.num_test) == ((32, 32, 3), 8, 5)
  # tfds stores examples in its own (hashed) order, so compare sets of images.
  written = {x.tobytes() for x in train}
  read = {ds.train[i].tobytes() for i in range(8)}
  assert len(read) == 8 and read <= written
  stored_test = np.stack([ds.test[i] for i in range(5)])
  assert sorted(x.tobytes() for x in stored_test) == sorted(x.tobytes() for x in test)
  batches = list(data.eval_batches(ds, global_batch_size=4, process_index=1, process_count=2))
  np.testing.assert_array_equal(batches[0]["image"], stored_test[2:4])
  assert [b["mask"].tolist() for b in batches] == [[True, True], [False, False]]
  message = _one_line_error("cannot read splits", data.load,
                            _config("cifar10", data_dir=str(tmp_path), test_split="validation"))
  assert "--config.test_split" in message


def test_tfds_data_set_not_on_disk_says_how_to_get_it(tmp_path):
  message = _one_line_error(
      "not prepared", data.load, _config("cifar10", data_dir=str(tmp_path))
  )
  assert "tfds build cifar10 --file_format=array_record" in message
  assert str(tmp_path) in message and "--config.data_dir" in message


# --- batches ------------------------------------------------------------------------------------


def test_train_batch_is_a_pure_function_and_train_batches_resume_exactly():
  ds = _indexed(50)
  kwargs = dict(global_batch_size=6, seed=3)
  at = [data.train_batch(ds, step=s, **kwargs) for s in range(7, 12)]
  _ = data.train_batch(ds, step=100, **kwargs)  # history must not matter
  np.testing.assert_array_equal(at[2], data.train_batch(ds, step=9, **kwargs))
  for prefetch in (0, 2):
    batches = data.train_batches(ds, start_step=7, prefetch=prefetch, **kwargs)
    for expected in at:
      np.testing.assert_array_equal(next(batches), expected)
    batches.close()


def test_train_batches_with_a_grain_worker_process_match_train_batch():
  ds = _indexed(40)
  batches = data.train_batches(ds, start_step=4, global_batch_size=8, seed=5, worker_count=1)
  for step in range(4, 7):
    np.testing.assert_array_equal(
        next(batches), data.train_batch(ds, step=step, global_batch_size=8, seed=5)
    )
  batches.close()


def test_train_epochs_are_seeded_permutations_with_the_remainder_dropped():
  ds = _indexed(23)  # 23 // 6 = 3 steps per epoch; 5 images per epoch left out
  epochs = [np.concatenate([_indices(data.train_batch(ds, step=s, global_batch_size=6, seed=0))
                            for s in range(3 * e, 3 * e + 3)]) for e in range(2)]
  for epoch in epochs:
    assert len(set(epoch.tolist())) == 18 and set(epoch.tolist()) <= set(range(23))
  assert epochs[0].tolist() != epochs[1].tolist()
  # The order of numpy's Generator.permutation over (seed, epoch), kept in 4-byte indices.
  for e, epoch in enumerate(epochs):
    np.testing.assert_array_equal(epoch, np.random.default_rng((0, e)).permutation(23)[:18])


@pytest.mark.parametrize("process_count", [2, 4])
def test_process_shares_concatenate_to_the_global_batch(process_count):
  ds = _indexed(30)
  for step in (0, 4, 9):
    whole = data.train_batch(ds, step=step, global_batch_size=8, seed=1)
    shares = [data.train_batch(ds, step=step, global_batch_size=8, seed=1, process_index=p,
                               process_count=process_count) for p in range(process_count)]
    assert all(s.shape == (8 // process_count, 2, 2, 3) for s in shares)
    np.testing.assert_array_equal(np.concatenate(shares), whole)


@pytest.mark.parametrize("num_test,global_batch_size,process_count", [
    (10, 4, 1), (10, 6, 3), (7, 3, 3), (2, 6, 3), (12, 6, 3),
])
def test_eval_batches_count_every_example_exactly_once(num_test, global_batch_size,
                                                       process_count):
  ds = _indexed(8, num_test=num_test)
  per_process = [list(data.eval_batches(ds, global_batch_size=global_batch_size, process_index=p,
                                        process_count=process_count))
                 for p in range(process_count)]
  num_batches = -(-num_test // global_batch_size)
  assert [len(batches) for batches in per_process] == [num_batches] * process_count
  seen = []
  for b in range(num_batches):
    for batches in per_process:
      image, mask = batches[b]["image"], batches[b]["mask"]
      assert image.dtype == np.uint8 and mask.dtype == bool
      assert image.shape == (global_batch_size // process_count, 2, 2, 3)
      assert not image[~mask].any()
      seen.extend(_indices(image[mask]).tolist())
  assert seen == list(range(num_test))  # in order, each once


def test_batch_size_errors_name_the_config_field():
  ds = _indexed(10)
  with pytest.raises(ConfigError, match="config.batch_size = 12 exceeds the 10"):
    data.train_batch(ds, step=0, global_batch_size=12, seed=0)
  with pytest.raises(ConfigError, match="multiple of the 3 processes"):
    data.train_batches(ds, start_step=0, global_batch_size=8, seed=0, process_count=3)
  with pytest.raises(ConfigError, match="multiple of the 3 processes"):
    data.eval_batches(ds, global_batch_size=8, process_count=3)


# --- npz ----------------------------------------------------------------------------------------


def _photo_patches(count, size=8):
  """Real image content: `count` size x size patches of the astronaut photograph."""
  photo = skimage.data.astronaut()
  return np.stack([photo[size * i:size * (i + 1), 100:100 + size] for i in range(count)])


def test_npz_round_trip(tmp_path):
  train, test = _photo_patches(12), _photo_patches(30)[20:]
  path = tmp_path / "patches.npz"
  np.savez(path, train=train, test=test)
  ds = data.load(_config(f"npz:{path}", max_eval_examples=6))
  assert (ds.image_shape, ds.num_train, ds.num_test) == ((8, 8, 3), 12, 6)
  np.testing.assert_array_equal(ds.train, train)
  np.testing.assert_array_equal(ds.test, test[:6])
  epoch = np.concatenate([data.train_batch(ds, step=s, global_batch_size=4, seed=0)
                          for s in range(3)])
  assert sorted(x.tobytes() for x in epoch) == sorted(x.tobytes() for x in train)


_GOOD = np.zeros((3, 4, 4, 3), np.uint8)


@pytest.mark.parametrize("arrays,match", [
    (dict(train=_GOOD), "has no array 'test'"),
    (dict(train=_GOOD.astype(np.float32), test=_GOOD), "'train' is float32; store uint8"),
    (dict(train=_GOOD, test=_GOOD[..., 0]), r"'test' has shape \(3, 4, 4\); store \(N, H, W"),
    (dict(train=_GOOD, test=np.zeros((3, 5, 4, 3), np.uint8)), r"\(4, 4, 3\) but test images"),
    (dict(train=_GOOD, test=np.zeros((3, 4, 4, 1), np.uint8)), r"\(4, 4, 3\) but test images"),
    (dict(train=_GOOD[:0], test=_GOOD), "'train' holds no images"),
    (dict(train=np.array([_GOOD, None], dtype=object), test=_GOOD), "cannot be read"),
])
def test_npz_errors(tmp_path, arrays, match):
  path = tmp_path / "bad.npz"
  np.savez(path, **arrays)
  _one_line_error(match, data.load, _config(f"npz:{path}"))


def test_npz_file_errors(tmp_path):
  _one_line_error("no such file", data.load, _config(f"npz:{tmp_path}/missing.npz"))
  np.save(tmp_path / "single.npy", _GOOD)
  _one_line_error("single .npy array", data.load, _config(f"npz:{tmp_path}/single.npy"))
  (tmp_path / "text.npz").write_text("not numpy")
  _one_line_error("is not an .npz file", data.load, _config(f"npz:{tmp_path}/text.npz"))


# --- folder -------------------------------------------------------------------------------------


def _write(path, array, mode=None):
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(array, mode).save(path)


def test_folder_reads_pngs_sorted_by_path_as_rgb(tmp_path):
  patches = _photo_patches(5)
  gray = patches[1].mean(-1).astype(np.uint8)
  rgba = np.concatenate([patches[2], np.full((8, 8, 1), 255, np.uint8)], -1)
  _write(tmp_path / "train" / "b.png", patches[0])
  _write(tmp_path / "train" / "a.png", gray)
  _write(tmp_path / "train" / "c" / "rgba.png", rgba)
  (tmp_path / "train" / "notes.txt").write_text("not an image")
  _write(tmp_path / "test" / "x.png", patches[3])
  _write(tmp_path / "test" / "y.png", patches[4])
  ds = data.load(_config(f"folder:{tmp_path}"))
  assert (ds.image_shape, ds.num_train, ds.num_test) == ((8, 8, 3), 3, 2)
  expected_train = [np.repeat(gray[..., None], 3, -1), patches[0], patches[2]]  # a, b, c/rgba
  for i, expected in enumerate(expected_train):
    assert ds.train[i].dtype == np.uint8
    np.testing.assert_array_equal(ds.train[i], expected)
  batch = next(data.eval_batches(ds, global_batch_size=4))
  np.testing.assert_array_equal(batch["image"][:2], patches[3:5])
  assert batch["mask"].tolist() == [True, True, False, False]


def test_folder_errors(tmp_path):
  _one_line_error("no folder", data.load, _config(f"folder:{tmp_path}"))
  (tmp_path / "train").mkdir()
  (tmp_path / "train" / "readme.txt").write_text("no images here")
  _write(tmp_path / "test" / "t.png", _GOOD[0])
  _one_line_error("holds no image files", data.load, _config(f"folder:{tmp_path}"))
  _write(tmp_path / "train" / "a.png", _GOOD[0])
  _write(tmp_path / "train" / "big.png", np.zeros((6, 4, 3), np.uint8))
  message = _one_line_error("is 4x6 pixels but", data.load, _config(f"folder:{tmp_path}"))
  assert "big.png" in message and "a.png" in message
  (tmp_path / "train" / "big.png").write_bytes(b"not a png")
  _one_line_error("cannot read image .*big.png", data.load, _config(f"folder:{tmp_path}"))


# --- demo ---------------------------------------------------------------------------------------


def test_demo_patches_come_from_different_photographs():
  ds = data.load(_config("demo"))
  assert (ds.image_shape, ds.num_train, ds.num_test) == ((32, 32, 3), 3971, 342)
  assert ds.train.dtype == ds.test.dtype == np.uint8
  np.testing.assert_array_equal(ds.train[0], skimage.data.astronaut()[:32, :32])
  np.testing.assert_array_equal(ds.test[0], skimage.data.coffee()[:32, :32])
  np.testing.assert_array_equal(ds.test[-1], skimage.data.chelsea()[256:288, 416:448])
  train = {x.tobytes() for x in ds.train}
  assert not any(x.tobytes() in train for x in ds.test)
  assert min(x.std() for x in ds.train) >= 2.0  # flat background patches are left out
