"""Every shipped config's train step, built for a mesh and compiled once per distinct program:
shared by tests/test_plan.py and its 8-CPU-device subprocess."""

import hashlib

from dvq_jax.plan import analysis
from dvq_jax.plan import programs as programs_lib
from tests import config_files
from tests.conftest import ROOT

# Shipped configs that are studies, not one trained model: they have no train step to plan.
STUDIES = {"static_prior", "rate_distortion"}
# The VQ-VAE whose codes configs/prior.py models, as its docstring trains it (full and small).
FULL_VQVAE_FOR_PRIOR = "configs/demo.py"
SMALL_VQVAE_FOR_PRIOR = "configs/demo.py:small"


def trained_configs() -> list[str]:
  """Every shipped config with a train step, at its small variant (a new one is found here)."""
  specs = []
  for path in sorted((ROOT / "configs").glob("*.py")):
    spec = f"configs/{path.name}:small"
    experiment = config_files.load(spec).experiment
    assert experiment in STUDIES | {"learned_prior", "code_prior"}, spec
    if experiment not in STUDIES:
      specs.append(spec)
  return specs


def train_steps(mesh) -> dict[str, programs_lib.Program]:
  vqvae_config = config_files.load(SMALL_VQVAE_FOR_PRIOR)
  return {spec: programs_lib.programs(config_files.load(spec), mesh, vqvae_config)[0]
          for spec in trained_configs()}


def compile_distinct(steps: dict) -> dict[str, analysis.Analysis]:
  """Lowers every step and compiles each distinct program once: configs whose small variants
  lower to the same StableHLO (cifar10 and imagenet32) share one compilation."""
  by_text, result = {}, {}
  for spec, program in steps.items():
    text = program.jitted.lower(*program.args).as_text()
    digest = hashlib.sha256(text.encode()).hexdigest()
    if digest not in by_text:
      by_text[digest] = analysis.analyze(program, *analysis.compile_program(program))
    result[spec] = by_text[digest]
  return result
