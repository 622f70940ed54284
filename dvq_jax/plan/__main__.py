r"""`python -m dvq_jax.plan --config=configs/X.py[:variant] --topology=v5e:4x4 [--json]`.

Compiles the run's train and evaluation steps for the topology ahead of time, on this machine
(no TPU or GPU needed; TPU topologies need libtpu: `pip install -e ".[tpu]"`), and prints
per-chip memory, FLOPs, bytes, the roofline bound and the collectives. Exit code 2 with a
one-line `error:` for a bad flag or config, or when a step does not fit the chip's memory.
"""

import sys

from absl import app
from absl import flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "The run's config file, optionally followed by :arg.", lock_config=True)
_TOPOLOGY = flags.DEFINE_string(
    "topology", None, "What to plan for: v5e:AxB, v6e:AxB, v4:AxBxC, v5p:AxBxC (e.g. v5e:4x4),"
    " cpu:N (N simulated CPU devices) or h100 (an estimate).")
_JSON = flags.DEFINE_bool("json", False, "Print the plan as JSON.")
_FUSIONS = flags.DEFINE_integer(
    "fusions", 0, "Also list the N operations of each step with the most bytes and FLOPs.")
_PROGRAMS = flags.DEFINE_list("programs", "train_step,eval_step", "Which steps to compile.")
_VQVAE_CONFIG = config_flags.DEFINE_config_file(
    "vqvae_config", None, "For a prior without --config.vqvae_workdir: the VQ-VAE config whose"
    " codes it models, e.g. configs/demo.py.", lock_config=True)


def _fail(message: str) -> None:
  print(f"error: {message}", file=sys.stderr)
  sys.exit(2)


def _config(flag, name: str):
  try:
    config = flag.value
    config.get("experiment")  # a config file that failed to load raises on first access
    return config
  except Exception as e:  # pylint: disable=broad-except  (any failure inside the config file)
    reason = str(e).strip().splitlines()[-1].strip() if str(e).strip() else type(e).__name__
    _fail(f"cannot load --{name}: {reason}")


def main(argv) -> None:
  if len(argv) > 1:
    _fail(f"unexpected arguments {argv[1:]}; use --config=... --topology=...")
  if _CONFIG.value is None or not _TOPOLOGY.value:
    _fail("--config and --topology are required, e.g. --config=configs/cifar10.py"
          " --topology=v5e:4x4")
  config = _config(_CONFIG, "config")
  vqvae_config = _config(_VQVAE_CONFIG, "vqvae_config") if _VQVAE_CONFIG.value else None
  # Set before JAX starts a backend: the plan only compiles, on this machine's CPU.
  import jax  # pylint: disable=g-import-not-at-top
  from dvq_jax.errors import ConfigError  # pylint: disable=g-import-not-at-top
  from dvq_jax.plan import chips, planner, report  # pylint: disable=g-import-not-at-top
  jax.config.update("jax_platforms", "cpu")
  try:
    kind, shape = chips.parse(_TOPOLOGY.value)
    if kind == "cpu":
      jax.config.update("jax_num_cpu_devices", shape[0])
    unknown = sorted(set(_PROGRAMS.value) - set(planner.PROGRAMS))
    if unknown:
      raise ConfigError(f"--programs={','.join(_PROGRAMS.value)} names {unknown}; use"
                        f" {','.join(planner.PROGRAMS)}")
    result = planner.plan(config, _TOPOLOGY.value, vqvae_config=vqvae_config,
                          only=tuple(_PROGRAMS.value), fusions=_FUSIONS.value)
  except ConfigError as e:
    _fail(str(e))
  name = config_flags.get_config_filename(flags.FLAGS["config"])
  print(report.json_text(result, name) if _JSON.value else report.text(result, name))
  for message in report.fit_errors(result):
    _fail(message)


if __name__ == "__main__":
  app.run(main)
