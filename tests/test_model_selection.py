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


def test_histology_classifier_extends_a_C_grid_whose_top_it_chose():
    from terafeat.classification.protocols import chosen_C, fit_linear_classifier, linear_classifier
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 200)
    features = rng.normal(0, 1, (200, 5))
    features[:, 0] += 2 * labels - 1
    Cs = (1e-5, 1e-4, 1e-3)  # too strong a penalty throughout: the top of the grid is chosen
    fixed, plain = fit_linear_classifier(features, labels, 3, Cs, 0, grid_extension=0)
    assert chosen_C(fixed) == 1e-3 and plain["at_edge"] == "top" and plain["added"] == []
    assert plain["converged"]
    assert [p["cv_score"] for p in plain["path"]] == pytest.approx(list(
        linear_classifier(3, Cs, 0).fit(features, labels).cv_results_["mean_test_score"]))
    model, extended = fit_linear_classifier(features, labels, 3, Cs, 0, grid_extension=3)
    scores = {point["C"]: point["cv_score"] for point in extended["path"]}
    assert extended["added"] == pytest.approx([1e-2, 1e-1])  # 0.1 scored lower than 0.01
    assert scores[extended["added"][0]] > scores[1e-3] and extended["at_edge"] is None
    assert chosen_C(model) == pytest.approx(1e-2)
    assert model.best_estimator_[-1].C == pytest.approx(1e-2)  # refitted with it
    assert (model.predict(features) == labels).mean() > (fixed.predict(features) == labels).mean()


def test_histology_classifier_says_when_its_final_fit_hit_the_iteration_limit(monkeypatch):
    from sklearn.linear_model import LogisticRegression

    from terafeat.classification import protocols

    class TwoIterations(LogisticRegression):  # the solver's limit, lowered
        def __init__(self, C=1.0, max_iter=2, class_weight=None):
            super().__init__(C=C, max_iter=2, class_weight=class_weight)

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 120)
    features = rng.normal(0, 1, (120, 30)) + labels[:, None]
    assert protocols.fit_linear_classifier(features, labels, 2, (1.0,))[1]["converged"]
    monkeypatch.setattr(protocols, "LogisticRegression", TwoIterations)
    with pytest.warns(Warning):  # scikit-learn's ConvergenceWarning, and our result says so
        assert not protocols.fit_linear_classifier(features, labels, 2, (1.0,))[1]["converged"]
