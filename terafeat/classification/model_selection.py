"""Regulariser grids extended past an end where the held-out choice sits at it.

A path is a list of points (dicts), each with a regulariser value and a held-out score;
the caller's ``best`` picks the kept point (its own tie rule).  Where the kept point has
the largest (smallest) value tried, the optimum may lie beyond the grid: the path gains
the next value past that end, while each new point scores strictly higher, for at most
``max_steps`` new points.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence


def step_beyond(grid: Sequence[float], value: float, direction: int) -> float | None:
    """The next regulariser past ``value`` upwards (direction +1) or downwards (-1): the
    nearest value of ``grid`` beyond it, else ``value`` times (divided by) the ratio of
    the grid's two values at that end.  None where there is none: fewer than two distinct
    values, or a zero at that end."""
    values = sorted({float(v) for v in grid})
    beyond = [v for v in values if (v - value) * direction > 0]
    if beyond:
        return beyond[0] if direction > 0 else beyond[-1]
    end = values[-2:] if direction > 0 else values[:2]
    if len(end) < 2 or end[0] <= 0 or value <= 0:
        return None
    ratio = end[1] / end[0]
    # rounded to 12 digits: 3e-4, not 3.0000000000000003e-4
    return float(f"{value * ratio if direction > 0 else value / ratio:.12g}")


def edge_of(points: Sequence[dict], chosen: dict, key: str) -> str | None:
    """"top" or "bottom" where ``chosen`` has the largest or smallest ``key`` of more than
    one distinct value in ``points``, else None (inside the path, or a single value)."""
    values = {point[key] for point in points}
    if len(values) < 2:
        return None
    if chosen[key] == max(values):
        return "top"
    return "bottom" if chosen[key] == min(values) else None


def extend_at_edge(points: list[dict], evaluate: Callable[[float, dict], dict],
                   best: Callable[[list[dict]], dict], grid: Sequence[float], max_steps: int,
                   key: str, score: str, directions: Sequence[int] = (-1, 1)) -> dict:
    """Append to ``points`` (in place) up to ``max_steps`` new points past the end where
    ``best(points)`` sits, each ``evaluate(value, the kept point so far)``, stopping in a
    direction at the first that does not score strictly higher than the kept one;
    ``directions``: the ends looked at, in order (-1: the smallest value's).

    ``key``: the points' regulariser field; ``score``: their held-out score; ``grid``: the
    values :func:`step_beyond` steps along.  Returns {"added": [values], "at_edge": "top",
    "bottom" or None: where the kept point still sits after the extension}.
    """
    added = []
    for direction in directions:
        while len(added) < max_steps:
            chosen = best(points)
            values = [point[key] for point in points]
            if chosen[key] != (max(values) if direction > 0 else min(values)):
                break
            value = step_beyond(grid, chosen[key], direction)
            if value is None:
                break
            point = evaluate(value, chosen)
            points.append(point)
            added.append(value)
            if point[score] <= chosen[score]:
                break
    return {"added": added, "at_edge": edge_of(points, best(points), key)}
