"""Test-set evaluation: every test example counted exactly once, over padded+masked batches.

Metrics (all over the test split; the trainer page's "Metrics" defines them)::

  recon_bits_per_dim  reconstruction NLL / (H*W*C*ln 2): the paper's Table 1 number;
  rate_bits_per_dim   codes per image * log2 A / (H*W*C): the codes' cost, uniform prior, with A
                      the values of one code (K; prod(fsq_levels) for fsq; 2^D for lfq);
  elbo_bits_per_dim   recon + rate, an upper bound on the NLL;
  rate_unigram_bits_per_dim  the test codes' length under each codebook's code histogram
                      (add-1/2), per subpixel; the histogram is of the current encoder's codes
                      of `config.unigram_train_examples` evenly spaced training images (default
                      50,000; the whole split if smaller, or if the field is 0), so its cost
                      does not grow with the training split; elbo_unigram_bits_per_dim
                      recon + that rate;
  psnr                of the mean reconstruction, from the mean squared error over the split;
  ssim                its structural similarity (dm-pix), the mean over test images;
  perplexity and usage per codebook.

A context head (`likelihood = "context_logistic_mixture"`, `vqvae.context`) conditions each
pixel on already-decoded neighbours, so its `recon_bits_per_dim` is a compressor's cost, not the
per-subpixel quantity of the other heads: never compare the two. Its evaluation also writes::

  context_recon_bits_per_dim  the same number under a name that says what it is;
  shuffled_codes_recon_bits_per_dim  the NLL with each test image's codes replaced by another
                      test image's (the next one in its batch), per subpixel;
  shuffled_codes_gap_bits_per_dim  that minus recon: what the codes tell the head about their
                      own image (near 0 would mean the head ignores them);

and its PSNR/SSIM are of the image decoded from the codes alone, group by group.
"""

import dataclasses
import math

import jax
import ml_collections
import numpy as np
from etils import epath
from jax.sharding import Mesh

from dvq_jax import data as data_lib
from dvq_jax import figures
from dvq_jax.vqvae import likelihoods
from dvq_jax import metrics
from dvq_jax.vqvae import objective
from dvq_jax.vqvae.model_fields import code_alphabet_size
from dvq_jax.vqvae.model_fields import codes_per_image
from dvq_jax.training import sharding


def finalize(sums: dict, config: ml_collections.ConfigDict, image_shape,
             train_counts: np.ndarray) -> dict:
  """Summed statistics over the test set (see `objective.eval_stats`) -> the reported metrics.

  Args:
    sums: `objective.eval_stats` summed over the test split.
    config: the learned-prior config.
    image_shape: `(H, W, C)`.
    train_counts: `(L, K)` code counts over the training sample (`Evaluator.train_code_counts`),
      for the unigram rate.
  """
  dims = math.prod(image_shape)
  count = float(sums["count"])
  recon = float(metrics.recon_bits_per_dim(float(sums["nll_nats"]) / count, dims))
  rate = metrics.rate_bits_per_dim(
      codes_per_image(config, image_shape), code_alphabet_size(config), dims)
  rate_unigram = metrics.unigram_code_bits(train_counts, sums["code_counts"]) / (count * dims)
  return {
      "recon_bits_per_dim": recon,
      "rate_bits_per_dim": rate,
      "elbo_bits_per_dim": recon + rate,
      "rate_unigram_bits_per_dim": rate_unigram,
      "elbo_unigram_bits_per_dim": recon + rate_unigram,
      "psnr": float(metrics.psnr_from_mse(float(sums["sq_error"]) / (count * dims))),
      "ssim": float(sums["ssim"]) / count,
      "perplexity": np.asarray(metrics.perplexity_from_counts(sums["code_counts"])),
      "usage": np.asarray(metrics.usage_from_counts(sums["code_counts"])),
      "num_examples": int(count),
      **_context_metrics(sums, recon, count * dims),
  }


def _context_metrics(sums: dict, recon: float, dims: float) -> dict:
  """A context head's recon bits/dim under its own name, and the shuffled-codes check."""
  if "shuffled_nll_nats" not in sums:
    return {}
  shuffled = float(metrics.recon_bits_per_dim(float(sums["shuffled_nll_nats"]), dims))
  return {"context_recon_bits_per_dim": recon, "shuffled_codes_recon_bits_per_dim": shuffled,
          "shuffled_codes_gap_bits_per_dim": shuffled - recon}


def jit_eval_stats(model, mesh: Mesh):
  """The evaluation step: `(params, images, mask) -> objective.eval_stats` sums, the batch
  sharded on `data` and the params replicated (the program `dvq_jax.plan` compiles too)."""
  replicated, batch = sharding.replicated(mesh), sharding.batch_sharding(mesh)
  return jax.jit(lambda params, images, mask: objective.eval_stats(params, model, images, mask),
                 in_shardings=(replicated, batch, batch), out_shardings=replicated)


class Evaluator:
  """Runs the jitted eval step over the whole test split and writes images (process 0)."""

  def __init__(self, config: ml_collections.ConfigDict, model, data, mesh: Mesh, workdir: str):
    self._config, self._model, self._data, self._mesh = config, model, data, mesh
    self._workdir = epath.Path(workdir)
    self._batch_size = config.eval_batch_size or config.batch_size
    replicated = sharding.replicated(mesh)
    batch = sharding.batch_sharding(mesh)
    self._stats = jit_eval_stats(model, mesh)
    self._recon = jax.jit(self._reconstruct, in_shardings=(replicated, replicated),
                          out_shardings=replicated)
    self._counts = jax.jit(
        lambda params, images, mask: objective.encode_code_counts(params, model, images, mask),
        in_shardings=(replicated, batch, batch), out_shardings=replicated)
    # The training sample read like a test split: in order, padded and masked, each image once.
    sample = data.train
    if config.unigram_train_examples:
      sample = data_lib.evenly_spaced(data.train, config.unigram_train_examples)
    self._train_sample = dataclasses.replace(data, test=sample, num_test=len(sample))

  def _reconstruct(self, params, images):
    model = self._model
    if model.likelihood not in likelihoods.CONTEXT_NAMES:
      head = model.apply({"params": params}, images).head
      return likelihoods.mean_image(model.likelihood, head, images.shape[-1])
    codes = model.apply({"params": params}, images, method=model.encode)  # from the codes alone
    base = model.apply({"params": params}, codes, method=model.decode)
    return model.apply({"params": params}, base, method=model.mean_image)

  def _batches(self, data):
    for batch in data_lib.eval_batches(
        data, global_batch_size=self._batch_size, process_index=jax.process_index(),
        process_count=jax.process_count()):
      yield (sharding.global_batch(self._mesh, batch["image"]),
             sharding.global_batch(self._mesh, batch["mask"]))

  def train_code_counts(self, params) -> np.ndarray:
    """`(L, K)` code counts over the training sample, each image once (encoder only).

    The sample is `config.unigram_train_examples` evenly spaced training images
    (`data.evenly_spaced`), or the whole split if that is 0 or the split smaller.
    """
    total = None
    for images, mask in self._batches(self._train_sample):
      counts = jax.device_get(self._counts(params, images, mask))
      total = counts if total is None else total + counts
    return total

  def run(self, params, step: int) -> dict:
    totals = None
    for images, mask in self._batches(self._data):
      sums = jax.device_get(self._stats(params, images, mask))
      totals = sums if totals is None else jax.tree.map(np.add, totals, sums)
    result = finalize(totals, self._config, self._data.image_shape,
                      self.train_code_counts(params))
    if self._config.num_recon_images:
      # Every process joins the computation; process 0 writes the images.
      originals = data_lib.spread_test_images(self._data, self._config.num_recon_images)
      recons = jax.device_get(self._recon(params, jax.make_array_from_process_local_data(
          sharding.replicated(self._mesh), originals)))
      if jax.process_index() == 0:
        self._write_images(originals, recons, step, result)
    return result

  def _write_images(self, originals, recons, step: int, result: dict) -> None:
    workdir = self._workdir
    title = (f"step {step}: test PSNR {result['psnr']:.2f} dB, SSIM {result['ssim']:.3f}"
             f" ({len(originals)} of {result['num_examples']} test images)")
    figures.write_png(workdir / f"recon_{step:07d}.png",
                      figures.recon_figure(originals, recons, title))
    figures.write_usage_plot(
        workdir / f"usage_{step:07d}.png", result["usage"], result["perplexity"],
        code_alphabet_size(self._config), f"{self._config.quantizer}, step {step}")
