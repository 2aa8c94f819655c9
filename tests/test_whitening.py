import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from terafeat.learning.whitening import Whitener, remove_dc


@pytest.fixture
def correlated():
    rng = np.random.default_rng(0)
    return rng.standard_normal((20000, 12)) @ rng.standard_normal((12, 12)) + 3.0


@pytest.mark.parametrize("method", ["pca", "zca"])
def test_whitened_data_have_identity_covariance(correlated, method):
    whitener = Whitener(method=method, eps=0.0, remove_dc=False, dtype=np.float64).fit(correlated)
    white = whitener.transform(correlated)
    np.testing.assert_allclose(white.mean(axis=0), 0.0, atol=1e-10)
    np.testing.assert_allclose(np.cov(white.T, bias=True), np.eye(12), atol=1e-8)
    np.testing.assert_allclose(whitener.inverse_transform(white), correlated, atol=1e-8)


def test_zca_stays_closest_to_the_input_and_is_symmetric(correlated):
    zca = Whitener(method="zca", eps=0.0, remove_dc=False, dtype=np.float64).fit(correlated)
    pca = Whitener(method="pca", eps=0.0, remove_dc=False, dtype=np.float64).fit(correlated)
    np.testing.assert_allclose(zca.whitening_, zca.whitening_.T, atol=1e-10)
    centred = correlated - correlated.mean(axis=0)
    assert (np.linalg.norm(zca.transform(correlated) - centred)
            < np.linalg.norm(pca.transform(correlated) - centred))


def test_pca_dimension_reduction_keeps_the_largest_variances(correlated):
    whitener = Whitener(method="pca", n_components=5, eps=0.0, remove_dc=False).fit(correlated)
    white = whitener.transform(correlated)
    assert white.shape == (20000, 5) and white.dtype == np.float32
    np.testing.assert_allclose(np.cov(white.T, bias=True), np.eye(5), atol=1e-4)
    full = np.linalg.eigvalsh(np.cov(correlated.T, bias=True))[::-1]
    np.testing.assert_allclose(whitener.explained_variance_, full[:5], rtol=1e-4)


def test_eps_damps_small_components(correlated):
    whitener = Whitener(method="pca", eps=1.0, remove_dc=False, dtype=np.float64).fit(correlated)
    variances = np.var(whitener.transform(correlated), axis=0)
    expected = whitener.explained_variance_ / (whitener.explained_variance_ + 1.0)
    np.testing.assert_allclose(variances, expected, rtol=1e-6)


def test_remove_dc_takes_out_each_rows_mean(correlated):
    np.testing.assert_allclose(remove_dc(correlated).mean(axis=1), 0.0, atol=1e-12)
    whitener = Whitener(method="zca", eps=1e-3).fit(correlated)
    shifted = correlated + 100.0 * np.arange(len(correlated))[:, None]  # brightness per row
    np.testing.assert_allclose(whitener.transform(shifted), whitener.transform(correlated), atol=1e-3)


def test_round_trip_through_arrays(correlated):
    whitener = Whitener(method="pca", n_components=4, eps=1e-2).fit(correlated)
    restored = Whitener.from_arrays(whitener.to_arrays())
    np.testing.assert_array_equal(restored.transform(correlated), whitener.transform(correlated))
    assert restored.method == "pca" and restored.n_components == 4


def test_bad_input_and_parameters():
    with pytest.raises(ValueError, match="method"):
        Whitener(method="ica").fit(np.ones((10, 3)))
    with pytest.raises(ValueError, match="n_components"):
        Whitener(n_components=9).fit(np.random.default_rng(0).standard_normal((50, 3)))
    with pytest.raises(ValueError, match="NaN"):
        Whitener().fit(np.array([[1.0, np.nan], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="zero variance"):
        Whitener(eps=0.0).fit(np.random.default_rng(0).standard_normal((50, 3)))  # DC removed
    with pytest.raises(ValueError, match="not fitted"):
        Whitener().transform(np.ones((2, 3)))


@pytest.mark.parametrize("shape, problem", [((10, 0), "X has 0 feature"), ((0, 16), "X has no rows")])
def test_empty_data_is_a_clear_error(shape, problem):
    with pytest.raises(ValueError, match=problem):
        Whitener().fit(np.zeros(shape))


@pytest.mark.parametrize("dtype, scale, remedy", [
    (np.float32, 1e30, "overflows float32 .*: rescale the data or use dtype=float64$"),
    (np.float64, 1e160, "overflows float64 .*: rescale the data$")])
def test_variances_too_large_for_the_dtype_are_refused(correlated, dtype, scale, remedy):
    with pytest.raises(ValueError, match="^X's mean squared row norm .*" + remedy):
        Whitener(dtype=dtype).fit(correlated * scale)


def test_float64_holds_the_variances_of_data_too_large_for_float32(correlated):
    whitener = Whitener(dtype=np.float64).fit((correlated * 1e30).astype(np.float32))
    assert np.isfinite(whitener.explained_variance_).all()

def test_variance_fraction_picks_the_components_that_keep_it():
    rng = np.random.default_rng(5)
    scales = np.array([10.0, 5.0, 1.0, 0.1, 0.01])
    X = rng.normal(size=(20000, 5)) * scales
    total = np.sum(scales ** 2)
    for fraction, expected in ((0.5, 1), (0.99, 2), (0.9999, 3), (0.99995, 4)):
        whitener = Whitener(method="pca", n_components=fraction, remove_dc=False, eps=0).fit(X)
        assert whitener.components_.shape[0] == expected, fraction
        assert np.sum(scales[:expected] ** 2) / total >= fraction - 1e-3
    with pytest.raises(ValueError, match="variance fraction"):
        Whitener(method="pca", n_components=1.5).fit(X)


@pytest.mark.parametrize("method", ["pca", "zca"])
def test_whitening_is_the_same_bits_whatever_blas_threads_are_in_force(method):
    """A multi-threaded BLAS rounds a product differently per thread count; whitening must not."""
    X = np.random.default_rng(9).standard_normal((40000, 108)).astype(np.float32)
    outputs = []
    for threads in (1, 2):
        with threadpool_limits(threads, "blas"):
            whitener = Whitener(method=method, n_components=36, remove_dc=True).fit(X)
            outputs.append((whitener.whitening_, whitener.transform(X)))
    assert np.array_equal(outputs[0][0], outputs[1][0])
    assert np.array_equal(outputs[0][1], outputs[1][1])
