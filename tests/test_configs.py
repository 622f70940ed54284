"""Every file in configs/ loads with every combination of the `:arg` settings its get_config
declares and passes its experiment's checks; the files install with the package."""

import itertools
import os
import pathlib
import subprocess
import sys
from unittest import mock

import pytest

from dvq_jax import config_arg
from dvq_jax import packaged_configs
from dvq_jax.vqvae import validation
from tests import config_files

CONFIGS = sorted(p.name for p in (config_files.ROOT / "configs").glob("*.py"))
# Settings a file refuses together (one line, ValueError); every other combination must load.
EXCLUSIVE = ({"official", "paper"}, {"fig3", "fig4"})


def _declared_settings(name: str) -> list[str]:
  """The boolean settings `name`'s get_config passes to `config_arg.parse_arg`."""
  declared = {}
  parse_arg = config_arg.parse_arg

  def spy(arg, **defaults):
    declared.update(defaults)
    return parse_arg(arg, **defaults)

  with mock.patch.object(config_arg, "parse_arg", spy):
    config_files.load(f"configs/{name}")
  return sorted(key for key, value in declared.items() if isinstance(value, bool))


SETTINGS = {name: _declared_settings(name) for name in CONFIGS}
VARIANTS = [(name, ",".join(combo)) for name in CONFIGS
            for count in range(len(SETTINGS[name]) + 1)
            for combo in itertools.combinations(SETTINGS[name], count)]


def test_every_config_file_has_a_small_variant():
  assert len(CONFIGS) >= 7 and all("small" in SETTINGS[name] for name in CONFIGS), SETTINGS


def _check(config) -> None:
  """The checks its experiment runs before any compute (ConfigError if a field is bad)."""
  if config.experiment == "learned_prior":
    validation.check_config(config)
  elif config.experiment == "rate_distortion":
    from dvq_jax import rate_distortion  # pylint: disable=g-import-not-at-top
    points = rate_distortion.points(config)
    assert points
    for point in points:
      validation.check_config(rate_distortion.point_config(config, point))
  elif config.experiment == "code_prior":
    from dvq_jax.prior import train as prior_train  # pylint: disable=g-import-not-at-top
    with config.unlocked():
      config.vqvae_workdir = "/tmp/some_vqvae_run"
    prior_train.check_config(config)
  else:
    assert config.experiment == "static_prior"
    from dvq_jax.static_prior import plan  # pylint: disable=g-import-not-at-top
    assert plan.make_plan(config).jobs


@pytest.mark.parametrize("name,arg", VARIANTS, ids=[f"{n}:{a}" for n, a in VARIANTS])
def test_every_variant_loads_and_passes_its_checks(name, arg):
  spec = f"configs/{name}:{arg}" if arg else f"configs/{name}"
  chosen = set(filter(None, arg.split(",")))
  if any(pair <= chosen for pair in EXCLUSIVE):
    with pytest.raises(ValueError, match="^[^\n]*$"):
      config_files.load(spec)
    return
  _check(config_files.load(spec))


@pytest.mark.parametrize("name", ["cifar10.py", "imagenet32.py", "imagenet64.py"])
def test_paper_settings(name):
  config = config_files.load(f"configs/{name}")
  assert (config.codebook_size, config.num_codebooks, config.batch_size) == (512, 8, 128)
  assert (config.learning_rate, config.num_train_steps) == (2e-4, 100_000)
  assert (config.model.hidden_channels, config.model.residual_channels) == (256, 64)


def test_packaged_configs_in_a_checkout_are_the_configs_folder():
  assert packaged_configs.directory() == config_files.ROOT / "configs"
  assert packaged_configs.names() == [name.removesuffix(".py") for name in CONFIGS]
  assert packaged_configs.path("demo.py") == config_files.ROOT / "configs" / "demo.py"
  with pytest.raises(ValueError, match="no packaged config 'cifar100'; use one of cifar10, codec, demo"):
    packaged_configs.path("cifar100")


def test_an_installed_package_ships_every_config_file(tmp_path):
  # setup.py's build step lays out what a wheel installs; run from elsewhere, so the checkout's
  # configs/ cannot be found.
  build = tmp_path / "site"
  subprocess.run([sys.executable, "setup.py", "-q", "build_py", f"--build-lib={build}"],
                 cwd=config_files.ROOT, check=True, capture_output=True)
  assert sorted(p.name for p in (build / "dvq_jax" / "configs").glob("*.py")) == CONFIGS
  env = {**os.environ, "PYTHONPATH": str(build)}
  run = lambda *args: subprocess.run([sys.executable, "-m", "dvq_jax.packaged_configs", *args],
                                     cwd=tmp_path, env=env, capture_output=True, text=True)
  listed = run()
  assert listed.returncode == 0 and listed.stdout.split() == [n[:-3] for n in CONFIGS]
  found = run("rate_distortion")
  path = pathlib.Path(found.stdout.strip())
  assert found.returncode == 0 and path == build / "dvq_jax" / "configs" / "rate_distortion.py"
  # The installed file loads on its own (rate_distortion.py reads demo.py beside it).
  config = config_files.load_path(path, "small")
  assert config.experiment == "rate_distortion" and config.base.dataset == "demo"
  missing = run("nope")
  assert missing.returncode == 2 and missing.stderr.startswith("error: no packaged config 'nope'")
