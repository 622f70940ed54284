r"""dvq_jax against the official TF2 DVQ code: train-step images/s, side by side, alternating.

Times `dvq_jax.vqvae.train.train_step` (jitted, state donated, Adam) for configs/cifar10.py and
configs/cifar10.py:official at batch 32 and 128 (optionally also in `--microbatches` passes) on
random uint8 32x32x3 images, and the official TF2 `DVQVAE(D=255, K=512, L=10)` step
(benchmarks/tf_official_worker.py, in its own TF venv, as a subprocess that stays alive). Each round
runs `--steps` steps of every setting, the order reversed every other round, so machine load hits
all of them alike; the table gives the median step (images/s) over all rounds, the spread of the
per-round medians, XLA's FLOPs per image for dvq_jax (`cost_analysis`) and the 1-minute load
average. Set up the official code's TF venv, then run:

  python3 -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install tensorflow-cpu tf_keras pillow tqdm
  mkdir -p /tmp/dvq_official && git -C DVQ_CLONE archive HEAD dvq_model.py | tar -x -C /tmp/dvq_official
  PYTHONPATH=. python benchmarks/official_bench.py \
      --official_dir=/tmp/dvq_official --tf_python=/tmp/tfvenv/bin/python
  PYTHONPATH=. python benchmarks/official_bench.py --no_tf --dtypes float32,bfloat16  # JAX only

XLA:CPU flags go through the environment, e.g. XLA_FLAGS=--xla_cpu_use_thunk_runtime=false; so does
glibc's allocator (GLIBC_TUNABLES=glibc.malloc.hugetlb=1), which the TF worker inherits too.
"""

import argparse
import functools
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import results_file
from configs import cifar10
from dvq_jax.training import loop
from dvq_jax.training import optim
from dvq_jax.vqvae import train
from dvq_jax.vqvae.model import build_model

IMAGE_SHAPE = (32, 32, 3)


def _flops(compiled) -> float:
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else {}
  return float((cost or {}).get("flops", float("nan")))


def _median_faults(faults) -> str:
  """Median minor page faults per step ('-' where not counted): each maps one fresh page, 4 KiB,
  or 2 MiB where the allocator asks for transparent huge pages."""
  return f"{statistics.median(faults):,.0f}" if faults else "-"


class JaxStep:
  """One compiled dvq_jax train step of a config variant at one batch size."""

  def __init__(self, variant: str, batch: int, dtype: str, upsample: str = "",
               microbatches: int = 1):
    config = cifar10.get_config(variant or None)
    # "float32/bfloat16": model.dtype float32, model.head_dtype bfloat16
    config.model.dtype, _, config.model.head_dtype = dtype.partition("/")
    config.model.upsample = upsample or config.model.upsample
    self.name = (f"dvq_jax cifar10.py{':' + variant if variant else ''} {dtype}"
                 f" {config.model.upsample}"
                 + (f" microbatches={microbatches}" if microbatches > 1 else ""))
    self.batch = batch
    model = build_model(config, IMAGE_SHAPE)
    tx = optim.make_optimizer(config)
    rng = np.random.default_rng(0)
    self.images = jnp.asarray(rng.integers(0, 256, (batch, *IMAGE_SHAPE), dtype=np.uint8))
    # Jitted and compiled fast, as training does (eager init compiles every op on its own).
    params = loop.initial_state(lambda key: model.init(key, self.images)["params"],
                                jax.random.key(0), None)
    self.params = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(params))
    self.state = {"step": jnp.int32(0), "params": params, "opt_state": tx.init(params)}
    step = jax.jit(functools.partial(train.train_step, model=model, tx=tx,
                                     microbatches=microbatches), donate_argnums=0)
    start = time.perf_counter()
    self.compiled = step.lower(self.state, self.images).compile()
    self.compile_s = time.perf_counter() - start
    self.gflop_per_image = _flops(self.compiled) / batch / 1e9
    self.faults = []  # minor page faults of each step (this process; a fresh page costs one)
    self.run(2)  # warm-up
    self.faults.clear()

  def run(self, steps: int) -> list[float]:
    times = []
    for _ in range(steps):
      faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
      start = time.perf_counter()
      self.state, metrics = self.compiled(self.state, self.images)
      jax.block_until_ready(metrics["loss"])
      times.append(time.perf_counter() - start)
      self.faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults)
    return times


class TfStep:
  """The official TF2 step at one batch size, timed by the worker subprocess."""

  gflop_per_image = float("nan")
  faults = ()  # in the worker process, not counted

  def __init__(self, worker: subprocess.Popen, batch: int):
    self.worker, self.batch, self.name = worker, batch, "official TF2 DVQVAE (L=10, D=255)"
    self.params = None
    self.run(1)

  def run(self, steps: int) -> list[float]:
    self.worker.stdin.write(f"{self.batch} {steps}\n")
    self.worker.stdin.flush()
    reply = json.loads(self.worker.stdout.readline())
    self.params, self.compile_s = reply["params"], reply["compile_s"]
    return reply["times"]


def _start_tf(args) -> subprocess.Popen:
  worker = subprocess.Popen(
      [args.tf_python, os.path.join(os.path.dirname(__file__), "tf_official_worker.py"),
       f"--official_dir={args.official_dir}"],
      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
      env={**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2"})
  line = worker.stdout.readline()
  if not line:
    sys.exit(f"error: the TF worker ({args.tf_python}) exited before it started; its stderr is "
             "above (install tensorflow-cpu tf_keras pillow tqdm into that venv)")
  hello = json.loads(line)
  print(f"official code: TensorFlow {hello['tensorflow']} ({args.tf_python})", flush=True)
  return worker


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--batches", default="32,128")
  parser.add_argument("--variants", default=",official", help="cifar10.py variants ('' = default)")
  parser.add_argument("--dtypes", default="float32",
                      help="config.model.dtype values; DTYPE/HEAD_DTYPE sets model.head_dtype too")
  parser.add_argument("--upsamples", default="",
                      help="config.model.upsample values to time ('' = the config's)")
  parser.add_argument("--microbatches", default="1",
                      help="config.microbatches values to time (those that divide the batch)")
  parser.add_argument("--rounds", type=int, default=4)
  parser.add_argument("--steps", type=int, default=3, help="timed steps per setting and round")
  parser.add_argument("--no_tf", action="store_true", help="dvq_jax only")
  parser.add_argument("--official_dir", default="/tmp/dvq_official")
  parser.add_argument("--tf_python", default="/tmp/tfvenv/bin/python")
  results_file.add_flag(parser)
  args = parser.parse_args()
  batches = [int(b) for b in args.batches.split(",")]

  load0, cpu0, wall0 = os.getloadavg(), os.times(), time.perf_counter()
  print(f"jax {jax.__version__} on {jax.devices()}; XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r};"
        f" GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES', '')!r}")
  print(f"load average at start: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}", flush=True)
  worker = None if args.no_tf else _start_tf(args)
  settings = []
  for batch in batches:
    for variant in args.variants.split(","):
      for dtype in args.dtypes.split(","):
        for upsample in args.upsamples.split(","):
          for microbatches in (int(m) for m in args.microbatches.split(",")):
            if batch % microbatches == 0:
              settings.append(JaxStep(variant, batch, dtype, upsample, microbatches))
        print(f"compiled {settings[-1].name} batch {batch}: {settings[-1].compile_s:.1f} s",
              flush=True)
    if worker:
      settings.append(TfStep(worker, batch))
  times = {id(s): [] for s in settings}
  round_medians = {id(s): [] for s in settings}
  loads = []
  for r in range(args.rounds):
    for s in settings if r % 2 == 0 else settings[::-1]:
      t = s.run(args.steps)
      times[id(s)] += t
      round_medians[id(s)].append(statistics.median(t))
    loads.append(os.getloadavg()[0])
    print(f"round {r + 1}/{args.rounds} done, load {loads[-1]:.2f}", flush=True)
  if worker:
    worker.stdin.close()
    worker.wait(timeout=60)

  print("\n| implementation | batch | params | median step s | images/s (per-round range) |"
        " GFLOP/image | GFLOP/s | page faults/step |")
  print("|---|---|---|---|---|---|---|---|")
  rate, rows = {}, []
  for s in settings:
    median = statistics.median(times[id(s)])
    per_round = [s.batch / m for m in round_medians[id(s)]]
    rate[s.name, s.batch] = s.batch / median
    rows.append({"implementation": s.name, "batch": s.batch, "params": s.params,
                 "median_step_s": median, "images_per_s": s.batch / median,
                 "images_per_s_rounds": per_round,
                 "gflop_per_image": s.gflop_per_image if np.isfinite(s.gflop_per_image) else None,
                 "page_faults_per_step": float(statistics.median(s.faults)) if s.faults else None})
    print(f"| {s.name} | {s.batch} | {s.params:,} | {median:.3f} | {s.batch / median:.1f}"
          f" ({min(per_round):.1f}-{max(per_round):.1f}) | {s.gflop_per_image:.2f} |"
          f" {s.gflop_per_image * s.batch / median:.0f} |"
          f" {_median_faults(s.faults)} |")
  if worker:
    for batch in batches:
      tf_rate = rate["official TF2 DVQVAE (L=10, D=255)", batch]
      for (name, b), value in rate.items():
        if b == batch and not name.startswith("official"):
          print(f"batch {batch}: {name} / official TF2 = {value / tf_rate:.2f}x")
  cpu1, load1 = os.times(), os.getloadavg()
  wall = time.perf_counter() - wall0
  own = (cpu1.user + cpu1.system + cpu1.children_user + cpu1.children_system) - (
      cpu0.user + cpu0.system + cpu0.children_user + cpu0.children_system)
  print(f"\nwall {wall:.0f} s; this run used {own:.0f} CPU-s ({own / wall:.2f} cores);"
        f" load after each round: {', '.join(f'{l:.1f}' for l in loads)};"
        f" load average at end: {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")
  results_file.write(args.output, rows, rounds=args.rounds, steps=args.steps,
                     load_after_rounds=loads, xla_flags=os.environ.get("XLA_FLAGS", ""),
                     glibc_tunables=os.environ.get("GLIBC_TUNABLES", ""))


if __name__ == "__main__":
  main()
