"""Loads `configs/*.py` files the way `--config=path:arg` does, for tests."""

import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def load(spec: str):
  """`"configs/demo.py:small"` -> the ConfigDict its get_config returns."""
  path, _, arg = spec.partition(":")
  return load_path(ROOT / path, arg)


def load_with(spec: str, **overrides):
  """`load(spec)` with dotted `overrides` (`"model.hidden_channels": 8`) set, as `--config.X`."""
  config = load(spec)
  with config.unlocked():
    for key, value in overrides.items():
      target = config
      *parents, leaf = key.split(".")
      for parent in parents:
        target = target[parent]
      target[leaf] = value
  return config


def load_path(path: pathlib.Path, arg: str = ""):
  """The ConfigDict `get_config(arg)` of the config file at `path` returns."""
  module_spec = importlib.util.spec_from_file_location("config_file", path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg or None)
