"""Reconstruction ICA (Le, Karpenko, Ngiam, Ng; NIPS 2011): the estimator, its
L-BFGS on unit-norm filters, and helpers on filter banks.  The objective and its
gradient are in ``terafeat.learning.rica_objective``.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
from scipy.optimize import minimize
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from terafeat.blas import one_blas_thread
from terafeat.learning.pooling import l2_pool
from terafeat.learning.rica_objective import RicaLoss
from terafeat.validation import (
    RANDOM_STATE,
    check_array,
    check_dtype,
    check_fitted_input,
    check_random_state,
    check_second_moments,
)

__all__ = [
    "RICA",
    "data_basis",
    "minimize_rica",
    "span_weights",
    "span_gradient",
    "normalize_rows",
    "unit_norm_gradient",
    "distinct_filters",
]

def distinct_filters(W: np.ndarray, threshold: float = 0.95) -> int:
    """How many of the k filters W (k, d) are not near-copies of one another.

    Greedy: a filter counts unless an earlier counted one has |cosine| above
    ``threshold`` with it (sign is ignored: -w responds as w does under |.| or
    a split non-linearity).  Why it matters: with k much larger than d, the
    reconstruction term is met by any tight frame, copies included, so long
    L-BFGS runs drift towards a few hundred maximally sparse directions held
    by many filters each; this count shows how far a fit has gone.
    """
    unit = normalize_rows(np.asarray(W, np.float64))[0]
    similar = np.abs(unit @ unit.T) > threshold
    kept = np.zeros(len(unit), bool)
    for i in range(len(unit)):
        kept[i] = not (similar[i] & kept).any()
    return int(kept.sum())


def normalize_rows(V: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of V (k, d) scaled to unit L2 norm; returns (W, norms (k, 1))."""
    norms = np.sqrt(np.einsum("ij,ij->i", V, V))[:, None]
    return V / norms, norms


def sampled_filters(X: np.ndarray, n_features: int, random_state=None) -> np.ndarray:
    """``n_features`` distinct rows of X (m, d) drawn at random (seeded), scaled to unit
    norm: (n_features, d) float64, a data-driven start for RICA (as k-means starts
    from samples).  Rows of (near) zero norm are never drawn."""
    X = np.asarray(X)
    norms = np.sqrt(np.einsum("ij,ij->i", X, X, dtype=np.float64))
    usable = np.flatnonzero(norms > 1e-6 * max(float(norms.max(initial=0)), 1e-300))
    if len(usable) < n_features:
        raise ValueError(f"cannot draw {n_features} starting filters from {len(usable)} "
                         f"non-zero rows of {len(X)}")
    rows = np.sort(check_random_state(random_state).choice(usable, n_features, replace=False))
    return X[rows].astype(np.float64) / norms[rows, None]


def unit_norm_gradient(grad_W: np.ndarray, W: np.ndarray, norms: np.ndarray) -> np.ndarray:
    """Gradient w.r.t. V of J(V / ||V||_row), from dJ/dW (k, d), W (k, d), norms (k, 1)."""
    radial = np.einsum("ij,ij->i", grad_W, W)[:, None]
    return (grad_W - radial * W) / norms


def data_basis(C: np.ndarray, rtol: float = 1e-6) -> np.ndarray | None:
    """Orthonormal basis (d, r) of the directions in which the data vary.

    C: (d, d) second-moment matrix.  Directions with variance below ``rtol``
    times the largest are left out (e.g. the DC direction of patches whose
    mean was removed).  Returns None when all d directions are kept.

    Why: with unit-norm rows and k > d, the rows must carry more norm than a
    tight frame of the data's span needs; a null direction of the data soaks
    it up for free, and the filters show it as noise.  Constraining W to the
    data's span removes that degenerate outlet.
    """
    eigenvalues, eigenvectors = np.linalg.eigh(C.astype(np.float64))
    keep = eigenvalues > rtol * eigenvalues[-1]
    if keep.all():
        return None
    return eigenvectors[:, keep][:, ::-1].copy()


@dataclass
class LbfgsResult:
    """W (k, d) with unit-norm rows, the optimiser's final V (k, r), objective per
    iteration, iterations, scipy's message."""

    W: np.ndarray
    V: np.ndarray
    objective: np.ndarray
    n_iter: int
    message: str


def span_weights(V: np.ndarray, basis: np.ndarray | None, dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """W = normalize_rows(V) basis^T for V (k, r), basis (d, r) or None.

    Returns (V with unit rows (k, r), row norms (k, 1), W (k, d) in ``dtype``).
    """
    unit, norms = normalize_rows(V)
    W = unit if basis is None else unit @ basis.T
    return unit, norms, W.astype(dtype)


def span_gradient(grad_W: np.ndarray, unit: np.ndarray, norms: np.ndarray,
                  basis: np.ndarray | None) -> np.ndarray:
    """dJ/dV (k, r) float64 from dJ/dW (k, d), for W = span_weights(V, basis)."""
    grad = grad_W.astype(np.float64)
    return unit_norm_gradient(grad if basis is None else grad @ basis, unit, norms)


def minimize_rica(loss, V0: np.ndarray, basis: np.ndarray | None = None, max_iter: int = 300,
                  dtype=np.float32, callback=None) -> LbfgsResult:
    """L-BFGS over V (k, r) with W = normalize_rows(V) basis^T (k, d).

    loss: ``loss(W) -> (value, dJ/dW)``, given W in float64 (local ``RicaLoss`` or
    a distributed one; each runs its data products in the data's dtype).  ``dtype``:
    that of the returned W.  V0: float64 starting point, (k, r) with r = basis's
    columns (or d without a basis).  ``callback(iteration, value, V)`` runs
    after every iteration.  A non-finite objective or gradient raises
    FloatingPointError instead of returning a NaN W.

    The stopping tolerances are tight: a float32 objective is too noisy for
    scipy's relative-reduction test to mean convergence, so fits usually run
    to ``max_iter``, the budget to set.
    """
    k, r = V0.shape
    history: list[float] = []

    # scipy's L-BFGS-B makes many tiny BLAS calls, which multi-threaded
    # OpenBLAS slows down: it runs on one BLAS thread (RicaLoss threads its own blocks).
    def fun(v: np.ndarray):
        # the loss gets W in float64 and runs its m-sized products in the data's dtype:
        # rounding W to float32 here would make J jitter by more than an iteration gains
        V, norms, W = span_weights(v.reshape(k, r), basis, np.float64)
        value, grad = loss(W)
        if not (math.isfinite(value) and np.isfinite(grad).all()):
            raise FloatingPointError(
                f"RICA objective became non-finite ({value}) at iteration {len(history)}: "
                "check the scale of X (whiten it first) and lam/eps")
        if not history:  # scipy evaluates the start first: that is iteration 0
            history.append(float(value))
        return value, span_gradient(grad, V, norms, basis).ravel()

    def on_iteration(intermediate_result):
        history.append(float(intermediate_result.fun))
        if callback is not None:
            callback(len(history) - 1, history[-1], intermediate_result.x.reshape(k, r))

    with one_blas_thread():
        result = minimize(fun, V0.ravel(), jac=True, method="L-BFGS-B", callback=on_iteration,
                          options={"maxiter": int(max_iter), "maxcor": 20, "ftol": 1e-12,
                                   "gtol": 1e-8})
    V = result.x.reshape(k, r)
    return LbfgsResult(span_weights(V, basis, dtype)[2], V, np.asarray(history), int(result.nit),
                       str(result.message))


class RICA(TransformerMixin, BaseEstimator):
    """Reconstruction ICA feature layer, trained with scipy's L-BFGS.

    Parameters (keyword-only)
    ----------
    n_features : number of features k (k > d is overcomplete).
    lam : weight of the reconstruction term (sparsity has weight 1).
    eps : smoothing of the L1 penalty ``sqrt(eps + u^2)``.
    max_iter : L-BFGS iterations; a fit they end before convergence warns
        (ConvergenceWarning).
    dtype : float32 (default) or float64 for the data and all products.
    random_state : int seed (``np.random.default_rng``), Generator, RandomState
        or None, of the initial W.
    init : "random" (Gaussian rows) or a (k, d) array of starting filters, e.g.
        :func:`sampled_filters` of the data (rows are scaled to unit norm).
    pool : optional (p, k) pooling matrix V (``isa.subspace_pooling`` for
        ISA, a topographic one for TICA): the sparsity penalty is then on the
        pooled units ``sqrt(eps + V (W x)^2)``.
    callback : optional ``callback(iteration, objective)`` after each iteration.

    Attributes
    ----------
    W_ : (k, d) learned features, rows of unit L2 norm.
    objective_ : (n_iter_ + 1,) objective after each iteration (first entry at
        the initial point).
    n_iter_ : iterations run.  ``n_features_in_`` : d.
    optimizer_message_ : scipy's stopping message.
    """

    _parameter_constraints: ClassVar[dict] = {
        "n_features": [Interval(Integral, 1, None, closed="left")],
        "lam": [Interval(Real, 0, None, closed="neither")],
        "eps": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "random_state": RANDOM_STATE,
        "pool": ["array-like", None],
        "callback": [callable, None],
    }

    def __init__(self, *, n_features: int = 256, lam: float = 10.0, eps: float = 1e-2,
                 max_iter: int = 300, dtype=np.float32, random_state=None,
                 pool: np.ndarray | None = None, callback=None, init="random"):
        self.n_features = n_features
        self.lam = lam
        self.eps = eps
        self.max_iter = max_iter
        self.dtype = dtype
        self.random_state = random_state
        self.pool = pool
        self.callback = callback
        self.init = init

    def _check_params(self) -> np.dtype:
        """Validate the hyper-parameters (one-line ValueError naming the parameter); the dtype."""
        self._validate_params()
        return check_dtype(self.dtype)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = [np.dtype(self.dtype).name]
        return tags

    def _warn_if_stopped(self, n_iter: int) -> None:
        """ConvergenceWarning when L-BFGS used all ``max_iter`` iterations."""
        if n_iter >= int(self.max_iter):
            warnings.warn(f"{type(self).__name__} stopped at max_iter={self.max_iter} before "
                          "L-BFGS converged; raise max_iter to fit further", ConvergenceWarning,
                          stacklevel=3)

    def initial_weights(self, d: int, basis: np.ndarray | None = None) -> np.ndarray:
        """The start, float64: ``init`` (seeded Gaussian rows, or the given filters)
        as (k, d) with unit-norm rows, or, given the data's span ``basis`` (d, r),
        its projection V0 (k, r) onto it.

        Projecting one W0 (rather than drawing in the basis' coordinates)
        keeps the run independent of which orthonormal basis of the span
        ``data_basis`` returns, so shard-wise sums give the same W.
        """
        k = int(self.n_features)
        if isinstance(self.init, str):
            if self.init != "random":
                raise ValueError(f"init must be 'random' or a ({k}, {d}) array, got {self.init!r}")
            W0 = check_random_state(self.random_state).standard_normal((k, d))
        else:
            W0 = np.array(self.init, dtype=np.float64)
            if W0.shape != (k, d):
                raise ValueError(f"init filters have shape {W0.shape}, expected ({k}, {d})")
            if not (np.isfinite(W0).all() and np.abs(W0).max(axis=1).min() > 0):
                raise ValueError("init filters must be finite, with no all-zero row")
        W0 = normalize_rows(W0)[0]
        return W0 if basis is None else W0 @ basis

    def fit(self, X, y=None) -> "RICA":
        """Learn W_ from X (m, d); y is ignored."""
        dtype = self._check_params()
        X = check_array(X, dtype=dtype, name="X")
        check_second_moments(X, dtype)
        loss = RicaLoss(X, int(self.n_features), self.lam, self.eps, self.pool)
        with one_blas_thread():  # the same bits whatever the machine's thread count
            basis = data_basis(loss.C)
            V0 = self.initial_weights(X.shape[1], basis)
        callback = None if self.callback is None else (lambda i, value, V: self.callback(i, value))
        result = minimize_rica(loss, V0, basis, self.max_iter, dtype, callback)
        self._warn_if_stopped(result.n_iter)
        self.W_ = result.W
        self.objective_ = result.objective
        self.n_iter_ = result.n_iter
        self.n_features_in_ = X.shape[1]
        self.optimizer_message_ = result.message
        return self

    def transform(self, X, pool: np.ndarray | None = None) -> np.ndarray:
        """Simple-unit responses X W^T (m, k), or pooled ``sqrt(eps + (X W^T)^2 V^T)``.

        pool: optional (p, k) pooling matrix V (e.g. ``isa.subspace_pooling``,
        or this layer's own ``self.pool``); the pooled output is (m, p).
        """
        check_is_fitted(self)
        X = check_fitted_input(self, X, self.W_.dtype)
        responses = X @ self.W_.T
        if pool is None:
            return responses
        return l2_pool(responses, pool, self.eps)

    def fit_transform(self, X, y=None, pool=None) -> np.ndarray:
        return self.fit(X).transform(X, pool=pool)
