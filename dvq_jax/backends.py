"""Per-backend forms of the same computation: the one place that asks which backend runs a step.

Our users train on TPUs and GPUs, so the accelerator form of each computation is the primary
one; XLA:CPU gets its own form only where the accelerator one is measurably slow there
(benchmarks/RESULTS.md). Every choice is made while a function is traced, from `platform()`:
`jax.default_backend()`, or the platform named by `compiling_for` while a program for another
backend is compiled ahead of time (a TPU step compiled on a CPU-only host).

Choices:
  compute_dtype: `config.model.dtype = "auto"` (the default, of the VQ-VAE and of the code
    prior) computes in bfloat16 on accelerators and in float32 on CPU, where XLA runs bfloat16
    convolutions in float32 and the casts cost time.
  categorical_fused: a K-way categorical's log-probability of its target (the VQ-VAE's
    256-way head, the code prior's K-way head) and its gradient in one fused form with a
    hand-written gradient (`categorical.fused_log_probs`) on accelerators, where plain autodiff
    with a gather of each target's logit made the CIFAR-10 step's memory traffic 89 GB on a
    TPU v5e; a gather and plain autodiff on CPU, ~1.8x faster there.
  transposed_conv_as_phases: `model.upsample = "transpose_phases"` computes the 4x4 stride-2
    transposed conv as four 2x2 sub-pixel GEMMs on CPU (XLA:CPU's transposed-conv gradient is
    pathologically slow) and as the native `nn.ConvTranspose` elsewhere (same params, same
    function; on a TPU the GEMMs' phase interleaving doubles the head layer's memory traffic).
  nearest-code search form: `quantizers.search_form()` (one variadic reduction on accelerators,
    two min-reductions over a materialized tile on CPU).
  bfloat16_logits: a bfloat16 model's head (the logits; the VQ-VAE's and the code prior's)
    comes out in bfloat16 on accelerators (float32 logits doubled the TPU step's largest
    tensor's traffic) and in float32 on CPU (a bfloat16 head made XLA:CPU's bfloat16 step
    slower).
"""

import contextlib
from collections.abc import Iterator

import jax

_target: str | None = None


def platform() -> str:
  """The backend a function traced now will run on: "cpu", "gpu", "tpu", ..."""
  return _target or jax.default_backend()


@contextlib.contextmanager
def compiling_for(name: str) -> Iterator[None]:
  """Functions traced inside choose the forms of backend `name` (e.g. "tpu" for an AOT compile).

  >>> with compiling_for("tpu"):
  ...   platform()
  'tpu'
  """
  global _target
  previous, _target = _target, name
  try:
    yield
  finally:
    _target = previous


def categorical_fused() -> bool:
  """True where a categorical's log-probability runs as `categorical.fused_log_probs`."""
  return platform() != "cpu"


def transposed_conv_as_phases() -> bool:
  """True where a 4x4 stride-2 transposed conv runs as sub-pixel phase GEMMs (XLA:CPU)."""
  return platform() == "cpu"


def bfloat16_logits() -> bool:
  """True where a bfloat16 model's head is returned in bfloat16 rather than float32."""
  return platform() != "cpu"


COMPUTE_DTYPES = ("auto", "float32", "bfloat16")


def compute_dtype(name: str) -> str:
  """A model's compute dtype: `name`, or for "auto" bfloat16 on accelerators, float32 on CPU.

  >>> with compiling_for("tpu"):
  ...   compute_dtype("auto")
  'bfloat16'
  >>> compute_dtype("float32")
  'float32'
  """
  if name != "auto":
    return name
  return "float32" if platform() == "cpu" else "bfloat16"
