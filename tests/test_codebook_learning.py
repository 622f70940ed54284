"""The trainer's stateful codebook learning: EMA codebooks, k-means init, dead-code restart."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dvq_jax import data as data_lib
from dvq_jax import vqvae
from dvq_jax.errors import ConfigError
from dvq_jax.training import checkpointing
from dvq_jax.training import optim
from dvq_jax.vqvae import codebook_learning
from dvq_jax.vqvae import defaults
from dvq_jax.vqvae import train
from dvq_jax.vqvae import validation
from tests.conftest import run_on_8_devices


def _config(**overrides):
  config = defaults.learned_prior()
  defaults.shrink(config)
  config.likelihood = "mse"
  for key, value in overrides.items():
    config[key] = value
  return config


def _images(seed=0, batch=8, size=16):
  # Smooth random images: blocks of 4x4 pixels, so a tiny model can learn them.
  rng = np.random.default_rng(seed)
  blocks = rng.integers(0, 256, (batch, size // 4, size // 4, 3), dtype=np.uint8)
  return jnp.asarray(blocks.repeat(4, axis=1).repeat(4, axis=2))


def _setup(config, images):
  model = vqvae.build_model(config, images.shape[1:])
  tx = optim.make_optimizer(config)
  params = model.init(jax.random.key(config.seed), images[:1])["params"]
  state = {"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": tx.init(params),
           "codebook_state": codebook_learning.init_codebook_state(
               config, params["quantize"]["codebooks"])}
  step = jax.jit(lambda s, x: codebook_learning.train_step(s, x, model=model, tx=tx,
                                                           config=config))
  return model, state, step


def test_ema_step_follows_the_ema_formula_and_training_learns():
  config = _config(codebook_update="ema", ema_decay=0.9, learning_rate=3e-3)
  images = _images()
  model, state, step = _setup(config, images)
  # numpy EMA step from the latents and codes of the params before the step
  out = model.apply({"params": state["params"]}, images)
  z = np.asarray(out.latents, np.float64).reshape(-1, config.num_codebooks, config.codebook_dim)
  codes = np.asarray(out.quant.codes).reshape(-1, config.num_codebooks)
  size = np.asarray(state["codebook_state"]["cluster_size"], np.float64)
  embed = np.asarray(state["codebook_state"]["embed_sum"], np.float64)
  for l in range(config.num_codebooks):
    counts = np.bincount(codes[:, l], minlength=config.codebook_size)
    sums = np.stack([z[codes[:, l] == k, l].sum(0) for k in range(config.codebook_size)])
    size[l] = 0.9 * size[l] + 0.1 * counts
    embed[l] = 0.9 * embed[l] + 0.1 * sums
  total = size.sum(-1, keepdims=True)
  expected = embed / ((size + 1e-5) / (total + config.codebook_size * 1e-5) * total)[..., None]

  first, metrics = step(state, images)
  np.testing.assert_allclose(first["params"]["quantize"]["codebooks"], expected, rtol=1e-5,
                             atol=1e-6)
  np.testing.assert_allclose(first["codebook_state"]["cluster_size"], size, rtol=1e-6)
  # The optimizer does not move the codebooks (their gradient is zero without the codebook term)
  assert not np.allclose(first["params"]["quantize"]["codebooks"],
                         state["params"]["quantize"]["codebooks"])
  state, losses = first, [float(metrics["recon_bits_per_dim"])]
  for _ in range(40):
    state, metrics = step(state, images)
    losses.append(float(metrics["recon_bits_per_dim"]))
  assert losses[-1] < losses[0] - 0.5, losses


def test_restart_moves_dead_codes_onto_batch_vectors_and_they_get_used():
  # Codebooks far from every latent: one code wins everything, the others are dead.
  config = _config(dead_code_threshold=1.0, ema_decay=0.5)
  images = _images()
  model, state, step = _setup(config, images)
  far = state["params"]["quantize"]["codebooks"] + 100.0
  state["params"]["quantize"]["codebooks"] = far.at[:, 0].set(0.0)
  usage_before = model.apply({"params": state["params"]}, images).quant.usage
  np.testing.assert_allclose(usage_before, 1 / config.codebook_size)
  # cluster sizes start at 1 and decay: dead codes fall to 0.5 < threshold in step 1
  new, metrics = step(state, images)
  assert int(metrics["codes_restarted"]) == config.num_codebooks * (config.codebook_size - 1)
  np.testing.assert_allclose(new["codebook_state"]["cluster_size"][:, 1:], 1.0)
  usage_after = model.apply({"params": new["params"]}, images).quant.usage
  assert np.all(usage_after > 0.5), usage_after
  # deterministic for the step's key
  again, _ = step(state, images)
  np.testing.assert_array_equal(again["params"]["quantize"]["codebooks"],
                                new["params"]["quantize"]["codebooks"])


def _write_npz(path, num_train=24, num_test=8, size=16):
  rng = np.random.default_rng(0)
  np.savez(path, train=rng.integers(0, 256, (num_train, size, size, 3), dtype=np.uint8),
           test=rng.integers(0, 256, (num_test, size, size, 3), dtype=np.uint8))


def _run_config(tmp_path, **overrides):
  return _config(dataset=f"npz:{tmp_path / 'data.npz'}", max_eval_examples=8,
                 eval_every_steps=100, num_recon_images=0, **overrides)


def _checkpoint(workdir, step=None):
  checkpointer = checkpointing.Checkpointer(str(workdir), 3)
  try:
    return jax.tree.map(np.asarray, checkpointer.restore_arrays(step))
  finally:
    checkpointer.close()


def test_kmeans_init_is_checkpointed_and_resume_with_ema_is_bit_identical(tmp_path, monkeypatch):
  _write_npz(tmp_path / "data.npz")
  calls = []
  kmeans_state = codebook_learning.kmeans_state

  def counted(*args, **kwargs):
    calls.append(1)
    return kmeans_state(*args, **kwargs)

  monkeypatch.setattr(codebook_learning, "kmeans_state", counted)
  common = dict(codebook_update="ema", kmeans_init=True, kmeans_batches=1, kmeans_iterations=3,
                dead_code_threshold=1.0)
  train.train_and_evaluate(_run_config(tmp_path, num_train_steps=4, **common),
                           str(tmp_path / "straight"))
  assert len(calls) == 1
  train.train_and_evaluate(_run_config(tmp_path, num_train_steps=2, **common),
                           str(tmp_path / "resumed"))
  assert len(calls) == 2
  train.train_and_evaluate(_run_config(tmp_path, num_train_steps=4, **common),
                           str(tmp_path / "resumed"))
  assert len(calls) == 2  # the resumed run restored its k-means codebooks
  straight, resumed = _checkpoint(tmp_path / "straight"), _checkpoint(tmp_path / "resumed")
  assert set(resumed) == {"step", "params", "opt_state", "codebook_state"}
  jax.tree.map(np.testing.assert_array_equal, straight, resumed)

  # Step 0 holds the k-means codebooks of the first batch's encoder outputs
  zero = _checkpoint(tmp_path / "resumed", 0)
  assert int(zero["step"]) == 0
  config = _run_config(tmp_path, num_train_steps=4, **common)
  model = vqvae.build_model(config, (16, 16, 3))
  params = model.init(jax.random.key(config.seed), jnp.zeros((1, 16, 16, 3), jnp.uint8))["params"]
  loaded = data_lib.load(config)
  first = next(iter(data_lib.train_batches(loaded, start_step=0, global_batch_size=8,
                                           seed=config.seed, process_index=0, process_count=1,
                                           worker_count=0)))
  expected = kmeans_state({"params": params}, jnp.asarray(first),
                          model=model, config=config)["params"]["quantize"]["codebooks"]
  codebooks = zero["params"]["quantize"]["codebooks"]
  np.testing.assert_allclose(codebooks, expected, rtol=1e-5, atol=1e-6)
  assert not np.allclose(codebooks, params["quantize"]["codebooks"])
  np.testing.assert_array_equal(zero["codebook_state"]["embed_sum"], codebooks)


def test_restart_count_goes_into_metrics(tmp_path):
  _write_npz(tmp_path / "data.npz")
  config = _run_config(tmp_path, dead_code_threshold=1.0, ema_decay=0.5)
  config.model.codebook_init_scale = 30.0  # far-out codes: most are dead at the start
  result = train.train_and_evaluate(config, str(tmp_path / "w"))
  lines = [json.loads(line) for line in (tmp_path / "w" / "metrics.jsonl").read_text().splitlines()]
  restarted = [line["train/codes_restarted"] for line in lines if "train/codes_restarted" in line]
  assert len(restarted) == 2 and sum(restarted) > 0, restarted
  assert np.mean(result["usage"]) > 0.5, result["usage"]


_SHARDED = r"""
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from dvq_jax import data as data_lib
from dvq_jax import vqvae
from dvq_jax.training import loop, optim
from dvq_jax.vqvae import codebook_learning, defaults

assert jax.device_count() == 8
mesh = Mesh(np.array(jax.devices()), ("data",))
data, rep = NamedSharding(mesh, P("data")), NamedSharding(mesh, P())
images = jnp.asarray(np.random.default_rng(0).integers(0, 256, (16, 16, 16, 3)), jnp.uint8)
for quantizer in ("dvq", "svq"):
  config = defaults.learned_prior()
  defaults.shrink(config)
  config.likelihood, config.quantizer = "mse", quantizer
  config.codebook_update, config.dead_code_threshold = "ema", 3.0
  model = vqvae.build_model(config, (16, 16, 3))
  tx = optim.make_optimizer(config)
  params = loop.initial_state(lambda k: model.init(k, images[:1])["params"], jax.random.key(0),
                              rep)
  state = {"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": tx.init(params),
           "codebook_state": codebook_learning.init_codebook_state(
               config, params["quantize"]["codebooks"])}
  def step(s, x):
    return codebook_learning.train_step(s, x, model=model, tx=tx, config=config)
  one = jax.jit(step)(state, images)
  sharded = jax.jit(step, in_shardings=(rep, data), out_shardings=rep)(
      jax.device_put(state, rep), jax.device_put(images, data))
  assert int(one[1]["codes_restarted"]) > 0
  for part in (lambda r: r[0]["codebook_state"], lambda r: r[0]["params"]["quantize"],
               lambda r: r[1]["codes_restarted"]):
    for a, b in zip(jax.tree.leaves(part(one)), jax.tree.leaves(part(sharded)), strict=True):
      np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)
print("OK")
"""


@pytest.mark.slow
def test_ema_and_restart_state_is_global_on_8_devices():
  proc = run_on_8_devices(_SHARDED)
  assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr[-3000:]


@pytest.mark.parametrize("field, value, message", [
    ("codebook_update", "adam", "config.codebook_update = 'adam' is unknown"),
    ("ema_decay", 1.0, "config.ema_decay = 1.0"),
    ("ema_epsilon", 0.0, "config.ema_epsilon = 0.0"),
    ("kmeans_iterations", -1, "config.kmeans_iterations = -1 must be an integer >= 0"),
    ("kmeans_batches", 0, "config.kmeans_batches = 0 must be an integer >= 1"),
    ("dead_code_threshold", -1.0, "config.dead_code_threshold = -1.0"),
])
def test_bad_codebook_learning_fields_fail_in_one_line(field, value, message):
  config = _config(**{field: value})
  with pytest.raises(ConfigError, match=message) as error:
    validation.check_config(config)
  assert "\n" not in str(error.value)


def test_kmeans_needs_k_vectors_and_equal_slices():
  config = _config(kmeans_init=True, kmeans_batches=1, codebook_size=512)
  with pytest.raises(ConfigError, match="raise kmeans_batches or batch_size"):
    validation.check_kmeans_vectors(config, (16, 16, 3))
  config = _config(codebook_update="ema", num_codebooks=2, codebook_dim=4, slice_sizes=(4, 3))
  with pytest.raises(ConfigError, match="slice_sizes"):
    validation.check_config(config)


def test_stateful_codebook_learning_refuses_the_codebook_free_families():
  """fsq and lfq have no codebooks and rvq's are per stage: EMA/k-means/restart say so."""
  for quantizer in ("rvq", "fsq", "lfq"):
    config = _config(quantizer=quantizer, codebook_update="ema")
    with pytest.raises(ConfigError, match="work with dvq, mvq, vq and svq") as error:
      validation.check_config(config)
    assert "\n" not in str(error.value)


def test_microbatched_ema_and_restart_step_is_the_full_batch_step():
  images = _images(batch=8)
  config = _config(codebook_update="ema", dead_code_threshold=3.0)
  model, state, step = _setup(config, images)
  tx = optim.make_optimizer(config)
  micro_config = _config(codebook_update="ema", dead_code_threshold=3.0, microbatches=2)
  micro_step = jax.jit(lambda s, x: codebook_learning.train_step(s, x, model=model, tx=tx,
                                                                 config=micro_config))
  full, metrics = step(state, images)
  micro, micro_metrics = micro_step(state, images)
  assert float(metrics["codes_restarted"]) > 0
  for a, b in zip(jax.tree.leaves((micro, micro_metrics)), jax.tree.leaves((full, metrics)),
                  strict=True):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("overrides, message", [
    (dict(microbatches=3), "config.batch_size = 8 does not split into 3 microbatches over 1"),
    (dict(microbatches=0), "config.microbatches = 0 must be an integer >= 1"),
    (dict(microbatches=2, quantizer="lfq"), "microbatches > 1 does not work with lfq"),
])
def test_bad_microbatches_fail_in_one_line(overrides, message):
  with pytest.raises(ConfigError, match=message):
    validation.check_config(_config(**overrides))
