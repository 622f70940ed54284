"""The context head: each pixel's logistic mixture also conditioned on already-decoded pixels.

`likelihood = "context_logistic_mixture"` splits the pixels into four groups by (row parity,
column parity), decoded in the order `GROUPS`: (0, 0), then (1, 1), (0, 1), (1, 0). Group 0's
parameters are the decoder's output (the `logistic_mixture` layout, `likelihoods`); group g > 0
adds to them a correction from a small conv net of its own (`GroupNet`), run on the half-resolution
grid of group g's pixels: its input is the decoder's output at those pixels and the pixels of
groups 0..g-1 (each group a `(H/2, W/2, C)` plane), and no other pixel, so a later group cannot
leak into an earlier one by construction. A 3x3 conv on that grid spans a 6x6 pixel window. Channels within a pixel stay
autoregressive as in PixelCNN++ (G on R, B on R and G), through the mixture's coefficients.

Decoding is four passes of the net whatever the image size; training computes every group's
parameters in one pass from the true image (teacher forcing, `ContextHead.__call__`). The group
1 pixels see their four diagonal neighbours, groups 2 and 3 all four direct ones.

Its NLL, -log2 p(x | z) with neighbours known, is not the per-subpixel NLL of the
categorical256 / logistic_mixture heads: it measures a compressor's cost, not how much of the
image the codes explain. Compare its `recon_bits_per_dim` only with other context heads.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp

from dvq_jax.vqvae import layers
from dvq_jax.vqvae import likelihoods

GROUPS = ((0, 0), (1, 1), (0, 1), (1, 0))  # (row parity, column parity), in decoding order
NET_FEATURES = 48  # width of each group's net: 3x3, 3x3 convs and a zero-initialised 1x1


def group_pixels(x: jax.Array, group: int) -> jax.Array:
  """`(batch, H, W, ...)` -> `(batch, H/2, W/2, ...)`, the entries at group `group`'s pixels."""
  row, column = GROUPS[group]
  return x[:, row::2, column::2]


def interleave(planes: list[jax.Array]) -> jax.Array:
  """Each group's `(batch, H/2, W/2, ...)` plane, in `GROUPS` order -> `(batch, H, W, ...)`.

  >>> import jax.numpy as jnp
  >>> planes = [jnp.full((1, 1, 2, 1), g) for g in range(4)]
  >>> interleave(planes)[0, ..., 0].tolist()
  [[0, 2, 0, 2], [3, 1, 3, 1]]
  """
  batch, height, width = planes[0].shape[:3]
  out = jnp.zeros((batch, 2 * height, 2 * width, *planes[0].shape[3:]), planes[0].dtype)
  for (row, column), plane in zip(GROUPS, planes):
    out = out.at[:, row::2, column::2].set(plane)
  return out


def known_before(images: jax.Array, group: int) -> jax.Array:
  """`images` `(batch, H, W, C)` with the pixels of groups >= `group` set to 0."""
  planes = [group_pixels(images, g) for g in range(len(GROUPS))]
  return interleave([p if g < group else jnp.zeros_like(p) for g, p in enumerate(planes)])


class GroupNet(nn.Module):
  """(decoder output, earlier groups' pixels) on one group's grid -> a parameter correction."""

  out_channels: int
  features: int = NET_FEATURES

  @nn.compact
  def __call__(self, base: jax.Array, known: jax.Array) -> jax.Array:
    pad = ((1, 1), (1, 1))
    x = jnp.concatenate([base, known], axis=-1)
    x = nn.relu(layers.Conv(self.features, (3, 3), padding=pad)(x))
    x = nn.relu(layers.Conv(self.features, (3, 3), padding=pad)(x))
    # Zero-initialised: training starts from the decoder's own (context-free) parameters.
    return nn.Conv(self.out_channels, (1, 1), kernel_init=nn.initializers.zeros)(x)


class ContextHead(nn.Module):
  """The decoder's output `(batch, H, W, P)` -> every group's mixture parameters `(batch, H, W, P)`.

  P = `likelihoods.num_head_channels("logistic_mixture", C, M)`; H and W even. One `GroupNet`
  per group after the first.
  """

  out_channels: int

  def setup(self):
    self.nets = [GroupNet(self.out_channels) for _ in GROUPS[1:]]

  def group(self, base: jax.Array, images: jax.Array, group: int) -> jax.Array:
    """Group `group`'s parameters at its pixels, `(batch, H/2, W/2, P)`, from the decoder's
    output and the pixels of the earlier groups; no other pixel of `images` is read."""
    own = group_pixels(base, group).astype(jnp.float32)
    if group == 0:
      return own
    known = jnp.concatenate(
        [likelihoods.to_unit(group_pixels(images, g)) for g in range(group)], axis=-1)
    return own + self.nets[group - 1](own, known)

  def __call__(self, base: jax.Array, images: jax.Array) -> jax.Array:
    """Teacher forcing: each pixel's parameters given the true pixels of the earlier groups."""
    return interleave([self.group(base, images, g) for g in range(len(GROUPS))])

  def mean_image(self, base: jax.Array, image_channels: int) -> jax.Array:
    """The image decoded from the codes alone: float32 `(batch, H, W, C)` in [0, 255].

    Group by group, each group's mixture mean (`likelihoods.mean_image`) given the earlier
    groups' means rounded to uint8, as a decoder without the image would form them.
    """
    batch, height, width = base.shape[:3]
    planes = [jnp.zeros((batch, height // 2, width // 2, image_channels), jnp.uint8)] * len(GROUPS)
    means = []
    for g in range(len(GROUPS)):
      mean = likelihoods.mean_image("logistic_mixture", self.group(base, interleave(planes), g),
                                    image_channels)
      means.append(mean)
      planes[g] = jnp.round(mean).astype(jnp.uint8)
    return interleave(means)
