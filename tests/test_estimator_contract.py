"""The learners follow scikit-learn's estimator contract: clone, get/set_params, pipelines,
ConvergenceWarning at max_iter, random_state, and sklearn's own estimator checks.

All of ``check_estimator``'s checks apply to these transformers and pass, so no check is
listed as an expected failure (``check_array_api_input`` is skipped by scikit-learn itself
unless SCIPY_ARRAY_API is set).
"""
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks
from threadpoolctl import threadpool_limits

from terafeat.learning.autoencoder import SparseAutoencoder
from terafeat.learning.pooling import subspace_pooling
from terafeat.learning.rica import RICA
from terafeat.learning.stacked_isa import ISALayer
from terafeat.learning.tica import OrthonormalPooling
from terafeat.learning.whitening import Whitener


def small_estimators():
    """One of each learner, with hyper-parameters small enough for sklearn's checks."""
    return [
        RICA(n_features=4, max_iter=5, random_state=0),
        RICA(n_features=4, max_iter=5, dtype=np.float64, random_state=0,
             pool=subspace_pooling(4, 2, np.float64)),
        Whitener(eps=1e-2),
        Whitener(method="pca", eps=1e-2, dtype=np.float64),
        OrthonormalPooling(max_iter=5, random_state=0),
        SparseAutoencoder(n_hidden=3, max_iter=5, random_state=0),
        ISALayer(n_components=2, n_features=4, group_size=2, max_iter=5, random_state=0),
    ]


@pytest.fixture
def X():
    rng = np.random.default_rng(0)
    return rng.standard_normal((200, 8)) @ rng.standard_normal((8, 8))


def same_params(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(
        np.array_equal(a[key], b[key]) if isinstance(a[key], np.ndarray) else a[key] == b[key]
        for key in a)


def expected_failures(estimator) -> dict[str, str]:
    """The checks that cannot hold, and why."""
    if type(estimator).__name__ == "ISALayer":
        return {"check_methods_sample_order_invariance":
                "float32 GEMM kernels treat a block's last rows on a different path: a row's "
                "output can move by an ulp when its position changes (sklearn compares at 1e-7)"}
    return {}


@parametrize_with_checks(small_estimators(), expected_failed_checks=expected_failures)
def test_sklearn_estimator_checks(estimator, check):
    # One BLAS thread: some checks (sample-order invariance) compare outputs to 1e-7, and
    # multi-threaded BLAS splits a product's sums by the matrix's shape and position.
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("estimator", small_estimators(), ids=lambda e: type(e).__name__)
def test_clone_round_trip_gives_an_unfitted_copy_with_the_same_params(estimator, X):
    fitted = estimator.fit(X)
    copy = clone(fitted)
    assert same_params(copy.get_params(), fitted.get_params())
    with pytest.raises(NotFittedError):
        copy.transform(X)
    np.testing.assert_array_equal(copy.fit(X).transform(X), fitted.transform(X))


def test_get_and_set_params():
    rica = RICA(n_features=8, lam=10.0)
    assert rica.get_params()["lam"] == 10.0
    assert rica.set_params(lam=3.0, max_iter=7) is rica
    assert (rica.lam, rica.max_iter) == (3.0, 7)
    with pytest.raises(ValueError, match="Invalid parameter 'seed'"):
        rica.set_params(seed=0)
    pipeline = make_pipeline(Whitener(), RICA())
    pipeline.set_params(rica__n_features=12, whitener__method="pca")
    assert pipeline.get_params()["rica__n_features"] == 12
    assert pipeline.named_steps["whitener"].method == "pca"


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_pipeline_of_whitener_and_rica_equals_the_two_by_hand(X):
    pipeline = make_pipeline(Whitener(eps=1e-2), RICA(n_features=12, max_iter=20, random_state=0))
    features = pipeline.fit(X).transform(X)
    whitener = Whitener(eps=1e-2).fit(X)
    rica = RICA(n_features=12, max_iter=20, random_state=0).fit(whitener.transform(X))
    np.testing.assert_array_equal(features, rica.transform(whitener.transform(X)))
    np.testing.assert_array_equal(pipeline[-1].W_, rica.W_)
    np.testing.assert_array_equal(clone(pipeline).fit_transform(X), features)


@pytest.mark.parametrize("estimator", [
    RICA(n_features=8, max_iter=1, random_state=0),
    SparseAutoencoder(n_hidden=4, max_iter=1, random_state=0),
    OrthonormalPooling(max_iter=1, tol=0.0, random_state=0),
    ISALayer(n_components=4, n_features=4, group_size=2, max_iter=1, random_state=0),
], ids=lambda e: type(e).__name__)
def test_convergence_warning_when_max_iter_ends_the_fit(estimator, X):
    with pytest.warns(ConvergenceWarning, match="max_iter=1"):
        estimator.fit(X)


def test_no_convergence_warning_when_the_tolerance_is_met(X):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        model = OrthonormalPooling(max_iter=50, tol=0.5, random_state=0).fit(X)
    assert model.n_iter_ < 50


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_random_state_int_generator_and_random_state(X):
    def W(random_state):
        return RICA(n_features=8, max_iter=3, random_state=random_state).fit(X).W_

    np.testing.assert_array_equal(W(3), W(np.random.default_rng(3)))  # int: default_rng(int)
    assert not np.array_equal(W(3), W(4))
    np.testing.assert_array_equal(W(np.random.RandomState(5)), W(np.random.RandomState(5)))
    with pytest.raises(ValueError, match="'random_state' parameter of RICA"):
        W("seed")


@pytest.mark.parametrize("estimator, name", [
    (RICA(n_features=0), "n_features"), (RICA(lam=-1.0), "lam"),
    (Whitener(method="ica"), "method"), (SparseAutoencoder(rho=1.5), "rho"),
    (OrthonormalPooling(tol=-1.0), "tol"), (ISALayer(group_size=0), "group_size"),
], ids=lambda value: value if isinstance(value, str) else type(value).__name__)
def test_invalid_hyper_parameters_are_refused_in_fit_in_one_line_naming_them(estimator, name, X):
    with pytest.raises(ValueError, match=f"'{name}' parameter of {type(estimator).__name__}") \
            as error:
        estimator.fit(X)
    assert "\n" not in str(error.value)
