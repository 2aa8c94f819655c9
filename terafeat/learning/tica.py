"""ISA / TICA with the orthonormality constraint ``W W^T = I`` (Hyvarinen et al.),
trained by projected gradient descent with symmetric orthogonalisation.

The classic algorithm that RICA replaces.  On whitened data X (m, d) and
features W (k, d), k <= d, it minimises the pooled sparsity

    J(W) = (1/m) sum_i sum_j sqrt(eps + (V (W x_i)^2)_j)

(V: (p, k) a 0/1 pooling matrix: ``isa.subspace_pooling`` for ISA,
``topographic_pooling`` for TICA, None for plain ICA with one unit per
"pool") subject to orthonormal rows.  Each step moves along the negative
gradient and projects back with ``(W W^T)^(-1/2) W``; the step size is
found by backtracking (halve until J decreases, then try a doubled step
next time).  That constraint is why k cannot exceed d and why each step
needs an SVD.
"""
from __future__ import annotations

import warnings
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from terafeat.learning.pooling import l2_pool
from terafeat.learning.rica import normalize_rows
from terafeat.learning.rica_objective import SparsityKernel
from terafeat.validation import (
    RANDOM_STATE,
    check_array,
    check_dtype,
    check_fitted_input,
    check_random_state,
)

__all__ = ["topographic_pooling", "symmetric_orthogonalize", "OrthonormalPooling"]


def topographic_pooling(n_features: int, neighbourhood: int = 3, dtype=np.float32) -> np.ndarray:
    """TICA pooling matrix (n_features, n_features): the units sit on a square torus
    (side sqrt(n_features), which must be whole); row i is 1 on the
    ``neighbourhood x neighbourhood`` window centred on unit i."""
    side = int(round(np.sqrt(n_features)))
    if side * side != n_features:
        raise ValueError(f"n_features={n_features} must be a square for a 2-D topography")
    if neighbourhood < 1 or neighbourhood % 2 == 0 or neighbourhood > side:
        raise ValueError(f"neighbourhood must be odd and at most {side}, got {neighbourhood}")
    ring = np.zeros((side, side), dtype)
    for offset in range(-(neighbourhood // 2), neighbourhood // 2 + 1):
        ring += np.roll(np.eye(side, dtype=dtype), offset, axis=1)
    return np.kron(ring, ring)


def symmetric_orthogonalize(W: np.ndarray) -> np.ndarray:
    """``(W W^T)^(-1/2) W`` for W (k, d), k <= d: the nearest matrix with orthonormal rows."""
    U, _, Vt = np.linalg.svd(W, full_matrices=False)
    return U @ Vt


class OrthonormalPooling(TransformerMixin, BaseEstimator):
    """ISA / TICA / ICA under ``W W^T = I``, by projected gradient (see module doc).

    Parameters (keyword-only)
    ----------
    n_features : k <= d (None: k = d).  pool : (p, k) pooling matrix, or None (plain ICA).
    eps : smoothing inside the square root.  max_iter : gradient steps (using them
        all before ``tol`` is met warns, ConvergenceWarning).
    tol : stop when a step lowers J by less than ``tol`` relative.
    step : initial step size.  dtype, random_state : as in RICA.

    Attributes
    ----------
    W_ (k, d) orthonormal rows; objective_ (n_iter_ + 1,); n_iter_; n_features_in_ (d).
    """

    _parameter_constraints: ClassVar[dict] = {
        "n_features": [Interval(Integral, 1, None, closed="left"), None],
        "pool": ["array-like", None],
        "eps": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "step": [Interval(Real, 0, None, closed="neither")],
        "random_state": RANDOM_STATE,
    }

    def __init__(self, *, n_features: int | None = None, pool: np.ndarray | None = None, eps: float = 1e-2,
                 max_iter: int = 300, tol: float = 1e-7, step: float = 1.0, dtype=np.float32,
                 random_state=None):
        self.n_features = n_features
        self.pool = pool
        self.eps = eps
        self.max_iter = max_iter
        self.tol = tol
        self.step = step
        self.dtype = dtype
        self.random_state = random_state

    def fit(self, X, y=None) -> "OrthonormalPooling":
        """Learn W_ from whitened X (m, d); y is ignored."""
        self._validate_params()
        dtype = check_dtype(self.dtype)
        X = check_array(X, dtype=dtype, name="X")
        m, d = X.shape
        k = d if self.n_features is None else int(self.n_features)
        if k > d:
            raise ValueError(f"n_features={k} exceeds X's {d} feature(s): orthonormal rows "
                             "need n_features <= d")
        kernel = SparsityKernel(X, k, self.pool)

        def objective(W):
            value, grad = kernel(W.astype(dtype), self.eps)
            return value / m, grad.astype(np.float64) / m

        rng = check_random_state(self.random_state)
        W = symmetric_orthogonalize(normalize_rows(rng.standard_normal((k, d)))[0])
        value, grad = objective(W)
        history, step = [value], float(self.step)
        for _ in range(int(self.max_iter)):
            while step > 1e-12:
                candidate = symmetric_orthogonalize(W - step * grad)
                new_value, new_grad = objective(candidate)
                if new_value < value:
                    break
                step /= 2
            else:
                break  # no descent step left: a stationary point
            improvement = (value - new_value) / max(abs(value), 1e-300)
            W, value, grad, step = candidate, new_value, new_grad, step * 2
            history.append(value)
            if improvement < self.tol:
                break
        else:
            warnings.warn(f"OrthonormalPooling stopped at max_iter={self.max_iter} before the "
                          f"relative improvement fell below tol={self.tol}", ConvergenceWarning,
                          stacklevel=2)
        self.W_ = W.astype(dtype)
        self.objective_ = np.asarray(history)
        self.n_iter_ = len(history) - 1
        self.n_features_in_ = d
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = [np.dtype(self.dtype).name]
        return tags

    def transform(self, X, pooled: bool = True) -> np.ndarray:
        """Pooled units ``sqrt(eps + V (W x)^2)`` (m, p), or simple units X W^T (m, k)."""
        check_is_fitted(self)
        X = check_fitted_input(self, X, self.W_.dtype)
        responses = X @ self.W_.T
        if not pooled or self.pool is None:
            return responses
        return l2_pool(responses, self.pool, self.eps)
