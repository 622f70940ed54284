r"""Times single layers in TensorFlow for `layer_bench.py` (runs in a separate TF venv).

Each layer is the op the official Keras DVQ code's layer runs, written here from the layer
specs layer_bench.py sends (nothing of the official code is imported or copied):
  conv: `tf.nn.conv2d` + `tf.nn.bias_add`, what `Conv2D(padding="same")` calls;
  conv_transpose: `tf.nn.conv2d_transpose(..., padding="SAME")` + `bias_add`, as
    `Conv2DTranspose` (kernel `(4, 4, C_out, C_in)`);
  dvq: the L per-codebook VQ layers on the `(N, L*D)` latents: per slice `(N, D)`, squared
    distances to a `(D, K)` codebook by one matmul, argmin, gather, straight-through, and the
    loss beta * mean((x - sg(e))^2) + mean((sg(x) - e)^2) (times loss_scale * D = 1 for the
    per-element mean), summed over the slices;
  loss (categorical256): the mean `sparse_softmax_cross_entropy_with_logits` over subpixels.
Kernels and biases are `tf.Variable`s (as Keras holds them); forward+backward returns the
output and, from one `GradientTape` with a fixed random output gradient, the gradients to the
variables and (unless `input_grad` is false) the input. Both run in a `tf.function`; TF's
default synchronous executor has finished a call when it returns.

Protocol (one JSON object a line on stdin, one JSON reply a line on stdout):
  {"op": "build", "index": i, "spec": {...}, "dtype": "float32"}
    -> {"trace_s": s, "output_shape": [...]} | {"error": msg} (traces both modes, calls each once);
  {"op": "time", "index": i, "mode": "forward" | "forward+backward", "repeats": n}
    -> {"times": [s, ...]} (one untimed call first).

  TF_CPP_MIN_LOG_LEVEL=2 /tmp/tfvenv/bin/python benchmarks/tf_layer_worker.py
"""

import json
import math
import os
import sys
import time

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _layer(tf, spec: dict, dtype):
  """(forward(x), variables, a float dtype for x and the output gradient) of one layer spec."""
  rng = np.random.default_rng(1)
  kind = spec["kind"]

  def variable(shape, scale, var_dtype=dtype):
    return tf.Variable(tf.cast(rng.standard_normal(shape) * scale, var_dtype))

  if kind == "conv":
    kh, kw, c_in, c_out = spec["kernel"]
    kernel = variable(spec["kernel"], 1 / math.sqrt(kh * kw * c_in))
    bias = variable([c_out], 0.0)
    strides, padding = [1, *spec["strides"], 1], spec["padding"]
    forward = lambda x: tf.nn.bias_add(tf.nn.conv2d(x, kernel, strides, padding), bias)
    return forward, [kernel, bias], dtype
  if kind == "conv_transpose":
    kh, kw, c_in, c_out = spec["kernel"]
    kernel = variable([kh, kw, c_out, c_in], 1 / math.sqrt(4 * c_in))
    bias = variable([c_out], 0.0)
    batch, height, width, _ = spec["input"]
    sh, sw = spec["strides"]
    shape = [batch, sh * height, sw * width, c_out]
    forward = lambda x: tf.nn.bias_add(
        tf.nn.conv2d_transpose(x, kernel, shape, [1, sh, sw, 1], spec["padding"]), bias)
    return forward, [kernel, bias], dtype
  if kind == "dvq":
    levels, size, dim = spec["codebooks"]
    codebooks = [variable([dim, size], 0.1, tf.float32) for _ in range(levels)]
    beta, mean_scale = spec["beta"], spec["loss_scale"] * dim
    sg = tf.stop_gradient

    def forward(z):
      rows = tf.reshape(z, [-1, levels * dim])
      quantized, loss = [], 0.0
      for x, e in zip(tf.split(rows, levels, axis=-1), codebooks):
        distances = (tf.reduce_sum(x * x, 1, keepdims=True) - 2 * tf.matmul(x, e)
                     + tf.reduce_sum(e * e, 0, keepdims=True))
        picked = tf.gather(tf.transpose(e), tf.argmin(distances, 1))
        quantized.append(x + sg(picked - x))
        loss += mean_scale * (beta * tf.reduce_mean(tf.square(x - sg(picked)))
                              + tf.reduce_mean(tf.square(sg(x) - picked)))
      return tf.reshape(tf.concat(quantized, -1), tf.shape(z)), loss

    return forward, codebooks, tf.float32
  if kind == "loss":
    if spec["likelihood"] != "categorical256":
      raise ValueError(f"likelihood {spec['likelihood']!r}: only categorical256 is written in TF")
    labels = tf.constant(rng.integers(0, 256, spec["images"]).reshape(-1), tf.int32)
    forward = lambda head: tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=labels, logits=tf.reshape(head, [-1, 256])))
    return forward, [], tf.float32
  raise ValueError(f"layer kind {kind!r} is unknown")


class Layer:
  """One layer's traced forward and forward+backward on fixed random inputs."""

  def __init__(self, tf, spec: dict, dtype_name: str):
    dtype = {"float32": tf.float32, "bfloat16": tf.bfloat16}[dtype_name]
    forward, variables, x_dtype = _layer(tf, spec, dtype)
    rng = np.random.default_rng(0)
    self.x = tf.constant(tf.cast(rng.standard_normal(spec["input"]), x_dtype))
    out = forward(self.x)
    self.output_shape = tf.nest.flatten(out)[0].shape.as_list()
    self.cotangent = tf.nest.map_structure(
        lambda t: tf.cast(rng.standard_normal(t.shape.as_list()), t.dtype), out)
    input_grad = spec["input_grad"]

    def forward_backward(x, cotangent):
      with tf.GradientTape() as tape:
        if input_grad:
          tape.watch(x)
        y = forward(x)
      sources = [x, *variables] if input_grad else variables
      return y, tape.gradient(tf.nest.flatten(y), sources,
                              output_gradients=tf.nest.flatten(cotangent))

    self.calls = {"forward": (tf.function(forward), (self.x,)),
                  "forward+backward": (tf.function(forward_backward), (self.x, self.cotangent))}
    start = time.perf_counter()
    for fn, args in self.calls.values():
      fn(*args)
    self.trace_s = time.perf_counter() - start

  def run(self, mode: str, repeats: int) -> list[float]:
    fn, args = self.calls[mode]
    fn(*args)
    times = []
    for _ in range(repeats):
      start = time.perf_counter()
      fn(*args)
      times.append(time.perf_counter() - start)
    return times


def main() -> None:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.get_logger().setLevel("ERROR")  # one tf.function per layer trips the retracing warning
  layers = {}
  print(json.dumps({"tensorflow": tf.__version__}), flush=True)
  for line in sys.stdin:
    if not line.strip():
      continue
    request = json.loads(line)
    if request["op"] == "build":
      try:
        layers[request["index"]] = Layer(tf, request["spec"], request["dtype"])
        layer = layers[request["index"]]
        reply = {"trace_s": layer.trace_s, "output_shape": layer.output_shape}
      except Exception as error:  # pylint: disable=broad-except  # e.g. no bfloat16 kernel
        reply = {"error": f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"}
    else:
      reply = {"times": layers[request["index"]].run(request["mode"], request["repeats"])}
    print(json.dumps(reply), flush=True)


if __name__ == "__main__":
  main()
