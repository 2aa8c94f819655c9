"""The pooled network: stage gradients by finite differences, fitting, saving."""
import numpy as np
import pytest
from scipy.optimize import check_grad

from terafeat.analysis.optimal_stimulus import optimal_stimulus
from terafeat.learning.pooled_network import (
    ContrastNorm,
    PooledNetwork,
    PooledStage,
    WhitenStage,
    fit_pooled_network,
)
from terafeat.learning.whitening import Whitener

TINY = [dict(n_components=20, n_features=16, group_size=2, lam=10.0, eps=1e-2,
             whitening_eps=1e-2, max_iter=15),
        dict(n_components=None, n_features=8, group_size=2, lam=10.0, eps=1e-2,
             whitening_eps=1e-2, max_iter=15)]


def frames(n=400, size=8, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.random((n, size, size))
    return (base + np.roll(base, 1, axis=2)) / 2  # some correlation between neighbours


@pytest.mark.parametrize("stage", [
    ContrastNorm(0.1),
    WhitenStage(Whitener(method="pca", n_components=10, eps=1e-2, dtype=np.float64).fit(
        frames(200).reshape(200, -1))),
    PooledStage(np.random.default_rng(1).standard_normal((6, 64)),
                np.kron(np.eye(3), np.ones((1, 2))), 1e-2),
])
def test_stage_backward_matches_finite_differences(stage):
    rng = np.random.default_rng(2)
    x = rng.random(64)
    out = stage.forward(x[None])[0]
    weights = rng.standard_normal(out.shape[1])

    def value(x):
        return float(stage.forward(x[None])[0][0] @ weights)

    def gradient(x):
        Y, cache = stage.forward(x[None])
        return stage.backward(cache, weights[None].copy())[0]

    assert check_grad(value, gradient, x, epsilon=1e-6) < 1e-5 * max(1.0, np.linalg.norm(gradient(x)))


@pytest.fixture(scope="module")
def network():
    return fit_pooled_network(frames(), TINY, random_state=0)


def test_fit_gives_seeded_two_layer_network_whose_unit_gradient_is_right(network, tmp_path):
    outputs = network.transform(frames(50, seed=3))
    assert outputs.shape == (50, 4) and outputs.dtype == np.float32
    assert [type(s).__name__ for s in network.stages] == [
        "ContrastNorm", "WhitenStage", "PooledStage", "ContrastNorm", "WhitenStage", "PooledStage"]
    assert all(len(o) == 16 for o in network.objectives_)
    again = fit_pooled_network(frames(), TINY, random_state=0)
    np.testing.assert_array_equal(again.transform(frames(50, seed=3)), outputs)
    response, gradient = network.unit_response(1)
    x = frames(1, seed=4).ravel()
    assert response(x) == pytest.approx(float(network.transform(x[None])[0, 1]), rel=1e-5)
    assert check_grad(response, gradient, x, epsilon=1e-6) < 1e-4 * np.linalg.norm(gradient(x))
    stimulus = optimal_stimulus(response, gradient, (8, 8), n_starts=2, max_iter=100)
    assert np.linalg.norm(stimulus) == pytest.approx(1.0)
    # the optimum beats every unit-norm frame of a random sample
    sample = frames(200, seed=5).reshape(200, -1)
    sample /= np.linalg.norm(sample, axis=1, keepdims=True)
    assert response(stimulus.ravel()) >= max(response(s) for s in sample)
    from terafeat.atomic_files import save_arrays
    path = save_arrays(tmp_path / "network.npz", network.to_arrays())
    with np.load(path) as arrays:
        loaded = PooledNetwork.from_arrays(arrays)
    np.testing.assert_array_equal(loaded.transform(frames(50, seed=3)), outputs)


def test_bad_frames_are_refused(network):
    with pytest.raises(ValueError, match="frames"):
        fit_pooled_network(np.zeros((10, 64)), TINY)
    with pytest.raises(ValueError, match="not \\(8, 8\\) frames"):
        network.transform(np.zeros((3, 7, 7)))
