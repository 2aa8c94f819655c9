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

import numpy as np

from terafeat.learning.rica import SparsityKernel, normalize_rows
from terafeat.validation import check_array, check_dtype, check_random_state

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


class OrthonormalPooling:
    """ISA / TICA / ICA under ``W W^T = I``, by projected gradient (see module doc).

    Parameters
    ----------
    n_features : k <= d.  pool : (p, k) pooling matrix, or None (plain ICA).
    eps : smoothing inside the square root.  max_iter : gradient steps.
    tol : stop when a step lowers J by less than ``tol`` relative.
    step : initial step size.  dtype, random_state : as in RICA.

    Attributes
    ----------
    W_ (k, d) orthonormal rows; objective_ (n_iter_ + 1,); n_iter_.
    """

    def __init__(self, n_features: int, pool: np.ndarray | None = None, eps: float = 1e-2,
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
        dtype = check_dtype(self.dtype)
        X = check_array(X, dtype=dtype, name="X")
        m, d = X.shape
        k = int(self.n_features)
        if not 1 <= k <= d:
            raise ValueError(f"orthonormal features need 1 <= n_features <= d={d}, got {k}")
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
        self.W_ = W.astype(dtype)
        self.objective_ = np.asarray(history)
        self.n_iter_ = len(history) - 1
        self.n_features_in_ = d
        return self

    def transform(self, X, pooled: bool = True) -> np.ndarray:
        """Pooled units ``sqrt(eps + V (W x)^2)`` (m, p), or simple units X W^T (m, k)."""
        if not hasattr(self, "W_"):
            raise ValueError("this OrthonormalPooling is not fitted yet: call fit(X) first")
        X = check_array(X, dtype=self.W_.dtype, name="X", n_features=self.n_features_in_)
        responses = X @ self.W_.T
        if not pooled or self.pool is None:
            return responses
        from terafeat.learning.pooling import l2_pool
        return l2_pool(responses, self.pool, self.eps)
