"""Orthonormal ISA/TICA and the sparse autoencoder: gradients, constraints, seeds."""
import numpy as np
import pytest
from scipy.optimize import check_grad

from terafeat.learning.autoencoder import SparseAutoencoder, autoencoder_loss_grad
from terafeat.learning.pooling import subspace_pooling
from terafeat.learning.tica import OrthonormalPooling, symmetric_orthogonalize, topographic_pooling
from terafeat.learning.whitening import Whitener


def laplacian_mixture(m=3000, d=9, seed=0):
    rng = np.random.default_rng(seed)
    sources = rng.laplace(size=(m, d))
    mixing = rng.standard_normal((d, d))
    return Whitener(method="zca", eps=0, remove_dc=False,
                    dtype=np.float64).fit_transform(sources @ mixing.T)


def test_autoencoder_gradient_matches_finite_differences():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((30, 6))
    h = 4
    theta = rng.standard_normal(2 * h * 6 + h + 6) * 0.3
    error = check_grad(lambda t: autoencoder_loss_grad(t, X, h, 1e-3, 3.0, 0.1)[0],
                       lambda t: autoencoder_loss_grad(t, X, h, 1e-3, 3.0, 0.1)[1], theta,
                       epsilon=1e-6)
    assert error < 1e-5 * np.linalg.norm(autoencoder_loss_grad(theta, X, h, 1e-3, 3.0, 0.1)[1])


def test_autoencoder_trains_seeded_and_reconstructs_better_than_at_start():
    X = laplacian_mixture(500, 9)
    model = SparseAutoencoder(n_hidden=12, max_iter=60, random_state=0).fit(X)
    assert model.objective_[-1] < 0.5 * model.objective_[0]
    hidden = model.transform(X)
    assert hidden.shape == (500, 12) and 0 < hidden.min() and hidden.max() < 1
    again = SparseAutoencoder(n_hidden=12, max_iter=60, random_state=0).fit(X)
    np.testing.assert_array_equal(again.W1_, model.W1_)
    with pytest.raises(ValueError, match="rho"):
        SparseAutoencoder(rho=1.5).fit(X)


def test_pooling_matrices():
    pool = topographic_pooling(16, 3)
    assert pool.shape == (16, 16) and (pool.sum(axis=1) == 9).all() and (pool.sum(axis=0) == 9).all()
    assert pool[0, 15] == 1 and pool[0, 5] == 1 and pool[0, 10] == 0  # torus neighbours
    with pytest.raises(ValueError, match="square"):
        topographic_pooling(12)
    W = symmetric_orthogonalize(np.random.default_rng(2).standard_normal((4, 9)))
    np.testing.assert_allclose(W @ W.T, np.eye(4), atol=1e-12)


def test_orthonormal_ica_recovers_laplacian_sources_and_keeps_the_constraint():
    rng = np.random.default_rng(3)
    sources = rng.laplace(size=(4000, 6))
    mixing = rng.standard_normal((6, 6))
    whitener = Whitener(method="zca", eps=0, remove_dc=False,
                        dtype=np.float64).fit(sources @ mixing.T)
    X = whitener.transform(sources @ mixing.T)
    model = OrthonormalPooling(n_features=6, eps=1e-3, max_iter=200, dtype=np.float64,
                               random_state=0).fit(X)
    np.testing.assert_allclose(model.W_ @ model.W_.T, np.eye(6), atol=1e-8)
    assert np.all(np.diff(model.objective_) < 0)
    # each learned unit picks out one source: |correlation| close to 1 for its best match
    corr = np.abs(np.corrcoef(model.transform(X, pooled=False).T, sources.T)[:6, 6:])
    assert corr.max(axis=1).min() > 0.95


def test_isa_and_tica_train_pooled_units():
    X = laplacian_mixture(2000, 16)
    for pool in (subspace_pooling(16, 4, np.float64), topographic_pooling(16, 3, np.float64)):
        model = OrthonormalPooling(n_features=16, pool=pool, max_iter=40, dtype=np.float64,
                                   random_state=0).fit(X)
        np.testing.assert_allclose(model.W_ @ model.W_.T, np.eye(16), atol=1e-8)
        assert model.objective_[-1] < model.objective_[0]
        assert model.transform(X).shape == (2000, len(pool))
    with pytest.raises(ValueError, match="n_features"):
        OrthonormalPooling(n_features=17).fit(X)
