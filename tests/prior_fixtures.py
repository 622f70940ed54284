"""Tiny VQ-VAE workdirs for the tokenizer, prior and sampling tests: a checkpoint of freshly
initialised params (no training), so a test that needs one costs an init and a save."""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from dvq_jax import flat_random
from dvq_jax import vqvae
from dvq_jax.training import checkpointing
from tests import config_files

IMAGE_SHAPE = (16, 16, 3)


def write_npz(path: pathlib.Path, num_train: int = 24, num_test: int = 10, seed: int = 0) -> str:
  rng = np.random.default_rng(seed)
  np.savez(path, train=rng.integers(0, 256, (num_train, *IMAGE_SHAPE), dtype=np.uint8),
           test=rng.integers(0, 256, (num_test, *IMAGE_SHAPE), dtype=np.uint8))
  return f"npz:{path}"


def perturbed(params, seed: int, scale: float):
  """`params` with Gaussian noise of std `scale` added to every leaf: a context head's last
  layers start at zero, which would hide what they read."""
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  return jax.tree.unflatten(tree, [x + scale * flat_random.normal(k, x.shape)
                                   for x, k in zip(leaves, keys)])


def vqvae_workdir(tmp_path: pathlib.Path, quantizer: str = "dvq", step: int = 3, *,
                  noise: float = 0.0, **overrides) -> pathlib.Path:
  """A VQ-VAE workdir (config.json + checkpoint `step`) on 16x16 npz images, grid 4x4; `noise`
  > 0 adds that much Gaussian noise to every param (a context head's last layers start at 0)."""
  workdir = tmp_path / f"vqvae_{quantizer}"
  workdir.mkdir()
  config = config_files.load("configs/demo.py:small")
  with config.unlocked():
    config.quantizer = quantizer
    config.dataset = write_npz(tmp_path / "images.npz")
    config.max_eval_examples = 0
    for key, value in overrides.items():
      config[key] = value
  (workdir / "config.json").write_text(config.to_json_best_effort(indent=2))
  model = vqvae.build_model(config, IMAGE_SHAPE)
  params = model.init(jax.random.key(step), jnp.zeros((1, *IMAGE_SHAPE), jnp.uint8))["params"]
  if noise:
    params = perturbed(params, step + 1, noise)
  checkpointer = checkpointing.Checkpointer(str(workdir), 3)
  checkpointer.save(step, {"step": jnp.asarray(step, jnp.int32), "params": params})
  checkpointer.close()
  return workdir
