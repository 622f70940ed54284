"""Device mesh and data placement: batch sharded on the `data` axis, params replicated.

One code path for a laptop CPU, one GPU, 8 simulated CPU devices and a multi-host TPU slice:
every process passes its local share of the batch and gets one global `jax.Array`.
"""

import os

import jax
import numpy as np
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"


def make_mesh(devices=None) -> Mesh:
  """A 1-D mesh over `devices` (default: every device of every process; Auto axis types, as jit
  expects). `dvq_jax.plan` passes the devices of a TPU topology it compiles for ahead of time."""
  return Mesh(np.array(jax.devices() if devices is None else devices), (DATA_AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis split over the data axis, all other axes whole."""
  return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def global_batch(mesh: Mesh, local: np.ndarray) -> jax.Array:
  """This process's `(global_batch // process_count, ...)` rows -> the global sharded array."""
  return jax.make_array_from_process_local_data(batch_sharding(mesh), local)


def maybe_initialize_distributed(config) -> None:
  """Starts jax.distributed when the config asks, or when the environment announces a cluster.

  Cloud TPU pods and SLURM are detected by JAX itself; elsewhere (e.g. several processes on one
  machine) set `config.coordinator_address`, `config.num_processes` and `config.process_id`.
  A no-op if the distributed client is already running.
  """
  if not (config.distributed or os.environ.get("JAX_COORDINATOR_ADDRESS")):
    return
  if jax.distributed.is_initialized():
    return
  jax.distributed.initialize(
      coordinator_address=config.coordinator_address or None,
      num_processes=config.num_processes or None,
      process_id=None if config.process_id < 0 else config.process_id,
  )
