"""A trained VQ-VAE as a tokenizer: images <-> integer codes, loaded from its workdir.

The second stage (the code prior, the codec) sees a VQ-VAE only through this class:

  tokenizer = Tokenizer.from_workdir("/tmp/dvq_demo")
  codes = tokenizer.encode(images)        # uint8 (B, H, W, C) -> int32 (B, h, w, L)
  images = tokenizer.decode(codes)        # -> uint8 (B, H, W, C), the head's mean, rounded

Codes always carry the codebook axis: `(B, h, w, L)` for dvq, mvq, fsq, lfq and bsq,
`(B, h, w, L*M)` for the residual families rvq, rfsq and rlfq (slice-major), `(B, h, w, 1)` for vq
and svq (svq's codebook is implied by the position: the h*w positions, row-major, fall into
`config.num_codebooks` contiguous groups). Every family's codes are integers in [0, A), A the
values one code takes (`codebook_size`: K, prod(fsq_levels), or 2^D). Every call runs a jitted function on a fixed internal
batch (the last one padded), sharded over all devices on the `data` axis like the evaluator,
so no input size recompiles.
"""

import dataclasses
import json
import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from etils import epath

from dvq_jax import data as data_lib
from dvq_jax import outputs
from dvq_jax import vqvae
from dvq_jax.errors import ConfigError
from dvq_jax.training import checkpointing
from dvq_jax.training import sharding
from dvq_jax.training.progress import Progress
from dvq_jax.vqvae import likelihoods
from dvq_jax.vqvae.bottleneck import codes_per_position


def load_run_config(workdir: str) -> ml_collections.ConfigDict:
  """The `config.json` a VQ-VAE run wrote into `workdir`, as a ConfigDict.

  Raises:
    ConfigError: `workdir` holds no config.json.
  """
  path = epath.Path(workdir) / "config.json"
  if not path.exists():
    raise ConfigError(f"{path} does not exist; give the workdir a VQ-VAE (learned_prior) run was trained in")
  return ml_collections.ConfigDict(json.loads(path.read_text()))


@dataclasses.dataclass(frozen=True)
class CodeLayout:
  """The codes a VQ-VAE config makes per image: what a prior over them (`prior.build_prior`)
  needs, known before any checkpoint exists.

  Attributes:
    codebook_size: K.
    num_codebooks: the codes' last axis: L for dvq, mvq, fsq, lfq and bsq, L*M for rvq, rfsq and
      rlfq, 1 for vq and svq.
    grid: `(h, w)` latent positions per image.
  """
  codebook_size: int
  num_codebooks: int
  grid: tuple[int, int]

  @classmethod
  def of(cls, config: ml_collections.ConfigDict, image_shape) -> "CodeLayout":
    """The layout of a VQ-VAE config's codes on images of `(H, W, C)`.

    Raises:
      ConfigError: the run has two latent grids (`config.levels = 2`).
    """
    if config.get("levels", 1) != 1:
      raise ConfigError(f"the tokenizer (and so the prior and the codec) reads one latent grid;"
                        f" this run has config.levels = {config.levels}: use a levels = 1 run")
    factor = 2**config.model.num_downsamples
    return cls(codebook_size=int(vqvae.code_alphabet_size(config)),
               num_codebooks=int(codes_per_position(config.quantizer, config.num_codebooks,
                                                    config.get("num_stages", 1))),
               grid=(int(image_shape[0]) // factor, int(image_shape[1]) // factor))


class Tokenizer:
  """Encodes images to codes and decodes codes to images with one VQ-VAE checkpoint.

  Attributes:
    config: the run's ConfigDict (from its config.json).
    model: the `vqvae.VQVAE`; `params` its parameters (replicated over the mesh).
    likelihood: the decoder head's name (categorical256 | logistic_mixture | mse |
      context_logistic_mixture).
    codebook_size: the values one code takes: K, prod(fsq_levels) for fsq/rfsq, 2^D for
      lfq/bsq/rlfq.
    num_codebooks: the codes' last axis: `config.num_codebooks` L (L*M for rvq/rfsq/rlfq), 1 for
      vq/svq.
    grid: `(h, w)` latent positions per image.
    image_shape: `(H, W, C)`.
    checkpoint_step: the training step of the loaded checkpoint.
    checkpoint_digest: SHA-256 hex of the params (`checkpointing.state_digest`).
    batch_size: images (or code grids) per jitted call, a multiple of the device count.
  """

  def __init__(self, config: ml_collections.ConfigDict, params, image_shape, *,
               checkpoint_step: int, batch_size: int = 64):
    layout = CodeLayout.of(config, image_shape)
    self.config = config
    self.image_shape = tuple(int(n) for n in image_shape)
    self.model = vqvae.build_model(config, self.image_shape)
    self.likelihood = config.likelihood
    self.codebook_size, self.num_codebooks, self.grid = (
        layout.codebook_size, layout.num_codebooks, layout.grid)
    self.checkpoint_step = int(checkpoint_step)
    self.checkpoint_digest = checkpointing.state_digest(params)
    self.mesh = sharding.make_mesh()
    devices = jax.device_count()
    self.batch_size = max(devices, -(-int(batch_size) // devices) * devices)
    replicated, batch = sharding.replicated(self.mesh), sharding.batch_sharding(self.mesh)
    self.params = jax.device_put(params, replicated)
    model = self.model

    def encode(params, images):
      codes = model.apply({"params": params}, images, method=model.encode)
      return codes if codes.ndim == 4 else codes[..., None]

    def decode_head(params, codes):
      codes = codes[..., 0] if model.quantizer in ("vq", "svq") else codes
      return model.apply({"params": params}, codes, method=model.decode)

    def decode(params, codes):
      mean = model.apply({"params": params}, decode_head(params, codes), method=model.mean_image)
      return jnp.round(mean).astype(jnp.uint8)

    jit = lambda f: jax.jit(f, in_shardings=(replicated, batch), out_shardings=replicated)
    self._encode, self._decode_head, self._decode = jit(encode), jit(decode_head), jit(decode)
    self._group_head = jax.jit(
        lambda params, head, images, group: model.apply(
            {"params": params}, head, images, group, method=model.group_head),
        static_argnums=3)

  @classmethod
  def from_workdir(cls, workdir: str, step: int | None = None, *, image_shape=None,
                   batch_size: int = 64) -> "Tokenizer":
    """The tokenizer of the VQ-VAE run in `workdir`, at checkpoint `step` (default: the newest).

    Args:
      workdir: the `--workdir` of a learned-prior (VQ-VAE) run.
      step: a saved checkpoint step; None = the newest.
      image_shape: `(H, W, C)`; None reads it from the run's data set (`data.load`).
      batch_size: images per jitted call.

    Raises:
      ConfigError: no config.json, no checkpoint, or no checkpoint `step` in `workdir`.
    """
    config = load_run_config(workdir)
    if config.get("experiment") != "learned_prior":
      raise ConfigError(f"{workdir} holds a {config.get('experiment')!r} run, not a VQ-VAE;"
                        " give the workdir a learned_prior run was trained in")
    checkpoints = epath.Path(workdir) / "checkpoints"
    if not checkpoints.exists():
      raise ConfigError(f"no checkpoint in {checkpoints}; train the VQ-VAE first or check the"
                        " workdir")
    checkpointer = checkpointing.Checkpointer(workdir, config.keep_checkpoints)
    try:
      steps = checkpointer.steps()
      if not steps:
        raise ConfigError(f"no checkpoint in {checkpoints}; train the VQ-VAE first or check the"
                          " workdir")
      if step is not None and step not in steps:
        raise ConfigError(f"step = {step} has no checkpoint in {checkpoints}; use one of {steps}")
      step = steps[-1] if step is None else step
      state = checkpointer.restore_arrays(step)
    finally:
      checkpointer.close()
    if image_shape is None:
      image_shape = data_lib.load(config).image_shape
    return cls(config, state["params"], image_shape, checkpoint_step=step, batch_size=batch_size)

  # ------------------------------------------------------------------ checks
  def check_codes(self, codes) -> np.ndarray:
    """`codes` as an int32 array after checking its shape `(B, h, w, L)` and range [0, K).

    Raises:
      ValueError: wrong shape or a code outside [0, K).
    """
    codes = np.asarray(codes)
    expected = (*self.grid, self.num_codebooks)
    if codes.ndim != 4 or codes.shape[1:] != expected or not np.issubdtype(codes.dtype,
                                                                           np.integer):
      raise ValueError(f"codes must be integers of shape (batch, {', '.join(map(str, expected))}),"
                       f" got {codes.dtype} {codes.shape}")
    if codes.size and (codes.min() < 0 or codes.max() >= self.codebook_size):
      raise ValueError(f"codes must lie in [0, K = {self.codebook_size}), got values in"
                       f" [{codes.min()}, {codes.max()}]")
    return codes.astype(np.int32)

  def _check_images(self, images) -> np.ndarray:
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.shape[1:] != self.image_shape:
      raise ValueError(f"images must be uint8 (batch, {', '.join(map(str, self.image_shape))}),"
                       f" got {images.dtype} {images.shape}")
    return images

  # ------------------------------------------------------------------ batched calls
  def _batched(self, fn, inputs: np.ndarray, out_shape, out_dtype) -> np.ndarray:
    out = np.empty((len(inputs), *out_shape), out_dtype)
    for start in range(0, len(inputs), self.batch_size):
      chunk = inputs[start:start + self.batch_size]
      padded = np.zeros((self.batch_size, *inputs.shape[1:]), inputs.dtype)
      padded[:len(chunk)] = chunk
      result = fn(self.params, jax.device_put(padded, sharding.batch_sharding(self.mesh)))
      out[start:start + len(chunk)] = np.asarray(jax.device_get(result))[:len(chunk)]
    return out

  def encode(self, images) -> np.ndarray:
    """uint8 `(B, H, W, C)` -> int32 codes `(B, h, w, L)`."""
    images = self._check_images(images)
    return self._batched(self._encode, images, (*self.grid, self.num_codebooks), np.int32)

  def decode_head(self, codes) -> np.ndarray:
    """Codes `(B, h, w, L)` -> float32 head `(B, H, W, C_out)` (the likelihood's parameters)."""
    codes = self.check_codes(codes)
    channels = likelihoods.num_head_channels(self.likelihood, self.image_shape[-1],
                                             self.config.model.num_mixtures)
    return self._batched(self._decode_head, codes, (*self.image_shape[:2], channels), np.float32)

  def group_head(self, head, images, group: int) -> jax.Array:
    """Context heads only (`vqvae.context`): pixel group `group`'s parameters at its pixels,
    `(B, H/2, W/2, C_out)`, from `decode_head`'s output `(B, H, W, C_out)` and uint8 images
    `(B, H, W, C)` of which only the earlier groups' pixels are read. One jitted pass."""
    return self._group_head(self.params, jnp.asarray(head), jnp.asarray(images), int(group))

  def decode(self, codes) -> np.ndarray:
    """Codes `(B, h, w, L)` -> uint8 images `(B, H, W, C)`: the head's mean (for a context
    head, decoded group by group from the codes alone), rounded."""
    codes = self.check_codes(codes)
    return self._batched(self._decode, codes, self.image_shape, np.uint8)

  # ------------------------------------------------------------------ whole splits
  def codes_by_codebook(self, codes) -> np.ndarray:
    """Codes `(N, h, w, L)` regrouped `(N, codes per codebook, L_q)` by the codebook that chose
    them (`vqvae.codes_by_codebook`): L_q = config.num_codebooks for svq, whose groups of
    positions use different codebooks, else the codes' own L."""
    codes = np.asarray(codes)
    if self.config.quantizer != "svq":
      return codes.reshape(len(codes), -1, codes.shape[-1])
    return np.asarray(vqvae.codes_by_codebook("svq", codes[..., 0], self.config.num_codebooks))

  @property
  def codes_per_image(self) -> int:
    """h * w * L."""
    return math.prod(self.grid) * self.num_codebooks

  @property
  def code_dtype(self):
    """int16 when every code fits (K <= 32767), else int32: how code files store them."""
    return np.int16 if self.codebook_size <= 32767 else np.int32

  def encode_source(self, source, num: int | None = None, desc: str = "encode") -> np.ndarray:
    """Codes `(num, h, w, L)` (in `code_dtype`) of the first `num` images of a source.

    Args:
      source: a numpy array or a `data.ImageSource` of uint8 `(H, W, C)` images.
      num: how many; None = all.
      desc: the progress line's label (drawn on stderr by process 0).
    """
    num = len(source) if num is None else num
    out = np.empty((num, *self.grid, self.num_codebooks), self.code_dtype)
    chunk = self.batch_size * 8
    progress = Progress(num, desc, unit="image", enabled=jax.process_index() == 0 and num > 0)
    for start in range(0, num, chunk):
      stop = min(start + chunk, num)
      if isinstance(source, np.ndarray):
        images = source[start:stop]
      else:
        images = np.stack([np.asarray(source[i], np.uint8) for i in range(start, stop)])
      out[start:stop] = self.encode(images)
      progress.update(stop - start)
    return out

  def metadata(self, dataset: str, num_train: int, num_test: int) -> dict:
    """What `codes.json` records beside a code file."""
    return {
        "codebook_size": self.codebook_size,
        "num_codebooks": self.num_codebooks,
        "grid": list(self.grid),
        "image_shape": list(self.image_shape),
        "quantizer": self.config.quantizer,
        "likelihood": self.likelihood,
        "checkpoint_step": self.checkpoint_step,
        "checkpoint_digest": self.checkpoint_digest,
        "dataset": dataset,
        "num_train": int(num_train),
        "num_test": int(num_test),
    }


def encode_splits(tokenizer: Tokenizer, data: data_lib.ImageData) -> dict[str, np.ndarray]:
  """`{"train": codes, "test": codes}` of a data set's two splits (test after max_eval_examples)."""
  return {
      "train": tokenizer.encode_source(data.train, desc="encode train"),
      "test": tokenizer.encode_source(data.test, desc="encode test"),
  }


def _metadata_path(path: str) -> str:
  return str(epath.Path(path).with_suffix(".json"))


def check_codes_path(path: str, flag: str) -> None:
  """`path` (an .npz) and the .json beside it can be written (`outputs.check_file`).

  Raises:
    ConfigError: one line naming `flag`.
  """
  outputs.check_file(path, flag, (".npz",))
  outputs.check_file(_metadata_path(path), flag)


def write_codes(path: str, codes: dict[str, np.ndarray], metadata: dict,
                flag: str = "--output") -> None:
  """Writes `codes` to the npz `path` and `metadata` to the same name with `.json` (process 0),
  each whole or not at all.

  Raises:
    ConfigError: a write failed (nothing partial is left); `flag` names the path in the message.
  """
  if jax.process_index():
    return
  with outputs.atomic_file(_metadata_path(path), flag) as meta, \
      outputs.atomic_file(path, flag) as f:
    np.savez(f, **codes)
    meta.write(json.dumps(metadata, indent=2).encode())
