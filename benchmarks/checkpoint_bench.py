r"""What a checkpoint's digest costs the training loop: step time with and without it.

Runs the real jitted train step of configs/cifar10.py (state donated, as `training.loop` runs
it) and saves a checkpoint every `--every` steps three ways, alternating rounds:
  none       no checkpoint;
  orbax      an orbax `CheckpointManager` saving the state alone (async), no digest;
  digest     `training.checkpointing.Checkpointer.save`: the same save plus the per-shard
             SHA-256 digests (`training.digests`: a host copy of the shards before the call
             returns, the hashing in orbax's background commit thread).
Prints, per way, the mean wall time of a step (its save call included; the background writes
and hashing compete with the following steps for the CPU), the mean time a save call blocks,
and the time to drain the last save; then the load and the CPU.

  PYTHONPATH=. python benchmarks/checkpoint_bench.py                 # ~5 min on 2 CPU cores
  PYTHONPATH=. python benchmarks/checkpoint_bench.py --batch 8 --rounds 1 --steps 2   # seconds
"""

import argparse
import os
import statistics
import tempfile
import time

import jax
import numpy as np
import orbax.checkpoint as ocp

import results_file
from configs import cifar10
from dvq_jax.training import checkpointing
from dvq_jax.training import loop
from dvq_jax.vqvae import train

WAYS = ("none", "orbax", "digest")


def _saver(way: str, directory: str):
  """`(save(step, state), close())` for one way of checkpointing."""
  if way == "none":
    return (lambda step, state: None), (lambda: None)
  if way == "digest":
    checkpointer = checkpointing.Checkpointer(directory, keep=2)
    return checkpointer.save, checkpointer.close
  manager = ocp.CheckpointManager(
      directory, options=ocp.CheckpointManagerOptions(max_to_keep=2, create=True),
      item_handlers={"state": ocp.StandardCheckpointHandler()})

  def save(step, state):
    manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state)))

  def close():
    manager.wait_until_finished()
    manager.close()

  return save, close


def _round(way: str, step_fn, state, images, steps: int, every: int):
  """Mean step s, mean save-call s, drain s; and the state after the round."""
  with tempfile.TemporaryDirectory() as directory:
    save, close = _saver(way, directory)
    step_times, save_times = [], []
    for step in range(1, steps + 1):
      start = time.perf_counter()
      state, metrics = step_fn(state, images)
      jax.block_until_ready(metrics)
      if step % every == 0:
        save_start = time.perf_counter()
        save(step, state)
        save_times.append(time.perf_counter() - save_start)
      step_times.append(time.perf_counter() - start)
    start = time.perf_counter()
    close()
    drain = time.perf_counter() - start
  return (statistics.mean(step_times), statistics.mean(save_times) if save_times else 0.0,
          drain), state


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--steps", type=int, default=8, help="steps per round")
  parser.add_argument("--every", type=int, default=2, help="a checkpoint every this many steps")
  parser.add_argument("--rounds", type=int, default=3, help="rounds of each way, alternating")
  results_file.add_flag(parser)
  args = parser.parse_args()

  # The trainer's own state and step (`train.training_parts`), jitted with the state donated.
  _, init_state, step = train.training_parts(cifar10.get_config(), (32, 32, 3))
  state = loop.initial_state(init_state, jax.random.key(0), None)
  images = np.random.default_rng(0).integers(0, 256, (args.batch, 32, 32, 3), dtype=np.uint8)
  size = sum(x.nbytes for x in jax.tree.leaves(state))
  step_fn = jax.jit(step, donate_argnums=0)
  state, _ = jax.block_until_ready(step_fn(state, images))  # compile
  results = {way: [] for way in WAYS}
  for r in range(args.rounds):
    for way in WAYS if r % 2 == 0 else reversed(WAYS):  # A B C C B A: load drift hits all alike
      result, state = _round(way, step_fn, state, images, args.steps, args.every)
      results[way].append(result)
  print(f"configs/cifar10.py, batch {args.batch}, state {size / 2**20:.1f} MiB, a checkpoint"
        f" every {args.every} steps, {args.rounds} rounds of {args.steps} steps per way")
  print("| way | step s (mean of rounds) | save call s | drain s | step vs none |")
  print("|---|---|---|---|---|")
  base = statistics.mean(r[0] for r in results["none"])
  rows = []
  for way in WAYS:
    step_s, save_s, drain_s = (statistics.mean(r[i] for r in results[way]) for i in range(3))
    print(f"| {way} | {step_s:.3f} | {save_s:.3f} | {drain_s:.3f} | {step_s / base:.3f}x |")
    rows.append({"way": way, "step_s": step_s, "save_call_s": save_s, "drain_s": drain_s,
                 "step_vs_none": step_s / base})
  load = os.getloadavg()
  print(f"load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {os.cpu_count()} CPUs; "
        f"{results_file.cpu_model()}; jax {jax.__version__}")
  results_file.write(args.output, rows, config="configs/cifar10.py", batch=args.batch,
                     state_mib=size / 2**20, steps=args.steps, every=args.every,
                     rounds=args.rounds)


if __name__ == "__main__":
  main()
