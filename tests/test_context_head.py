"""The context head (`vqvae.context`): NLL against a numpy reference of its group nets, every
subpixel's coder table against the subpixels after it in decoding order, its gradient against
the reference's finite differences, the codes-only mean image, the shuffled-codes statistic of
the evaluation, and a short training run that learns."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dvq_jax import vqvae
from dvq_jax.errors import ConfigError
from dvq_jax.main import run
from dvq_jax.vqvae import context
from dvq_jax.vqvae import likelihoods
from dvq_jax.vqvae import model_fields
from dvq_jax.vqvae import objective
from tests import config_files
from tests import likelihood_reference
from tests import prior_fixtures

NUM_MIXTURES = 2
CHANNELS = likelihoods.num_head_channels("context_logistic_mixture", 3, NUM_MIXTURES)


@pytest.fixture(scope="module")
def head_and_params():
  rng = np.random.default_rng(0)
  base = rng.normal(0, 1, (2, 4, 6, CHANNELS)).astype(np.float32)
  images = rng.integers(0, 256, (2, 4, 6, 3)).astype(np.uint8)
  head = context.ContextHead(CHANNELS)
  params = head.init(jax.random.key(0), base, images)["params"]
  return head, prior_fixtures.perturbed(params, 1, 0.05), base, images


def _group_of_each_pixel(height: int, width: int) -> np.ndarray:
  planes = [jnp.full((1, height // 2, width // 2), g) for g in range(len(context.GROUPS))]
  return np.asarray(context.interleave(planes))[0]


def test_interleave_places_each_group_at_its_parities():
  index = _group_of_each_pixel(4, 4)
  for g, (r, c) in enumerate(context.GROUPS):
    assert (index[r::2, c::2] == g).all()


def _conv_same(x, kernel, bias):
  """float64 'SAME' convolution, NHWC, odd square kernel."""
  k = kernel.shape[0]
  pad = k // 2
  padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
  out = np.zeros(x.shape[:3] + (kernel.shape[-1],))
  for i in range(k):
    for j in range(k):
      out += padded[:, i:i + x.shape[1], j:j + x.shape[2]] @ kernel[i, j]
  return out + bias


def _reference_head(params, base, images):
  """Every pixel's parameters, float64: group 0 the base, group g the base plus its net of the
  base and the earlier groups' pixels, all on the half-resolution grid."""
  as64 = lambda tree: jax.tree.map(lambda a: np.asarray(a, np.float64), tree)
  head = np.zeros(base.shape)
  for g, (r, c) in enumerate(context.GROUPS):
    own = base[:, r::2, c::2].astype(np.float64)
    if g:
      net = as64(params[f"nets_{g - 1}"])
      known = [images[:, rr::2, cc::2] / 127.5 - 1.0 for rr, cc in context.GROUPS[:g]]
      x = np.concatenate([own, *known], axis=-1)
      for name in ("Conv_0", "Conv_1"):
        x = np.maximum(_conv_same(x, net[name]["kernel"], net[name]["bias"]), 0.0)
      own = own + _conv_same(x, net["Conv_2"]["kernel"], net["Conv_2"]["bias"])
    head[:, r::2, c::2] = own
  return head


def test_nll_matches_a_numpy_reference_of_the_group_nets(head_and_params):
  head, params, base, images = head_and_params
  conditioned = head.apply({"params": params}, base, images)
  expected_head = _reference_head(params, base, images)
  np.testing.assert_allclose(conditioned, expected_head, rtol=1e-4, atol=1e-4)
  assert np.abs(expected_head - base).max() > 0.1  # the nets do change the parameters
  expected, _ = likelihood_reference.logistic_mixture_nll(expected_head, images, NUM_MIXTURES)
  got = likelihoods.nll("context_logistic_mixture", conditioned, images)
  np.testing.assert_allclose(got, expected, rtol=1e-5)


@pytest.mark.parametrize("group", range(len(context.GROUPS)))
def test_a_subpixel_sees_only_the_subpixels_decoded_before_it(head_and_params, group):
  """Decoding order: group by group, within a group channel by channel (all pixels of a group's
  channel at once). Rewriting every subpixel at or after (group, channel) in that order leaves
  the coder's table for (group, channel) unchanged; rewriting an earlier one moves it."""
  head, params, base, images = head_and_params
  rng = np.random.default_rng(group)
  pixel_group = _group_of_each_pixel(*images.shape[1:3])[None, :, :, None]
  channel_index = np.arange(images.shape[-1])

  def table(x, channel):
    group_head = head.apply({"params": params}, base, x.astype(np.uint8), group,
                            method=head.group)
    pixels = context.group_pixels(jnp.asarray(x.astype(np.uint8)), group)
    return np.asarray(likelihoods.channel_log_pmf("context_logistic_mixture", group_head, pixels,
                                                  channel))

  for channel in channel_index:
    later = (pixel_group > group) | ((pixel_group == group) & (channel_index >= channel))
    changed = np.where(later, rng.integers(0, 256, images.shape), images)
    np.testing.assert_array_equal(table(changed, channel), table(images, channel))
    earlier = ~later & ((pixel_group == group - 1) | (pixel_group == group))
    if earlier.any():  # and the subpixels just before do reach it
      moved = np.where(earlier, 255 - images, images)
      assert np.abs(table(moved, channel) - table(images, channel)).max() > 1e-3


def test_teacher_forcing_gives_every_group_its_decoding_parameters(head_and_params):
  head, params, base, images = head_and_params
  full = np.asarray(head.apply({"params": params}, base, images))
  for g in range(len(context.GROUPS)):
    decoding = head.apply({"params": params}, base, np.asarray(context.known_before(images, g)),
                          g, method=head.group)
    np.testing.assert_allclose(np.asarray(context.group_pixels(full, g)), decoding, rtol=1e-6,
                               atol=1e-6)


def test_gradient_matches_the_numpy_reference(head_and_params):
  """jax.grad of the NLL against central differences of the float64 reference, along random
  directions in the nets' params and the decoder's output."""
  head, params, base, images = head_and_params

  def loss(params, base):
    conditioned = head.apply({"params": params}, base, images)
    return jnp.sum(likelihoods.nll("context_logistic_mixture", conditioned, images))

  def reference(params, base):
    nll, _ = likelihood_reference.logistic_mixture_nll(
        _reference_head(params, base, images), images, NUM_MIXTURES)
    return nll.sum()

  grads = jax.grad(loss, argnums=(0, 1))(params, jnp.asarray(base))
  rng = np.random.default_rng(5)
  for _ in range(3):
    direction = jax.tree.map(lambda x: rng.normal(0, 1, x.shape), (params, base))
    along = lambda t: jax.tree.map(lambda x, d: np.asarray(x, np.float64) + t * d,
                                   (params, base), direction)
    eps = 1e-7  # small enough that no ReLU of the nets changes side
    expected = (reference(*along(eps)) - reference(*along(-eps))) / (2 * eps)
    got = sum(float(np.sum(np.asarray(g, np.float64) * d))
              for g, d in zip(jax.tree.leaves(grads), jax.tree.leaves(direction)))
    np.testing.assert_allclose(got, expected, rtol=1e-4)


def test_mean_image_decodes_group_by_group_from_the_codes_alone(head_and_params):
  head, params, base, _ = head_and_params
  mean = np.asarray(head.apply({"params": params}, base, 3, method=head.mean_image))
  decoded = np.zeros(mean.shape, np.uint8)
  for g, (r, c) in enumerate(context.GROUPS):
    group_head = head.apply({"params": params}, base, decoded, g, method=head.group)
    expected = likelihoods.mean_image("logistic_mixture", group_head, 3)
    np.testing.assert_allclose(mean[:, r::2, c::2], expected, rtol=1e-6, atol=1e-4)
    decoded[:, r::2, c::2] = np.round(np.asarray(expected)).astype(np.uint8)


def test_eval_reports_the_nll_under_another_images_codes():
  config = config_files.load("configs/codec.py:small")
  model = vqvae.build_model(config, (8, 8, 3))
  rng = np.random.default_rng(3)
  images = jnp.asarray(rng.integers(0, 256, (4, 8, 8, 3)).astype(np.uint8))
  params = prior_fixtures.perturbed(model.init(jax.random.key(0), images)["params"], 2, 0.3)
  mask = jnp.array([True, True, True, False])  # 3 real images and one of padding
  stats = jax.jit(lambda p, x, m: objective.eval_stats(p, model, x, m))(params, images, mask)

  @jax.jit
  def nll_under_the_next_codes(params, images):
    codes = model.apply({"params": params}, images, method=model.encode)
    base = model.apply({"params": params}, codes, method=model.decode)
    # each real image under the next one's codes, the last under the first's
    head = model.apply({"params": params}, base[jnp.array([1, 2, 0])], images[:3],
                       method=model.conditioned_head)
    return jnp.sum(likelihoods.nll(model.likelihood, head, images[:3]))

  expected = float(nll_under_the_next_codes(params, images))
  np.testing.assert_allclose(float(stats["shuffled_nll_nats"]), expected, rtol=1e-5)
  assert abs(expected - float(stats["nll_nats"])) > 1e-3 * expected  # other codes do differ


def test_two_level_models_are_refused():
  config = config_files.load("configs/codec.py:small")
  with config.unlocked():
    config.levels = 2
  with pytest.raises(ConfigError, match="config.levels = 1"):
    model_fields.check_model_fields(config, (8, 8, 3))


@pytest.mark.slow
def test_codec_config_learns_and_its_codes_carry_information(tmp_path):
  # 400 steps of a narrow configs/codec.py on the demo photographs (~100 s on 2 loaded cores),
  # scored on test photos it never saw: 6.27 context bits/dim, 1.29 more under shuffled codes.
  config = config_files.load_with(
      "configs/codec.py:small", num_train_steps=400, batch_size=32, learning_rate=3e-3,
      codebook_size=32, eval_every_steps=400, checkpoint_every_steps=400, log_every_steps=100,
      max_eval_examples=128, **{"model.hidden_channels": 32, "model.residual_channels": 16,
                                "model.num_mixtures": 1})
  result = run(config, str(tmp_path))
  assert result["context_recon_bits_per_dim"] == result["recon_bits_per_dim"]
  assert result["context_recon_bits_per_dim"] < 6.5, result
  assert result["shuffled_codes_gap_bits_per_dim"] > 0.1, result  # the codes still matter
