"""Images for the learned-prior experiment: TFDS (via grain, no TensorFlow), npz, folders, demo.

`load(config)` opens the data set `config.dataset` names; `train_batch` / `train_batches` give
each process its share of a shuffled training batch as a pure function of the step (exact
resume), and `eval_batches` the padded and masked test set, each image counted exactly once.
Images stay uint8 until they reach the device.
"""

from dvq_jax.data._batches import check_batch_size
from dvq_jax.data._batches import eval_batches
from dvq_jax.data._batches import spread_test_images
from dvq_jax.data._batches import train_batch
from dvq_jax.data._batches import train_batches
from dvq_jax.data._dataset import TFDS_NAMES
from dvq_jax.data._dataset import ImageData
from dvq_jax.data._dataset import ImageSource
from dvq_jax.data._dataset import check_dataset_name
from dvq_jax.data._dataset import evenly_spaced
from dvq_jax.data._dataset import image_shape
from dvq_jax.data._dataset import load
from dvq_jax.data._npz import check_images
from dvq_jax.data._npz import read_npz

__all__ = [
    "TFDS_NAMES",
    "ImageData",
    "ImageSource",
    "check_batch_size",
    "check_images",
    "check_dataset_name",
    "eval_batches",
    "evenly_spaced",
    "image_shape",
    "load",
    "read_npz",
    "spread_test_images",
    "train_batch",
    "train_batches",
]
