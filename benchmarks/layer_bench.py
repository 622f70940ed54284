r"""Per-layer forward and forward+backward times of configs/cifar10.py:official in JAX and TF2.

The layers are read off the real model: `build_model(cifar10.get_config("official"))` is traced
once under `nn.intercept_methods` (abstractly, `jax.eval_shape`), which records every `nn.Conv`,
`nn.ConvTranspose`, `ConvTransposePhases` and the `Quantizer` with the shape it is called on;
identical layers (the residual blocks) are timed once and counted. The likelihood loss gets a
row of its own. So the list follows the model when model.py changes.

JAX runs each recorded module itself (`module.apply`, jitted, NHWC; the upsampling is the
project's `conv_transpose_phases`). TF (benchmarks/tf_layer_worker.py, a subprocess in its own
venv) runs the op as the official Keras code's layer would: `tf.nn.conv2d` / `conv2d_transpose`
("SAME") + `bias_add` in a `tf.function`, the quantizer as ten per-codebook VQ layers, the
loss as `sparse_softmax_cross_entropy_with_logits`. forward+backward returns the output and the
gradients (a `vjp` / `GradientTape` with a fixed random cotangent) to the input, kernel and
bias; the first conv, whose input is the images, gets none to its input, as in a train step.
Rounds alternate JAX and TF measurement by measurement, the order reversed every other round;
each measurement is one untimed call, then `--repeats` timed ones. GFLOP are 2 x MACs counted
analytically (the padding's zeros included; backward = 2x forward, 1x without input gradient;
the quantizer's backward is elementwise, so none); GFLOP/s use the median. Hold the lock:

  flock /tmp/dvq_bench.lock nice -n 5 env PYTHONPATH=. python benchmarks/layer_bench.py \
      --tf_python=/tmp/tfvenv/bin/python          # batch 32, ~2-4 min on 2 idle cores
  PYTHONPATH=. python benchmarks/layer_bench.py --no_tf --small   # seconds (tests run it)

XLA:CPU flags go through the environment, e.g. XLA_FLAGS=--xla_cpu_use_thunk_runtime=false.
"""

import argparse
import dataclasses
import datetime
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import psutil

from configs import cifar10
from dvq_jax.vqvae import likelihoods
from dvq_jax.vqvae.bottleneck import Quantizer
from dvq_jax.vqvae.layers import ConvTransposePhases
from dvq_jax.vqvae.model import build_model

IMAGE_SHAPE = (32, 32, 3)
RECORDED = (nn.Conv, nn.ConvTranspose, ConvTransposePhases, Quantizer)
MODES = ("forward", "forward+backward")


@dataclasses.dataclass
class Layer:
  """One distinct layer of the model: what JAX runs, what the TF worker is told, its FLOPs."""

  name: str
  op: str
  count: int
  module: nn.Module | None  # None: the loss row
  input_shape: tuple[int, ...]
  output_shape: tuple[int, ...]
  input_dtype: str
  input_grad: bool
  spec: dict  # for tf_layer_worker.py
  gflop: dict  # mode -> GFLOP per call (nan: not counted)


def _pairs(value, default: int) -> tuple[int, int]:
  if value is None:
    return (default, default)
  return (value, value) if isinstance(value, int) else tuple(value)


def _conv_spec(module: nn.Conv, shape) -> tuple[str, dict, float]:
  kernel, strides = tuple(module.kernel_size), _pairs(module.strides, 1)
  if (_pairs(module.kernel_dilation, 1) != (1, 1) or _pairs(module.input_dilation, 1) != (1, 1)
      or module.feature_group_count != 1 or not module.use_bias):
    raise ValueError(f"{module.name}: only plain biased convs are translated to TF")
  padding = module.padding
  if isinstance(padding, str):
    pads = jax.lax.padtype_to_pads(shape[1:3], kernel, strides, padding)
  elif isinstance(padding, int):
    pads = [(padding, padding)] * 2
  else:
    pads = [tuple(p) for p in padding]
  same = jax.lax.padtype_to_pads(shape[1:3], kernel, strides, "SAME")
  # Keras passes "SAME"; give TF the string whenever it is the same padding.
  tf_padding = "SAME" if list(pads) == list(same) else [[0, 0], *map(list, pads), [0, 0]]
  out = [(shape[1 + i] + sum(pads[i]) - kernel[i]) // strides[i] + 1 for i in (0, 1)]
  c_in, c_out = shape[-1], module.features
  macs = shape[0] * out[0] * out[1] * c_out * kernel[0] * kernel[1] * c_in
  op = f"conv {kernel[0]}x{kernel[1]}/{strides[0]} {c_in}->{c_out}"
  return op, {"kind": "conv", "kernel": [*kernel, c_in, c_out], "strides": list(strides),
              "padding": tf_padding}, 2e-9 * macs


def _transpose_spec(module, shape) -> tuple[str, dict, float]:
  if isinstance(module, nn.ConvTranspose) and (
      tuple(module.kernel_size) != (4, 4) or _pairs(module.strides, 1) != (2, 2)
      or module.padding != ((2, 2), (2, 2))):
    raise ValueError(f"{module.name}: only the 4x4 stride-2 upsampling is translated to TF")
  c_in, c_out = shape[-1], module.features
  macs = math.prod(shape) * 16 * c_out  # every input pixel meets the 16 taps
  name = "conv_transpose_phases" if isinstance(module, ConvTransposePhases) else "conv_transpose"
  return f"{name} 4x4/2 {c_in}->{c_out}", {"kind": "conv_transpose", "kernel": [4, 4, c_in, c_out],
                                           "strides": [2, 2], "padding": "SAME"}, 2e-9 * macs


def _quantizer_spec(module: Quantizer, shape) -> tuple[str, dict, float]:
  if module.kind != "dvq" or module.cosine or module.slice_sizes or (
      module.gradient_estimator != "straight_through"):
    raise ValueError("the TF worker has only plain dvq (no cosine, slices or rotation)")
  levels, size, dim = module.num_codebooks, module.codebook_size, module.codebook_dim
  rows = math.prod(shape[:-1])
  scale = 1.0 / dim if module.loss_reduction == "mean_elements" else 1.0
  return (f"depthwise_quantize L={levels} K={size} D={dim}",
          {"kind": "dvq", "codebooks": [levels, size, dim], "beta": module.beta,
           "loss_scale": scale}, 2e-9 * rows * levels * size * dim)


def model_layers(config, batch: int) -> list[Layer]:
  """The distinct conv layers, the quantizer and the loss of the config's model, in call order."""
  model = build_model(config, IMAGE_SHAPE)
  calls = []

  def record(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    if context.method_name == "__call__" and isinstance(context.module, RECORDED):
      first = out.quantized if isinstance(context.module, Quantizer) else out
      calls.append((context.module, args[0], first))
    return out

  images = jax.ShapeDtypeStruct((batch, *IMAGE_SHAPE), jnp.uint8)
  with nn.intercept_methods(record):
    output, _ = jax.eval_shape(model.init_with_output, jax.random.key(0), images)
  layers = {}
  for i, (module, x, y) in enumerate(calls):
    shape = tuple(x.shape)
    if isinstance(module, Quantizer):
      op, spec, gflop = _quantizer_spec(module, shape)
      gflops = {"forward": gflop, "forward+backward": gflop}
    else:
      if isinstance(module, nn.Conv):
        op, spec, gflop = _conv_spec(module, shape)
      else:
        op, spec, gflop = _transpose_spec(module, shape)
      # Call 0 is the first conv, on the images: a train step needs no gradient to its input.
      gflops = {"forward": gflop, "forward+backward": gflop * (3 if i else 2)}
    standalone = module.clone(parent=None)
    key = (repr(standalone), shape, str(x.dtype), i == 0)
    if key in layers:  # the same op on the same shape: timed once, counted
      layers[key].count += 1
      layers[key].name += ", " + "/".join(module.path)
      continue
    spec.update(input=list(shape), input_grad=i > 0)
    layers[key] = Layer("/".join(module.path), op, 1, standalone, shape, tuple(y.shape),
                        str(x.dtype), i > 0, spec, gflops)
  head = tuple(output.head.shape)
  loss = Layer(f"loss ({config.likelihood})", "mean NLL / (H*W*C), grad to the head", 1, None,
               head, (), "float32", True, {"kind": "loss", "likelihood": config.likelihood,
                                               "input": list(head), "input_grad": True,
                                               "images": [batch, *IMAGE_SHAPE]},
               {m: float("nan") for m in MODES})
  return [*layers.values(), loss]


class JaxLayer:
  """The jitted forward and forward+backward of one layer on fixed random inputs."""

  def __init__(self, layer: Layer, likelihood: str):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal(layer.input_shape, np.float32), layer.input_dtype)
    if layer.module is None:
      images = jnp.asarray(rng.integers(0, 256, layer.spec["images"], dtype=np.uint8))
      dims = math.prod(layer.spec["images"][1:])
      loss = lambda head: jnp.mean(likelihoods.train_loss(likelihood, head, images)) / dims
      forward, params = (lambda _, head: loss(head)), {}
    else:
      # Random params of the module's shapes: its initializers would cost a compile each.
      shapes = jax.eval_shape(layer.module.init, jax.random.key(0), x)["params"]
      params = jax.tree.map(
          lambda s: jnp.asarray(0.1 * rng.standard_normal(s.shape, np.float32), s.dtype), shapes)
      module = layer.module

      def forward(params, x):
        out = module.apply({"params": params}, x)
        return (out.quantized, out.loss) if isinstance(module, Quantizer) else out

    out = jax.eval_shape(forward, params, x)
    cotangent = jax.tree.map(
        lambda s: jnp.asarray(rng.standard_normal(s.shape, np.float32), s.dtype), out)

    def forward_backward(params, x, cotangent):
      if layer.input_grad:
        y, vjp = jax.vjp(forward, params, x)
      else:
        y, vjp = jax.vjp(lambda p: forward(p, x), params)
      return y, vjp(cotangent)  # y too: a train step needs the layer's output

    start = time.perf_counter()
    self.calls = {
        "forward": (jax.jit(forward).lower(params, x).compile(), (params, x)),
        "forward+backward": (jax.jit(forward_backward).lower(params, x, cotangent).compile(),
                             (params, x, cotangent)),
    }
    self.compile_s = time.perf_counter() - start

  def run(self, mode: str, repeats: int) -> list[float]:
    fn, args = self.calls[mode]
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
      start = time.perf_counter()
      jax.block_until_ready(fn(*args))
      times.append(time.perf_counter() - start)
    return times


class TfWorker:
  """benchmarks/tf_layer_worker.py in the TF venv, one JSON request and reply per line."""

  def __init__(self, tf_python: str):
    self.process = subprocess.Popen(
        [tf_python, os.path.join(os.path.dirname(__file__), "tf_layer_worker.py")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    hello = self.process.stdout.readline()
    if not hello:
      sys.exit(f"error: the TF worker ({tf_python}) exited before it started; its stderr is "
               "above (install tensorflow-cpu into that venv, or pass --no_tf)")
    self.version = json.loads(hello)["tensorflow"]

  def ask(self, **request) -> dict:
    self.process.stdin.write(json.dumps(request) + "\n")
    self.process.stdin.flush()
    return json.loads(self.process.stdout.readline())

  def close(self) -> None:
    self.process.stdin.close()
    self.process.wait(timeout=60)


def _busy_cpu_s() -> float:
  t = psutil.cpu_times()
  return t.user + t.nice + t.system + t.irq + t.softirq


def _ms(values, how) -> str:
  return f"{1e3 * how(values):.2f}" if values else "-"


def _ratio(a, b) -> str:
  return f"{a / b:.2f}" if a and b else "-"


def print_table(mode: str, layers: list[Layer], times: dict) -> None:
  print(f"\n### {mode} (ms per call; GFLOP/s from the median)\n")
  print("| layer | op | count | input -> output | GFLOP | JAX min | JAX median | TF min | TF median"
        " | JAX GFLOP/s | TF GFLOP/s | JAX/TF min | JAX/TF median |")
  print("|" + "---|" * 13)
  totals = {k: 0.0 for k in ("gflop", "jmin", "jmed", "tmin", "tmed")}
  for i, layer in enumerate(layers):
    jax_t, tf_t = times[i, mode, "jax"], times[i, mode, "tf"]
    gflop = layer.gflop[mode]
    jmin, jmed = (min(jax_t), statistics.median(jax_t))
    tmin, tmed = (min(tf_t), statistics.median(tf_t)) if tf_t else (0.0, 0.0)
    rate = lambda t: f"{gflop / t:.0f}" if t and not math.isnan(gflop) else "-"
    shapes = (f"{'x'.join(map(str, layer.input_shape))} ->"
              f" {'x'.join(map(str, layer.output_shape)) or 'scalar'}")
    print(f"| {layer.name} | {layer.op}{'' if layer.input_grad else ' (no input grad)'} |"
          f" {layer.count} | {shapes} | {'-' if math.isnan(gflop) else f'{gflop:.3g}'} |"
          f" {_ms(jax_t, min)} | {_ms(jax_t, statistics.median)} | {_ms(tf_t, min)} |"
          f" {_ms(tf_t, statistics.median)} | {rate(jmed)} | {rate(tmed)} | {_ratio(jmin, tmin)} |"
          f" {_ratio(jmed, tmed)} |")
    totals["gflop"] += 0.0 if math.isnan(gflop) else layer.count * gflop
    for name, value in (("jmin", jmin), ("jmed", jmed), ("tmin", tmin), ("tmed", tmed)):
      totals[name] += layer.count * value
  if not all(times[i, mode, "tf"] for i in range(len(layers))):
    totals["tmin"] = totals["tmed"] = 0.0  # a TF total over some of the rows would mislead
  ms = lambda s: f"{1e3 * s:.2f}" if s else "-"
  rate = lambda s: f"{totals['gflop'] / s:.0f}" if s else "-"
  print(f"| **total** (x count) | | | | {totals['gflop']:.3g} | {ms(totals['jmin'])} |"
        f" {ms(totals['jmed'])} | {ms(totals['tmin'])} | {ms(totals['tmed'])} |"
        f" {rate(totals['jmed'])} | {rate(totals['tmed'])} |"
        f" {_ratio(totals['jmin'], totals['tmin'])} | {_ratio(totals['jmed'], totals['tmed'])} |")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--batch", type=int, default=None, help="default 32 (2 with --small)")
  parser.add_argument("--variant", default="official", help="configs/cifar10.py variant")
  parser.add_argument("--upsample", default="", help="config.model.upsample ('' = the config's)")
  parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"),
                      help="compute dtype of the convs (the quantizer and the loss stay float32)")
  parser.add_argument("--rounds", type=int, default=5)
  parser.add_argument("--repeats", type=int, default=3, help="timed calls per measurement")
  parser.add_argument("--layers", default="", help="regex: time only the layers it matches")
  parser.add_argument("--small", action="store_true",
                      help="a smoke test: the VARIANT,small model (hidden 16, L=2, K=16, D=4)")
  parser.add_argument("--no_tf", action="store_true", help="JAX only")
  parser.add_argument("--tf_python", default="/tmp/tfvenv/bin/python")
  args = parser.parse_args()
  variant = f"{args.variant},small" if args.small else args.variant
  batch = args.batch or (2 if args.small else 32)
  rounds, repeats = args.rounds, args.repeats
  config = cifar10.get_config(variant)
  config.model.dtype = args.dtype
  config.model.upsample = args.upsample or config.model.upsample

  load0, busy0, wall0 = os.getloadavg(), _busy_cpu_s(), time.perf_counter()
  cpu0 = os.times()
  print(f"# layer_bench {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC;"
        f" {psutil.cpu_count()} CPUs; jax {jax.__version__} on {jax.devices()[0].platform};"
        f" XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
  print(f"# configs/cifar10.py:{variant}, architecture {config.model.architecture}, upsample"
        f" {config.model.upsample}, {args.dtype}, batch {batch}; {rounds} rounds x {repeats}"
        f" timed calls; load average at start: {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}",
        flush=True)
  layers = [l for l in model_layers(config, batch) if re.search(args.layers, l.name)]
  worker = None if args.no_tf else TfWorker(args.tf_python)
  if worker:
    print(f"# TensorFlow {worker.version} ({args.tf_python})", flush=True)
  jax_layers, tf_ok = [], []
  for i, layer in enumerate(layers):
    jax_layers.append(JaxLayer(layer, config.likelihood))
    note = f"JAX compiled in {jax_layers[-1].compile_s:.1f} s"
    if worker:
      reply = worker.ask(op="build", index=i, spec=layer.spec, dtype=args.dtype)
      if "error" not in reply and reply["output_shape"] != list(layer.output_shape):
        reply["error"] = f"output shape {reply['output_shape']}, not {list(layer.output_shape)}"
      tf_ok.append("error" not in reply)
      note += (f", TF traced in {reply['trace_s']:.1f} s" if tf_ok[-1]
               else f", TF failed: {reply['error']}")
    print(f"{layer.name}: {layer.op}, x{layer.count}; {note}", flush=True)

  measurements = [(i, mode, impl) for i in range(len(layers)) for mode in MODES
                  for impl in ("jax", "tf") if impl == "jax" or (worker and tf_ok[i])]
  times = {(i, mode, impl): [] for i in range(len(layers)) for mode in MODES
           for impl in ("jax", "tf")}
  loads = []
  for r in range(rounds):
    for i, mode, impl in measurements if r % 2 == 0 else measurements[::-1]:
      if impl == "jax":
        times[i, mode, impl] += jax_layers[i].run(mode, repeats)
      else:
        times[i, mode, impl] += worker.ask(op="time", index=i, mode=mode, repeats=repeats)["times"]
    loads.append(os.getloadavg()[0])
    print(f"round {r + 1}/{rounds} done, load {loads[-1]:.2f}", flush=True)
  if worker:
    worker.close()

  for mode in MODES:
    print_table(mode, layers, times)
  cpu1, load1, wall = os.times(), os.getloadavg(), time.perf_counter() - wall0
  own = sum(cpu1[:4]) - sum(cpu0[:4])  # this process and the (finished) TF worker
  other = max(0.0, _busy_cpu_s() - busy0 - own)
  print(f"\nwall {wall:.0f} s; this run used {own:.0f} CPU-s ({own / wall:.2f} cores); other"
        f" processes used {other:.0f} CPU-s ({100 * other / (wall * psutil.cpu_count()):.0f}% of"
        f" the machine); load after each round: {', '.join(f'{l:.1f}' for l in loads)}; load"
        f" average at end: {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")


if __name__ == "__main__":
  main()
