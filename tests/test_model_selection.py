"""Regulariser grids extended past the end where the held-out choice sits."""
import numpy as np
import pytest

from terafeat.classification.model_selection import edge_of, extend_at_edge, step_beyond


def test_step_beyond_walks_the_grid_then_its_end_ratio():
    grid = (0.01, 0.1, 0.3)
    assert step_beyond(grid, 0.1, 1) == 0.3 and step_beyond(grid, 0.1, -1) == 0.01
    assert step_beyond(grid, 0.3, 1) == pytest.approx(0.9)  # the top pair's ratio, 3
    assert step_beyond(grid, 0.01, -1) == pytest.approx(0.001)  # the bottom pair's, 10
    assert step_beyond((0.0, 1.0), 0.0, -1) is None and step_beyond((2.0,), 2.0, 1) is None


def test_extension_follows_a_peak_past_the_top_and_stops_after_it():
    peak = 10 ** 1.2

    def evaluate(value, _kept):
        return {"g": value, "score": -np.log10(value / peak) ** 2}

    def best(points):
        return max(points, key=lambda point: point["score"])

    points = [evaluate(g, None) for g in (0.01, 0.1, 1.0)]
    result = extend_at_edge(points, evaluate, best, (0.01, 0.1, 1.0), 5, "g", "score")
    # 10 scores higher than 1, 100 lower than 10: the kept point is inside again
    assert result["added"] == pytest.approx([10.0, 100.0]) and result["at_edge"] is None
    assert best(points)["g"] == pytest.approx(10.0)
    points = [evaluate(g, None) for g in (0.01, 0.1, 1.0)]
    capped = extend_at_edge(points, evaluate, best, (0.01, 0.1, 1.0), 1, "g", "score")
    assert capped == {"added": [pytest.approx(10.0)], "at_edge": "top"}
    inside = [evaluate(g, None) for g in (1.0, 10.0, 100.0)]
    assert extend_at_edge(inside, evaluate, best, (1.0, 10.0, 100.0), 5, "g", "score") == {
        "added": [], "at_edge": None}
    assert edge_of([{"g": 1.0}], {"g": 1.0}, "g") is None
