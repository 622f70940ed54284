"""The order in which the prior reads a code grid `(h, w, L)` as one sequence of T = h*w*L tokens.

  position_major   raster over the h*w positions, the L codes of a position consecutive:
                   t = (row * w + column) * L + l. Codebook l of a position sees codebooks < l
                   of the same position and every code of earlier positions.
  codebook_major   all positions of codebook 0 in raster order, then codebook 1, ...:
                   t = l * h * w + row * w + column. Codebook l sees codebooks < l everywhere.

Which order suits depthwise codes is an open question (docs/prior.md); both are offered.
"""

import dataclasses

import jax.numpy as jnp
import numpy as np

ORDERS = ("position_major", "codebook_major")


@dataclasses.dataclass(frozen=True, eq=False)
class Ordering:
  """Static maps between a code grid and its token sequence.

  Attributes:
    order: position_major | codebook_major.
    grid: `(h, w)`.
    num_codebooks: L.
    row, column, codebook: `(T,)` int32, where token t sits in the grid.
    flat_index: `(T,)` int32, token t's index in the grid flattened row-major as (h, w, L).
  """

  order: str
  grid: tuple[int, int]
  num_codebooks: int

  def __post_init__(self):
    if self.order not in ORDERS:
      raise ValueError(f"order {self.order!r} is unknown; use one of {', '.join(ORDERS)}")
    h, w = self.grid
    row, column, codebook = np.meshgrid(np.arange(h), np.arange(w), np.arange(self.num_codebooks),
                                        indexing="ij")
    if self.order == "codebook_major":
      row, column, codebook = (a.transpose(2, 0, 1) for a in (row, column, codebook))
    flat = (row * w + column) * self.num_codebooks + codebook
    for name, value in (("row", row), ("column", column), ("codebook", codebook),
                        ("flat_index", flat)):
      array = value.reshape(-1).astype(np.int32)
      array.flags.writeable = False
      object.__setattr__(self, name, array)

  @property
  def num_tokens(self) -> int:
    """T = h * w * L."""
    return self.flat_index.size

  def to_sequence(self, codes):
    """Codes `(B, h, w, L)` -> tokens `(B, T)` int32 (numpy in, numpy out; jax in, jax out).

    >>> o = Ordering("codebook_major", (1, 2), 2)
    >>> o.to_sequence(np.array([[[[0, 1], [2, 3]]]])).tolist()
    [[0, 2, 1, 3]]
    """
    xp = np if isinstance(codes, np.ndarray) else jnp
    flat = xp.reshape(codes, (codes.shape[0], -1)).astype(xp.int32)
    return flat[:, self.flat_index]

  def from_sequence(self, tokens):
    """Tokens `(B, T)` -> codes `(B, h, w, L)` int32, the inverse of `to_sequence`.

    >>> o = Ordering("codebook_major", (1, 2), 2)
    >>> o.from_sequence(np.array([[0, 2, 1, 3]]))[0].tolist()
    [[[0, 1], [2, 3]]]
    """
    xp = np if isinstance(tokens, np.ndarray) else jnp
    inverse = np.argsort(self.flat_index)
    flat = tokens[:, inverse].astype(xp.int32)
    return xp.reshape(flat, (tokens.shape[0], *self.grid, self.num_codebooks))
