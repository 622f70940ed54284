r"""Times the official TF2 DVQ train step for `official_bench.py` (runs in a separate TF venv).

The official code is a peer to measure against, not part of dvq_jax: this worker imports the
user's copy of `dvq_model.py` (master branch of github.com/fostiropoulos/dvq) from
--official_dir and builds `DVQVAE(D=255, K=512, L=10, mse=False)` with Adam 2e-4, as that
repository's notebook does. The train step is the Keras model's forward pass (its `add_loss`
terms: the mean cross entropy and the per-codebook VQ losses), the gradient and Adam, in one
`tf.function`.

Protocol (line-based, so the parent can alternate it with dvq_jax): reads lines `BATCH STEPS`
from stdin, answers one JSON line per request, {"batch", "times" (s per step), "load"}. The
first request for a batch traces and compiles it and runs two untimed warm-up steps.

  python3 -m venv /tmp/tfvenv && /tmp/tfvenv/bin/pip install tensorflow-cpu tf_keras
  TF_USE_LEGACY_KERAS=1 /tmp/tfvenv/bin/python benchmarks/tf_official_worker.py \
      --official_dir=/tmp/dvq_official   # then type e.g. "32 5"
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # the official VQ.quantize clashes with Keras 3
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument("--official_dir", required=True, help="folder holding dvq_model.py")
  args = parser.parse_args()
  sys.path.insert(0, args.official_dir)
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import dvq_model  # pylint: disable=g-import-not-at-top

  model = dvq_model.DVQVAE(D=255, K=512, L=10, mse=False)
  optimizer = tf.keras.optimizers.Adam(learning_rate=2e-4)

  @tf.function
  def train_step(images):
    with tf.GradientTape() as tape:
      model(images, training=True)
      loss = tf.add_n(model.losses)
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss

  ready = {}
  rng = np.random.default_rng(0)
  print(json.dumps({"tensorflow": tf.__version__, "ready": True}), flush=True)
  for line in sys.stdin:
    if not line.strip():
      continue
    batch, steps = (int(v) for v in line.split())
    if batch not in ready:
      images = tf.constant(rng.integers(0, 256, (batch, 32, 32, 3), dtype=np.uint8))
      start = time.perf_counter()
      train_step(images).numpy()
      compile_s = time.perf_counter() - start
      for _ in range(2):
        train_step(images).numpy()
      ready[batch] = (images, compile_s)
    images, compile_s = ready[batch]
    times = []
    for _ in range(steps):
      start = time.perf_counter()
      train_step(images).numpy()
      times.append(time.perf_counter() - start)
    print(json.dumps({"batch": batch, "times": times, "compile_s": compile_s,
                      "params": int(model.count_params()), "load": os.getloadavg()[0]}),
          flush=True)


if __name__ == "__main__":
  main()
