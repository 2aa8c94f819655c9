import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from terafeat.learning.pooling import subspace_pooling
from terafeat.learning.rica import (RICA, data_basis, distinct_filters, normalize_rows,
                                    sampled_filters, unit_norm_gradient)
from terafeat.learning.rica_objective import (RicaLoss, rica_loss_grad, rica_loss_grad_reference,
                                              sparsity_terms)


def _numerical_gradient(f, x, h=1e-6):
    grad = np.zeros_like(x)
    for i in range(x.size):
        step = np.zeros_like(x)
        step.flat[i] = h
        grad.flat[i] = (f(x + step) - f(x - step)) / (2 * h)
    return grad


@pytest.mark.parametrize("pooled", [False, True])
def test_gradient_matches_finite_differences_float64(pooled):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 6))
    W = rng.standard_normal((12, 6)) * 0.5
    pool = subspace_pooling(12, 3, np.float64) if pooled else None
    value, grad = rica_loss_grad(W, X, lam=2.0, eps=1e-2, pool=pool)
    numerical = _numerical_gradient(lambda w: rica_loss_grad(w, X, 2.0, 1e-2, pool)[0], W)
    assert np.linalg.norm(grad - numerical) / np.linalg.norm(numerical) < 1e-6


def test_unit_norm_reparametrisation_gradient_matches_finite_differences():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((200, 5))
    V = rng.standard_normal((7, 5))

    def objective(v):
        return rica_loss_grad(normalize_rows(v)[0], X, 3.0, 1e-2)[0]

    W, norms = normalize_rows(V)
    grad = unit_norm_gradient(rica_loss_grad(W, X, 3.0, 1e-2)[1], W, norms)
    numerical = _numerical_gradient(objective, V)
    assert np.linalg.norm(grad - numerical) / np.linalg.norm(numerical) < 1e-6


@pytest.mark.parametrize("pooled", [False, True])
def test_fused_objective_equals_plain_transcription(pooled):
    rng = np.random.default_rng(2)
    X = rng.standard_normal((5000, 16))
    W = rng.standard_normal((40, 16)) / 4
    pool = subspace_pooling(40, 4, np.float64) if pooled else None
    value, grad = RicaLoss(X, 40, 5.0, 1e-2, pool, block_rows=700)(W)  # several blocks, a short last one
    ref_value, ref_grad = rica_loss_grad_reference(W, X, 5.0, 1e-2, pool)
    assert value == pytest.approx(ref_value, rel=1e-12)
    np.testing.assert_allclose(grad, ref_grad, rtol=1e-9, atol=1e-9 * np.abs(ref_grad).max())


def test_float32_objective_is_float32_and_close_to_float64():
    rng = np.random.default_rng(3)
    X = rng.standard_normal((4000, 16))
    W = rng.standard_normal((32, 16)) / 4
    value64, grad64 = rica_loss_grad(W, X, 1.0, 1e-2)
    value32, grad32 = rica_loss_grad(W.astype(np.float32), X.astype(np.float32), 1.0, 1e-2)
    assert grad32.dtype == np.float32
    assert value32 == pytest.approx(value64, rel=1e-4)
    np.testing.assert_allclose(grad32, grad64, rtol=0, atol=1e-4 * np.abs(grad64).max())


def test_sparsity_terms_add_up_over_shards():
    rng = np.random.default_rng(4)
    X = rng.standard_normal((1000, 8))
    W = rng.standard_normal((16, 8))
    whole = sparsity_terms(W, X, 1e-2)
    parts = [sparsity_terms(W, shard, 1e-2) for shard in np.array_split(X, 3)]
    assert sum(p[0] for p in parts) == pytest.approx(whole[0], rel=1e-12)
    np.testing.assert_allclose(sum(p[1] for p in parts), whole[1], rtol=1e-10)


def _amari_index(P):
    P = np.abs(P)
    d = P.shape[0]
    rows = (P / P.max(axis=1, keepdims=True)).sum() - d
    cols = (P / P.max(axis=0, keepdims=True)).sum() - d
    return (rows + cols) / (2 * d * (d - 1))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_complete_rica_recovers_laplacian_sources(dtype):
    rng = np.random.default_rng(5)
    d = 8
    sources = rng.laplace(size=(20000, d))
    mixing = rng.standard_normal((d, d))
    mixed = sources @ mixing.T
    mixed -= mixed.mean(axis=0)
    eigenvalues, eigenvectors = np.linalg.eigh(np.cov(mixed.T))
    whitening = eigenvectors @ np.diag(eigenvalues ** -0.5) @ eigenvectors.T
    layer = RICA(n_features=d, lam=10.0, max_iter=300, dtype=dtype, random_state=0)
    layer.fit(mixed @ whitening)
    assert layer.W_.dtype == dtype
    # the product unmixing x mixing is a scaled permutation: Amari index near 0
    assert _amari_index(layer.W_.astype(np.float64) @ whitening @ mixing) < 0.05
    # the random start is not already a solution
    start = layer.initial_weights(d)
    assert _amari_index(start @ whitening @ mixing) > 0.2
    assert layer.objective_[-1] < layer.objective_[0]


def test_distinct_filters_counts_near_copies_once_whatever_their_sign():
    rng = np.random.default_rng(3)
    basis = np.linalg.qr(rng.standard_normal((6, 6)))[0]
    assert distinct_filters(basis) == 6
    copies = np.vstack([basis, -2 * basis, basis + 1e-3 * rng.standard_normal((6, 6))])
    assert distinct_filters(copies) == 6
    tilted = normalize_rows(basis[:1] + 0.5 * basis[1:2])[0]  # |cos| 0.89 with basis[0]
    assert distinct_filters(np.vstack([basis, tilted])) == 7
    assert distinct_filters(np.vstack([basis, tilted]), threshold=0.85) == 6


def test_overcomplete_rica_on_a_complete_ica_model_ends_with_copies_of_the_sources():
    """The reconstruction term is met by any tight frame, copies included: 8x
    overcomplete RICA on 8 Laplacian sources spreads its 64 filters early on, then
    puts them all on the 8 sparse directions (why long fits lose features)."""
    rng = np.random.default_rng(5)
    d = 8
    mixed = rng.laplace(size=(20000, d)) @ rng.standard_normal((d, d)).T
    mixed -= mixed.mean(axis=0)
    eigenvalues, eigenvectors = np.linalg.eigh(np.cov(mixed.T))
    whitened = mixed @ eigenvectors @ np.diag(eigenvalues ** -0.5) @ eigenvectors.T
    early = RICA(n_features=64, lam=10.0, max_iter=20, random_state=0).fit(whitened).W_
    late = RICA(n_features=64, lam=10.0, max_iter=300, random_state=0).fit(whitened).W_
    assert distinct_filters(early) > 40
    assert distinct_filters(late) <= 10


def test_float32_fit_of_a_large_near_constant_objective_runs_its_iterations():
    """32x overcomplete with lam 30, J is ~2e5 of nearly constant reconstruction term;
    float32 rounding of it used to stop L-BFGS after 5 iterations ("relative reduction")."""
    rng = np.random.default_rng(5)
    X = rng.laplace(size=(5000, 8)) / np.sqrt(2)
    fits = {dtype: RICA(n_features=256, lam=30.0, max_iter=30, dtype=dtype, random_state=0).fit(X)
            for dtype in (np.float32, np.float64)}
    assert fits[np.float32].n_iter_ == 30
    gained = {dtype: fit.objective_[0] - fit.objective_[-1] for dtype, fit in fits.items()}
    assert gained[np.float32] == pytest.approx(gained[np.float64], rel=1e-2)


def test_same_seed_same_weights_bit_for_bit():
    rng = np.random.default_rng(6)
    X = rng.standard_normal((3000, 12)).astype(np.float32)
    first = RICA(n_features=24, max_iter=30, random_state=7).fit(X).W_
    second = RICA(n_features=24, max_iter=30, random_state=7).fit(X).W_
    other = RICA(n_features=24, max_iter=30, random_state=8).fit(X).W_
    assert np.array_equal(first, second)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("pooled", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_objective_is_the_same_bits_for_any_number_of_threads(pooled, dtype):
    rng = np.random.default_rng(11)
    X = rng.standard_normal((1000, 16)).astype(dtype)
    W = rng.standard_normal((32, 16))
    pool = subspace_pooling(32, 2) if pooled else None
    results = [RicaLoss(X, 32, 0.5, 1e-2, pool, block_rows=64, n_threads=n)(W) for n in (1, 2, 3, 7)]
    for value, grad in results[1:]:
        assert value == results[0][0]
        assert np.array_equal(grad, results[0][1])


def test_fit_is_the_same_bits_whatever_blas_threads_are_in_force():
    """A multi-threaded BLAS rounds a product differently per thread count; the fit must not."""
    rng = np.random.default_rng(12)
    X = rng.standard_normal((20000, 64)).astype(np.float32)
    fits = []
    for threads in (1, 2):
        with threadpool_limits(threads, "blas"):
            fits.append(RICA(n_features=256, max_iter=15, random_state=3).fit(X).W_)
    assert np.array_equal(fits[0], fits[1])


def test_sampled_filters_are_distinct_seeded_unit_rows_of_the_data():
    rng = np.random.default_rng(11)
    X = rng.standard_normal((200, 5)).astype(np.float32)
    X[:150] = 0  # flat rows are never drawn
    W = sampled_filters(X, 40, random_state=3)
    assert W.shape == (40, 5) and W.dtype == np.float64
    np.testing.assert_allclose(np.linalg.norm(W, axis=1), 1.0)
    drawn = {int(np.flatnonzero(np.all(np.isclose(X / np.maximum(np.linalg.norm(
        X, axis=1, keepdims=True), 1e-30), row, atol=1e-6), axis=1))[0]) for row in W}
    assert len(drawn) == 40 and min(drawn) >= 150
    np.testing.assert_array_equal(W, sampled_filters(X, 40, random_state=3))
    assert not np.array_equal(W, sampled_filters(X, 40, random_state=4))
    with pytest.raises(ValueError, match="cannot draw 51 starting filters from 50"):
        sampled_filters(X, 51)


def test_given_starting_filters_are_where_the_fit_starts():
    rng = np.random.default_rng(12)
    X = rng.laplace(size=(2000, 6))
    start = sampled_filters(X, 18, random_state=0)
    layer = RICA(n_features=18, lam=30, max_iter=1, dtype=np.float64, init=start * 3)
    np.testing.assert_allclose(layer.initial_weights(6), start)
    loss = RicaLoss(X, 18, 30, 1e-2)
    assert layer.fit(X).objective_[0] == pytest.approx(loss(start)[0])
    assert not np.allclose(layer.W_, start)  # one iteration moved it
    with pytest.raises(ValueError, match=r"shape \(18, 5\), expected \(18, 6\)"):
        RICA(n_features=18, init=start[:, :5]).fit(X)
    with pytest.raises(ValueError, match="no all-zero row"):
        RICA(n_features=18, init=np.vstack([start[:-1], np.zeros(6)])).fit(X)
    with pytest.raises(ValueError, match="init must be 'random'"):
        RICA(n_features=18, init="patches").fit(X)


def test_overcomplete_rows_are_unit_norm_and_in_the_data_span():
    rng = np.random.default_rng(7)
    X = rng.standard_normal((3000, 10))
    X -= X.mean(axis=1, keepdims=True)  # the DC direction carries no variance
    layer = RICA(n_features=30, max_iter=40, dtype=np.float64, random_state=0).fit(X)
    np.testing.assert_allclose(np.linalg.norm(layer.W_, axis=1), 1.0, rtol=1e-10)
    np.testing.assert_allclose(layer.W_.sum(axis=1), 0.0, atol=1e-10)
    assert data_basis(X.T @ X / len(X)).shape == (10, 9)
    assert data_basis(np.eye(4)) is None


def test_transform_simple_and_pooled_units():
    rng = np.random.default_rng(8)
    X = rng.standard_normal((500, 6)).astype(np.float32)
    pool = subspace_pooling(12, 3)
    layer = RICA(n_features=12, max_iter=5, random_state=0, pool=pool).fit(X)
    simple = layer.transform(X)
    pooled = layer.transform(X, pool=pool)
    assert simple.shape == (500, 12) and pooled.shape == (500, 4)
    expected = np.sqrt(layer.eps + (simple ** 2).reshape(500, 4, 3).sum(axis=2))
    np.testing.assert_allclose(pooled, expected, rtol=1e-5)


def test_bad_input_is_a_clear_error():
    X = np.ones((100, 4))
    X[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        RICA(n_features=4).fit(X)
    with pytest.raises(ValueError, match="2-D"):
        RICA(n_features=4).fit(np.ones(10))
    with pytest.raises(ValueError, match="dtype"):
        RICA(n_features=4, dtype=np.int32).fit(np.ones((10, 4)))
    with pytest.raises(ValueError, match="not fitted"):
        RICA(n_features=4).transform(np.ones((3, 4)))


@pytest.mark.parametrize("shape, problem", [((10, 0), "X has 0 feature"), ((0, 16), "X has no rows")])
def test_empty_data_is_a_clear_error(shape, problem):
    with pytest.raises(ValueError, match=problem):
        RICA(n_features=4).fit(np.zeros(shape))


@pytest.mark.parametrize("dtype, scale, remedy", [
    (np.float32, 1e30, "overflows float32 .*: rescale the data or use dtype=float64$"),
    (np.float64, 1e160, "overflows float64 .*: rescale the data$")])
def test_data_too_large_for_the_dtype_are_refused_before_training(dtype, scale, remedy):
    X = np.random.default_rng(0).standard_normal((200, 16)).astype(dtype) * dtype(scale)
    calls = []
    with pytest.raises(ValueError, match="^X's mean squared row norm .*" + remedy):
        RICA(n_features=8, max_iter=3, dtype=dtype,
             callback=lambda *args: calls.append(args)).fit(X)
    assert calls == []


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_non_finite_objective_stops_training_with_a_clear_error():
    rng = np.random.default_rng(9)
    X = rng.standard_normal((400, 4)).astype(np.float32)
    X[0] *= 1e20  # finite, and so is the mean second moment, but this row's Z^2 overflows
    with pytest.raises(FloatingPointError, match="non-finite"):
        RICA(n_features=8, max_iter=10, random_state=0).fit(X)
