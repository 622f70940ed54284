"""Every config file loads, with and without its `:small` variant, and passes validation."""


import pytest

from dvq_jax.vqvae import validation
from tests import config_files

CONFIGS = sorted(p.name for p in (config_files.ROOT / "configs").glob("*.py"))
LEARNED_PRIOR = ["cifar10.py", "imagenet32.py", "imagenet64.py", "demo.py"]


def test_all_config_files_are_covered():
  assert set(LEARNED_PRIOR) <= set(CONFIGS)


@pytest.mark.parametrize("name", CONFIGS)
def test_config_loads(name):
  config = config_files.load(f"configs/{name}")
  assert config.experiment in ("learned_prior", "static_prior", "rate_distortion", "code_prior")


@pytest.mark.parametrize("arg", ["", ":small", ":full"])
def test_rate_distortion_config_points_validate(arg):
  from dvq_jax import rate_distortion  # pylint: disable=g-import-not-at-top
  config = config_files.load(f"configs/rate_distortion.py{arg}")
  assert config.experiment == "rate_distortion"
  for point in rate_distortion.points(config):
    validation.check_config(rate_distortion.point_config(config, point))


@pytest.mark.parametrize("name", LEARNED_PRIOR)
@pytest.mark.parametrize("arg", ["", ":small"])
def test_learned_prior_configs_validate(name, arg):
  config = config_files.load(f"configs/{name}{arg}")
  validation.check_config(config)
  assert config.experiment == "learned_prior"


@pytest.mark.parametrize("name", ["cifar10.py", "imagenet32.py", "imagenet64.py"])
def test_paper_settings(name):
  config = config_files.load(f"configs/{name}")
  assert (config.codebook_size, config.num_codebooks, config.batch_size) == (512, 8, 128)
  assert (config.learning_rate, config.num_train_steps) == (2e-4, 100_000)
  assert (config.model.hidden_channels, config.model.residual_channels) == (256, 64)


@pytest.mark.parametrize("arg", ["", ":small"])
def test_code_prior_config_validates(arg):
  from dvq_jax.prior import train as prior_train  # pylint: disable=g-import-not-at-top
  config = config_files.load(f"configs/prior.py{arg}")
  with config.unlocked():
    config.vqvae_workdir = "/tmp/some_vqvae_run"
  prior_train.check_config(config)
  assert config.experiment == "code_prior"
