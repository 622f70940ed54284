"""The code prior's model: causality, the KV-cache step, orderings, bits/dim, learning a chain."""

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from scipy import special

from dvq_jax import backends
from dvq_jax import flat_random
from dvq_jax.prior import objective
from dvq_jax.prior import sampling
from dvq_jax.prior.model import CONDITIONS
from dvq_jax.prior.model import CodePrior
from dvq_jax.prior.model import attention_weights
from dvq_jax.prior.model import build_prior
from dvq_jax.prior.ordering import ORDERS
from dvq_jax.prior.ordering import Ordering
from dvq_jax.tokenizer import CodeLayout


def _model_and_params(order, seed=0, **kw):
  settings = dict(codebook_size=5, num_codebooks=3, grid=(2, 3), order=order, width=16,
                  depth=2, heads=2)
  settings.update(kw)
  model = CodePrior(**settings)
  tokens = jnp.zeros((1, model.ordering.num_tokens), jnp.int32)
  params = model.init(jax.random.key(seed), tokens)["params"]
  # The output heads start at zero (a uniform prior); perturb every param so that each
  # prediction depends on its inputs.
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(seed + 1), len(leaves))
  leaves = [x + 0.3 * flat_random.normal(k, x.shape) for x, k in zip(leaves, keys)]
  return model, jax.tree.unflatten(tree, leaves)


@pytest.mark.parametrize("order", ORDERS)
def test_ordering_round_trip_and_layout(order):
  ordering = Ordering(order, (2, 3), 4)
  codes = np.random.default_rng(0).integers(0, 9, (5, 2, 3, 4))
  tokens = ordering.to_sequence(codes)
  np.testing.assert_array_equal(ordering.from_sequence(tokens), codes)
  np.testing.assert_array_equal(
      tokens[:, :ordering.num_tokens],
      codes[:, ordering.row, ordering.column, ordering.codebook])
  if order == "position_major":
    assert ordering.codebook[:8].tolist() == [0, 1, 2, 3, 0, 1, 2, 3]
  else:
    assert ordering.codebook[:8].tolist() == [0] * 6 + [1] * 2
    assert ordering.row[:6].tolist() == [0, 0, 0, 1, 1, 1]


@pytest.mark.parametrize("order", ORDERS)
def test_changing_token_t_changes_no_prediction_up_to_t(order):
  model, params = _model_and_params(order)
  num_tokens = model.ordering.num_tokens
  rng = np.random.default_rng(0)
  tokens = rng.integers(0, 5, (1, num_tokens)).astype(np.int32)
  base = np.asarray(model.apply({"params": params}, tokens))
  for t in range(num_tokens):
    changed = tokens.copy()
    changed[0, t] = (changed[0, t] + 1 + rng.integers(0, 4)) % 5
    out = np.asarray(model.apply({"params": params}, changed))
    np.testing.assert_array_equal(out[:, :t + 1], base[:, :t + 1])  # exactly: masked weights are 0
    if t + 1 < num_tokens:
      assert np.max(np.abs(out[:, t + 1] - base[:, t + 1])) > 1e-4  # token t+1 does see it


def test_earlier_positions_prior_hides_the_codes_of_its_own_position():
  # grid 2x3, L = 3: position p holds tokens 3p..3p+2. Changing any code of position p changes
  # no prediction of positions <= p (exactly) and every prediction of position p+1.
  model, params = _model_and_params("position_major", condition_on="earlier_positions")
  num_codebooks = model.num_codebooks
  rng = np.random.default_rng(0)
  tokens = rng.integers(0, 5, (1, model.ordering.num_tokens)).astype(np.int32)
  base = np.asarray(model.apply({"params": params}, tokens))
  for t in range(model.ordering.num_tokens):
    end = (t // num_codebooks + 1) * num_codebooks  # first token of the next position
    changed = tokens.copy()
    changed[0, t] = (changed[0, t] + 1 + rng.integers(0, 4)) % 5
    out = np.asarray(model.apply({"params": params}, changed))
    np.testing.assert_array_equal(out[:, :end], base[:, :end])
    if end < model.ordering.num_tokens:
      difference = np.abs(out[:, end:end + num_codebooks] - base[:, end:end + num_codebooks])
      assert difference.max(-1).min() > 1e-4  # each code of the next position sees it


def test_condition_on_checks_its_value_and_order():
  for condition_on, order, match in (("nearby", "position_major", "nearby.*all_earlier_codes"),
                                     ("earlier_positions", "codebook_major", "position_major")):
    model = CodePrior(codebook_size=5, num_codebooks=2, grid=(2, 2), order=order, width=8,
                      depth=1, heads=2, condition_on=condition_on)
    with pytest.raises(ValueError, match=match):
      model.init(jax.random.key(0), jnp.zeros((1, 8), jnp.int32))


@pytest.mark.parametrize("order,condition_on", [(o, CONDITIONS[0]) for o in ORDERS]
                         + [("position_major", "earlier_positions")])
def test_kv_cache_step_matches_teacher_forcing(order, condition_on):
  model, params = _model_and_params(order, condition_on=condition_on)
  tokens = jnp.asarray(np.random.default_rng(1).integers(0, 5, (4, model.ordering.num_tokens)),
                       jnp.int32)
  full = np.asarray(model.apply({"params": params}, tokens))
  step = jax.jit(lambda cache, previous, t: model.apply({"params": params}, cache, previous, t,
                                                        method=model.step))
  cache = model.init_cache(4)
  rows = []
  for t in range(model.ordering.num_tokens):
    previous = tokens[:, t - 1] if t else jnp.full((4,), 3, jnp.int32)  # ignored at t = 0
    log_probs, cache = step(cache, previous, t)
    rows.append(np.asarray(log_probs))
  np.testing.assert_allclose(np.stack(rows, axis=1), full, atol=2e-5)


def test_untrained_prior_is_uniform_and_log_probs_normalise():
  model = CodePrior(codebook_size=7, num_codebooks=2, grid=(2, 2), width=8, depth=1, heads=2)
  tokens = jnp.zeros((2, 8), jnp.int32)
  params = model.init(jax.random.key(0), tokens)["params"]
  np.testing.assert_allclose(model.apply({"params": params}, tokens), -math.log(7), rtol=1e-6)
  _, perturbed = _model_and_params("position_major")
  out = CodePrior(codebook_size=5, num_codebooks=3, grid=(2, 3), width=16, depth=2,
                  heads=2).apply({"params": perturbed}, jnp.zeros((2, 18), jnp.int32))
  np.testing.assert_allclose(np.exp(out).sum(-1), 1.0, rtol=1e-5)


def test_bits_per_dim_bookkeeping_against_numpy():
  model, params = _model_and_params("codebook_major")
  ordering = model.ordering
  rng = np.random.default_rng(2)
  tokens = rng.integers(0, 5, (6, ordering.num_tokens)).astype(np.int32)
  mask = np.array([1, 1, 1, 1, 0, 0], bool)  # two padding rows count nowhere
  sums = objective.eval_sums(params, model, jnp.asarray(tokens), jnp.asarray(mask),
                             ordering.codebook)
  log_probs = np.asarray(model.apply({"params": params}, tokens), np.float64)
  nll = -np.take_along_axis(log_probs, tokens[..., None], -1)[..., 0][mask]  # (4, T)
  expected = np.array([nll[:, ordering.codebook == l].sum() for l in range(3)])
  np.testing.assert_allclose(sums["nll_nats"], expected, rtol=1e-5)
  assert float(sums["count"]) == 4
  image_dims = 8 * 12 * 3
  out = objective.rate_metrics(sums["nll_nats"], sums["count"], num_tokens=ordering.num_tokens,
                               codebook_size=5, image_dims=image_dims, unigram_bits=123.0,
                               recon_bits_per_dim=2.5)
  bits = nll.sum() / np.log(2)
  np.testing.assert_allclose(out["rate_prior_bits_per_dim"], bits / (4 * image_dims), rtol=1e-5)
  np.testing.assert_allclose(out["nll_nats_per_code"], nll.mean(), rtol=1e-5)
  np.testing.assert_allclose(out["prior_bits_per_code"], expected / np.log(2) / (4 * 6),
                             rtol=1e-5)
  assert out["rate_bits_per_dim"] == pytest.approx(18 * np.log2(5) / image_dims)
  assert out["rate_unigram_bits_per_dim"] == pytest.approx(123.0 / (4 * image_dims))
  assert out["elbo_bits_per_dim"] == pytest.approx(2.5 + out["rate_prior_bits_per_dim"])
  counts = objective.code_counts(np.array([[[[0, 1]], [[0, 0]]]]), 3)
  np.testing.assert_array_equal(counts, [[2, 0, 0], [1, 1, 0]])


def _markov_sequences(rng, num, length, transition):
  states = np.empty((num, length), np.int32)
  states[:, 0] = rng.integers(0, len(transition), num)  # uniform = the stationary distribution
  for t in range(1, length):
    cumulative = np.cumsum(transition[states[:, t - 1]], axis=-1)
    states[:, t] = (rng.random((num, 1)) > cumulative).sum(-1)
  return states


def test_prior_learns_a_markov_chains_entropy_rate():
  # A chain over K = 4 codes running through the whole sequence (L = 2 codebooks, 8 positions,
  # position_major): every codebook's head and embeddings must learn the same transitions.
  k = 4
  transition = np.full((k, k), 0.1) + np.eye(k)[:, [1, 2, 3, 0]] * 0.6  # rows sum to 1
  entropy_rate = -np.sum(transition[0] * np.log(transition[0]))  # every row alike: 0.940 nats
  rng = np.random.default_rng(0)
  train = _markov_sequences(rng, 2048, 16, transition)
  test = _markov_sequences(rng, 512, 16, transition)
  model = CodePrior(codebook_size=k, num_codebooks=2, grid=(1, 8), width=32, depth=1, heads=2)
  params = model.init(jax.random.key(0), jnp.asarray(train[:1]))["params"]
  tx = optax.adam(3e-3)

  @jax.jit
  def update(params, opt_state, batch, key):
    grads = jax.grad(lambda p: objective.loss_fn(p, model, batch, key)[0])(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  opt_state = tx.init(params)
  for step in range(300):
    batch = train[rng.integers(0, len(train), 64)]
    params, opt_state = update(params, opt_state, batch, jax.random.key(step))
  nll = np.asarray(objective.token_nll(params, model, jnp.asarray(test)))
  assert abs(nll[:, 1:].mean() - entropy_rate) < 0.05 * entropy_rate, nll[:, 1:].mean()
  assert abs(nll[:, 0].mean() - np.log(k)) < 0.05 * np.log(k)  # the first code: uniform


@pytest.mark.parametrize("top_k,condition_on", [(0, CONDITIONS[0]), (2, CONDITIONS[0]),
                                                (0, "earlier_positions")])
def test_sampling_with_and_without_cache_draw_the_same_codes(top_k, condition_on):
  model, params = _model_and_params("position_major", condition_on=condition_on)
  args = dict(model=model, num_samples=8, top_k=top_k)
  with_cache = sampling.sample_tokens(params, jax.random.key(3), 1.0, **args)
  without = sampling.sample_tokens(params, jax.random.key(3), 1.0, use_cache=False, **args)
  assert with_cache.shape == (8, model.ordering.num_tokens)
  # The two paths' log-probs differ by float rounding (~1e-6); the same noise then draws the
  # same codes unless a draw sits on a near-tie, which these draws do not.
  np.testing.assert_array_equal(with_cache, without)
  assert 0 <= int(with_cache.min()) and int(with_cache.max()) < 5
  assert len(np.unique(np.asarray(with_cache))) >= 3  # real draws, not one repeated code
  if top_k:  # every draw is one of the 2 most likely codes given its prefix
    log_probs = np.asarray(model.apply({"params": params}, with_cache))
    rank = (log_probs > np.take_along_axis(log_probs, np.asarray(with_cache)[..., None],
                                           -1)).sum(-1)
    assert rank.max() < 2


@pytest.mark.parametrize("platform", ["cpu", "tpu"])  # the gather and the select-sum forms
@pytest.mark.parametrize("order", ORDERS)
def test_token_nll_and_its_head_gradient_match_a_numpy_log_softmax(platform, order):
  """-log softmax(logits)[token] against float64 numpy from the model's logits, and the
  gradient of the summed NLL with respect to each codebook's head bias: sum over that
  codebook's tokens of softmax - onehot (so each token went through its own codebook's head)."""
  model, params = _model_and_params(order)
  tokens = jnp.asarray(np.random.default_rng(4).integers(0, 5, (3, model.ordering.num_tokens)),
                       jnp.int32)
  logits = np.asarray(model.apply({"params": params}, tokens, method=model.logits), np.float64)
  log_probs = special.log_softmax(logits, axis=-1)
  expected = -np.take_along_axis(log_probs, np.asarray(tokens)[..., None], -1)[..., 0]
  residual = np.exp(log_probs) - (np.arange(5) == np.asarray(tokens)[..., None])
  expected_grad = np.stack([residual[:, model.ordering.codebook == l].sum((0, 1))
                            for l in range(model.num_codebooks)])
  with backends.compiling_for(platform):
    nll = objective.token_nll(params, model, tokens)
    grads = jax.grad(lambda p: jnp.sum(objective.token_nll(p, model, tokens)))(params)
  np.testing.assert_allclose(nll, expected, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(grads["head_bias"], expected_grad, rtol=1e-4, atol=1e-5)


def test_auto_dtype_is_float32_on_cpu_and_bfloat16_on_accelerators():
  """`model.dtype = "auto"` builds a float32 prior on CPU (no bfloat16 in its loss) and a
  bfloat16 one for a TPU or GPU; a bfloat16 prior keeps float32 params and gradients, its
  logits are bfloat16 in the accelerator form, and its NLL and KV-cache step follow the
  float32 prior's to bfloat16 precision."""
  config = ml_collections.ConfigDict({"order": "position_major", "model": {
      "width": 16, "depth": 2, "heads": 2, "dropout": 0.0, "dtype": "auto"}})
  layout = CodeLayout(codebook_size=5, num_codebooks=3, grid=(2, 3))
  f32 = build_prior(config, layout)
  assert f32.dtype == "float32"
  for platform in ("tpu", "gpu"):
    with backends.compiling_for(platform):
      assert build_prior(config, layout).dtype == "bfloat16"
  _, params = _model_and_params("position_major")
  tokens = jnp.asarray(np.random.default_rng(5).integers(0, 5, (4, f32.ordering.num_tokens)),
                       jnp.int32)
  loss = lambda p, model: objective.loss_fn(p, model, tokens, jax.random.key(0))[0]
  assert "bf16" not in jax.jit(loss, static_argnums=1).lower(params, f32).as_text()
  bf16 = f32.clone(dtype="bfloat16")
  with backends.compiling_for("tpu"):
    assert bf16.apply({"params": params}, tokens, method=bf16.logits).dtype == jnp.bfloat16
    loss16, grads = jax.value_and_grad(lambda p: loss(p, bf16))(params)
  assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(grads))
  np.testing.assert_allclose(loss16, loss(params, f32), rtol=2e-2)
  cache = bf16.init_cache(4)
  assert cache["layers"][0]["k"].dtype == jnp.bfloat16
  full = np.asarray(f32.apply({"params": params}, tokens))
  for t in range(3):
    log_probs, cache = bf16.apply({"params": params}, cache, tokens[:, max(t - 1, 0)], t,
                                  method=bf16.step)
    assert log_probs.dtype == jnp.float32
    np.testing.assert_allclose(log_probs, full[:, t], atol=0.1)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_attention_weights_and_their_gradient_match_numpy(dtype):
  """The masked softmax against float64 numpy, and its gradient against central differences
  of sum(g * softmax) in float64; bfloat16 to bfloat16 precision."""
  rng = np.random.default_rng(6)
  scores = jnp.asarray(rng.normal(0, 2, (2, 2, 4, 4)), dtype)
  mask = np.tril(np.ones((4, 4), bool))
  g = rng.normal(0, 1, scores.shape)

  def softmax(s):
    s = np.where(mask, s, -np.inf)
    e = np.exp(s - s.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)

  s64 = np.asarray(scores, np.float64)
  expected_grad = np.zeros_like(s64)
  for index in np.ndindex(s64.shape):
    step = np.zeros_like(s64)
    step[index] = 1e-6
    expected_grad[index] = np.sum(g * (softmax(s64 + step) - softmax(s64 - step))) / 2e-6
  weights, vjp = jax.vjp(lambda s: attention_weights(s, jnp.asarray(mask)), scores)
  (grad,) = vjp(jnp.asarray(g, dtype))
  tolerance = 1e-5 if dtype == jnp.float32 else 2e-2
  assert weights.dtype == grad.dtype == dtype
  np.testing.assert_allclose(np.asarray(weights, np.float64), softmax(s64), atol=tolerance)
  np.testing.assert_allclose(np.asarray(grad, np.float64), expected_grad, atol=tolerance)
