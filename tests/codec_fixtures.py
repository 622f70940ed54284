"""A code-prior workdir laid out as training leaves it (config.json, codes.json, a checkpoint)
with perturbed initial params, on top of `prior_fixtures.vqvae_workdir`: the codec's real-model
tests need a prior whose predictions depend on the tokens, not a trained one."""

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from dvq_jax import flat_random
from dvq_jax import tokenizer as tokenizer_lib
from dvq_jax.data import _demo
from dvq_jax.prior.model import build_prior
from dvq_jax.training import checkpointing
from tests import config_files
from tests import prior_fixtures


def prior_workdir(tmp_path: pathlib.Path, vqvae_workdir: pathlib.Path, seed: int = 0,
                  name: str = "prior") -> pathlib.Path:
  tokenizer = tokenizer_lib.Tokenizer.from_workdir(str(vqvae_workdir))
  workdir = tmp_path / name
  workdir.mkdir()
  config = config_files.load("configs/prior.py:small")
  with config.unlocked():
    config.vqvae_workdir = str(vqvae_workdir)
  (workdir / "config.json").write_text(config.to_json_best_effort(indent=2))
  (workdir / "codes.json").write_text(json.dumps(tokenizer.metadata("npz", 0, 0)))
  model = build_prior(config, tokenizer)
  tokens = jnp.zeros((1, tokenizer.codes_per_image), jnp.int32)
  params = model.init(jax.random.key(seed), tokens)["params"]
  leaves, tree = jax.tree.flatten(params)  # the heads start at zero: a uniform prior
  keys = jax.random.split(jax.random.key(seed + 1), len(leaves))
  params = jax.tree.unflatten(tree, [x + 0.3 * flat_random.normal(k, x.shape)
                                     for x, k in zip(leaves, keys)])
  checkpointer = checkpointing.Checkpointer(str(workdir), 3)
  checkpointer.save(1, {"step": jnp.asarray(1, jnp.int32), "params": params})
  checkpointer.close()
  return workdir


def photo_crops(count: int) -> np.ndarray:
  """`count` real photographs: the demo test patches (coffee, chelsea) cut to 16x16."""
  height, width, _ = prior_fixtures.IMAGE_SHAPE
  _, test = _demo.demo_patches()
  step = len(test) // count
  return np.ascontiguousarray(test[::step][:count, :height, :width])
