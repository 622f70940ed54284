"""The lower convex hull of rate-distortion points: the best trade-offs a quantizer reaches."""

from collections.abc import Sequence


def lower_convex_hull(xs: Sequence[float], ys: Sequence[float]) -> list[int]:
  """Indices of the points on the lower convex hull, by increasing x (Andrew's monotone chain).

  A point is kept when no mixture of two others (time-sharing between two codes) reaches a lower
  y at its x.

  >>> lower_convex_hull([0.0, 1.0, 2.0, 3.0], [3.0, 2.5, 0.5, 0.4])
  [0, 2, 3]
  """
  order = sorted(range(len(xs)), key=lambda i: (xs[i], ys[i]))
  hull: list[int] = []
  for i in order:
    if hull and xs[hull[-1]] == xs[i]:
      continue  # same x, larger y: never on the lower hull
    while len(hull) >= 2:
      a, b = hull[-2], hull[-1]
      cross = (xs[b] - xs[a]) * (ys[i] - ys[a]) - (ys[b] - ys[a]) * (xs[i] - xs[a])
      if cross > 0:
        break
      hull.pop()
    hull.append(i)
  return hull
