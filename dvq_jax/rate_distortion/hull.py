"""The lower convex hull of rate-distortion points: the best trade-offs a quantizer reaches."""

from collections.abc import Sequence


def lower_convex_hull(xs: Sequence[float], ys: Sequence[float]) -> list[int]:
  """Indices of the points on the lower convex hull, by increasing x: the operational
  rate-distortion frontier (Andrew's monotone chain, then cut where y stops decreasing).

  A point is kept when no mixture of two others (time-sharing between two codes) reaches a lower
  y at its x, and no point of lower x has a lower or equal y (spending more rate for a worse
  distortion is never on the frontier).

  >>> lower_convex_hull([0.0, 1.0, 2.0, 3.0], [3.0, 2.5, 0.5, 0.4])
  [0, 2, 3]
  >>> lower_convex_hull([0.0, 1.0, 2.0], [2.0, 1.0, 1.5])
  [0, 1]
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
  frontier = hull[:1]
  for i in hull[1:]:
    if ys[i] >= ys[frontier[-1]]:
      break  # convex: every later hull point is higher still
    frontier.append(i)
  return frontier
