"""What one chip of each kind can do, and the devices of a `--topology` to compile for.

Peak numbers per chip, from the vendors' public spec pages (dense bfloat16 matmul FLOP/s; HBM):
  v4    275 TFLOP/s, 1200 GB/s, 32 GiB    https://cloud.google.com/tpu/docs/v4
  v5e   197 TFLOP/s,  819 GB/s, 16 GB     https://cloud.google.com/tpu/docs/v5e
  v5p   459 TFLOP/s, 2765 GB/s, 95 GiB    https://cloud.google.com/tpu/docs/v5p
  v6e   918 TFLOP/s, 1640 GB/s, 32 GB     https://cloud.google.com/tpu/docs/v6e
  h100  989 TFLOP/s, 3350 GB/s, 80 GB     https://www.nvidia.com/en-us/data-center/h100/ (SXM;
        the page's 1,979 TFLOP/s bfloat16 is with 2:4 sparsity, half of it dense)
A TPU topology is compiled for with libtpu's ahead-of-time compiler (`jax[tpu]`; no TPU needed,
`JAX_PLATFORMS=cpu` on the planning machine). There is no ahead-of-time GPU compiler without a
GPU, so `h100` compiles for the host CPU and applies the H100's peaks to that program's FLOPs
and bytes: an estimate, labelled as one. `cpu:N` compiles for N simulated CPU devices.
"""

import dataclasses
import os
import re

import jax

from dvq_jax.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Chip:
  """Peak throughput of one chip (a TPU chip, a GPU)."""
  name: str
  peak_flops: float  # dense bfloat16 FLOP/s
  hbm_bandwidth: float  # bytes/s
  hbm_bytes: float
  source: str


_GIB, _GB, _T = 2**30, 1e9, 1e12
CHIPS = {
    "v4": Chip("TPU v4", 275 * _T, 1200 * _GB, 32 * _GIB, "https://cloud.google.com/tpu/docs/v4"),
    "v5e": Chip("TPU v5e", 197 * _T, 819 * _GB, 16 * _GB, "https://cloud.google.com/tpu/docs/v5e"),
    "v5p": Chip("TPU v5p", 459 * _T, 2765 * _GB, 95 * _GIB,
                "https://cloud.google.com/tpu/docs/v5p"),
    "v6e": Chip("TPU v6e", 918 * _T, 1640 * _GB, 32 * _GB, "https://cloud.google.com/tpu/docs/v6e"),
    "h100": Chip("NVIDIA H100 SXM", 989 * _T, 3350 * _GB, 80 * _GB,
                 "https://www.nvidia.com/en-us/data-center/h100/"),
}
# Chip grids per generation: 2-D for v5e/v6e ("4x4"), 3-D for v4/v5p ("2x2x1").
_TPU_DIMS = {"v4": 3, "v5e": 2, "v5p": 3, "v6e": 2}
_FORMS = ("v4:AxBxC, v5p:AxBxC, v5e:AxB, v6e:AxB (e.g. v5e:4x4), an accelerator type (v4-8,"
          " v5litepod-16, v5p-8, v6e-8), cpu:N or h100")


@dataclasses.dataclass(frozen=True)
class Target:
  """What to compile for: its devices (one per chip) and the chip they are.

  Attributes:
    name: the `--topology` as given, e.g. "v5e:4x4".
    devices: the devices the mesh spans (TPU topology devices, or host CPU devices).
    chip: the chip's peaks; None for `cpu:N` (no roofline).
    estimate: True when the program is compiled for another backend than `chip` (h100).
  """
  name: str
  devices: tuple
  chip: Chip | None
  estimate: bool


# `jax.Device.device_kind` of each chip (JAX reports v5e as "TPU v5 lite", v5p as "TPU v5").
_DEVICE_KINDS = (("TPU v5 lite", "v5e"), ("TPU v6 lite", "v6e"), ("TPU v5", "v5p"),
                 ("TPU v4", "v4"), ("H100", "h100"))


def chip_for_device_kind(device_kind: str) -> Chip | None:
  """The chip a device reports itself as (`jax.devices()[0].device_kind`); None if unknown.

  >>> chip_for_device_kind("NVIDIA H100 80GB HBM3").name, chip_for_device_kind("cpu")
  ('NVIDIA H100 SXM', None)
  """
  for prefix, name in _DEVICE_KINDS:
    if prefix in device_kind:
      return CHIPS[name]
  return None


# Cloud TPU accelerator types (`--accelerator-type`, as launch/tpu_vm.sh takes them) -> chip
# grids: v5e/v6e count chips, v4/v5p count TensorCores (2 per chip); the shapes are the
# generations' standard slice shapes (https://cloud.google.com/tpu/docs/v5e, .../v4, ...).
_ACCELERATORS = {"v5litepod": "v5e", "v5e": "v5e", "v6e": "v6e", "v4": "v4", "v5p": "v5p"}
_GRIDS_2D = {1: (1, 1), 4: (2, 2), 8: (2, 4), 16: (4, 4), 32: (4, 8), 64: (8, 8), 128: (8, 16),
             256: (16, 16)}
_GRIDS_3D = {4: (2, 2, 1), 8: (2, 2, 2), 16: (2, 2, 4), 32: (2, 4, 4), 64: (4, 4, 4),
             128: (4, 4, 8), 256: (4, 8, 8), 512: (8, 8, 8), 1024: (8, 8, 16),
             2048: (8, 16, 16), 4096: (16, 16, 16)}


def _accelerator_grid(topology: str) -> str | None:
  """`"v5litepod-16"` -> "v5e:4x4", `"v4-8"` -> "v4:2x2x1"; None if not an accelerator type."""
  match = re.fullmatch(r"(v5litepod|v5e|v6e|v4|v5p)-(\d+)", topology)
  if not match:
    return None
  kind = _ACCELERATORS[match.group(1)]
  count = int(match.group(2))
  grid = _GRIDS_3D.get(count // 2) if _TPU_DIMS[kind] == 3 else _GRIDS_2D.get(count)
  return f"{kind}:{'x'.join(map(str, grid))}" if grid else None


def parse(topology: str) -> tuple[str, tuple[int, ...]]:
  """`"v5e:4x4"` -> ("v5e", (4, 4)); `"cpu:8"` -> ("cpu", (8,)); `"h100"` -> ("h100", (1,));
  a Cloud TPU accelerator type names its slice's standard shape.

  Raises:
    ConfigError: an unknown generation or a malformed shape; the message lists the forms.

  >>> parse("v4:2x2x1"), parse("v4-8"), parse("v5litepod-16")
  (('v4', (2, 2, 1)), ('v4', (2, 2, 1)), ('v5e', (4, 4)))
  """
  topology = _accelerator_grid(topology) or topology
  kind, _, shape = topology.partition(":")
  if kind == "h100" and not shape:
    return kind, (1,)
  dims = _TPU_DIMS.get(kind, 1 if kind == "cpu" else None)
  if dims is None or not re.fullmatch(r"[1-9]\d*(x[1-9]\d*)*", shape) or shape.count("x") != dims - 1:
    raise ConfigError(f"--topology={topology} is not a topology; use {_FORMS}")
  return kind, tuple(int(n) for n in shape.split("x"))


def target(topology: str) -> Target:
  """The devices and chip of `--topology` (TPU devices come from libtpu, nothing runs on them).

  Raises:
    ConfigError: a malformed topology, libtpu missing for a TPU topology, or `cpu:N` with N
      other than the host's CPU device count (set before JAX starts: `plan`'s command line
      does it).
  """
  kind, shape = parse(topology)
  if kind in _TPU_DIMS:
    return Target(topology, tuple(tpu_devices(kind, shape)), CHIPS[kind], estimate=False)
  cpus = jax.devices("cpu")
  if kind == "h100":
    return Target(topology, (cpus[0],), CHIPS["h100"], estimate=True)
  if shape[0] != len(cpus):
    raise ConfigError(f"--topology={topology} needs {shape[0]} CPU devices, this process has"
                      f" {len(cpus)}; run `python -m dvq_jax.plan` (it sets them) or set"
                      f" XLA_FLAGS=--xla_force_host_platform_device_count={shape[0]}")
  return Target(topology, tuple(cpus), None, estimate=False)


def tpu_devices(kind: str, shape: tuple[int, ...]) -> list:
  """The devices of a TPU slice of `shape` chips, one per chip, for ahead-of-time compilation.

  Hosts hold up to 2x2 chips (v4, v5p, and the 4-chip VMs of v5e/v6e); v4 is asked for its
  `megacore` config, one device per chip as on a v4 VM (its default lists both cores).
  """
  from jax.experimental import topologies  # pylint: disable=g-import-not-at-top
  # Planning runs nothing on a TPU: skip the TPU VM metadata server (absent elsewhere) and let
  # several planning processes (or a training run on this VM) hold libtpu at once.
  os.environ.setdefault("TPU_SKIP_MDS_QUERY", "1")
  os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
  bounds = tuple(min(n, 2) for n in shape[:2]) + (1,)
  name = f"{kind}:{'x'.join(map(str, shape))}"
  try:
    topology = topologies.get_topology_desc(
        platform="tpu", topology_name=name,
        chip_config_name="megacore" if kind == "v4" else "default",
        chips_per_host_bounds=bounds, num_slices=1)
  except Exception as e:  # pylint: disable=broad-except  (libtpu absent, or it refuses the shape)
    reason = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
    raise ConfigError(f"cannot compile for --topology={name}: {reason}; planning for a TPU"
                      " needs libtpu: pip install -e \".[tpu]\"") from None
  return list(topology.devices)
