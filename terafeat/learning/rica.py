"""Reconstruction ICA (Le, Karpenko, Ngiam, Ng; NIPS 2011).

Convention (see ``shared/papers.md``): for data ``X`` of shape ``(m, d)``
(one example per row) and features ``W`` of shape ``(k, d)``::

    J(W) = lam * (1/m) * ||X W^T W - X||_F^2  +  (1/m) * sum_ij sqrt(eps + (X W^T)_ij^2)

``lam`` weighs the reconstruction term; the smooth-L1 sparsity term has
weight 1.

The hot loop.  Writing ``P = W^T W - I`` (d x d) and ``C = X^T X / m``, the
reconstruction residual is ``R = X P``, so the reconstruction term and its
gradient need only ``C``, which is computed once per data set::

    (1/m) ||R||^2 = sum(P * (C P))               grad = 2 lam (W C P + W P C)

This is exact algebra, not an approximation, and it costs O(k d^2) per
evaluation instead of three more m-sized matrix products.  The data touch the
objective only through the sparsity term: ``Z = X W^T`` and ``S^T X`` with
``S = Z / sqrt(eps + Z^2)``: two GEMMs, done over row blocks small enough for
the cache, with the elementwise work in place in preallocated buffers.
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
from threadpoolctl import ThreadpoolController

from terafeat.learning.pooling import l2_pool
from terafeat.validation import (
    RANDOM_STATE,
    check_array,
    check_dtype,
    check_fitted_input,
    check_random_state,
)

__all__ = [
    "RICA",
    "RicaLoss",
    "rica_loss_grad",
    "rica_loss_grad_reference",
    "data_basis",
    "minimize_rica",
    "span_weights",
    "span_gradient",
    "SparsityKernel",
    "reconstruction_terms",
    "sparsity_terms",
    "normalize_rows",
    "unit_norm_gradient",
    "distinct_filters",
]

#: Target size in bytes of one (b, k) block of ``Z = X W^T`` (cache-sized);
#: b stays within [512, 4096] rows so that each block is a well-shaped GEMM.
BLOCK_BYTES = 1 << 20


def reconstruction_terms(W: np.ndarray, C: np.ndarray, lam: float) -> tuple[float, np.ndarray]:
    """Reconstruction term ``lam * (1/m)||X W^T W - X||^2`` and its gradient.

    W: (k, d) features; C: (d, d) second-moment matrix ``X^T X / m``.
    Returns (value, gradient of shape (k, d) in W's dtype).  Computed in float64
    whatever W's dtype (O(k d^2), small beside the sparsity term's m-sized
    products): overcomplete, the term is a large near-constant (k unit rows
    on d dims give P ~ (k/d) I), and float32 rounding of it would drown the
    sparsity term's changes, stopping L-BFGS after a few iterations.
    """
    W64 = W.astype(np.float64, copy=False)
    C64 = C.astype(np.float64, copy=False)
    P = W64.T @ W64
    P[np.diag_indices_from(P)] -= 1.0
    CP = C64 @ P
    value = lam * float(np.vdot(P, CP))
    grad = W64 @ CP
    grad += (W64 @ P) @ C64
    grad *= 2.0 * lam
    return value, grad.astype(W.dtype, copy=False)


class SparsityKernel:
    """Blocked evaluation of the sparsity term over fixed data X (m, d).

    Rows are processed in blocks whose (b, k) slice of Z fits the cache; Z and
    its elementwise transforms live in preallocated (b, k) buffers, and
    ``S^T X`` accumulates block by block into one (k, d) array.  With a
    pooling matrix V (p, k) the penalty is on pooled units
    ``sqrt(eps + Z^2 V^T)`` (ISA/TICA) instead of on each simple unit.
    """

    def __init__(self, X: np.ndarray, k: int, pool: np.ndarray | None = None,
                 block_rows: int | None = None):
        m, d = X.shape
        if block_rows is None:
            block_rows = min(max(BLOCK_BYTES // (k * X.dtype.itemsize), 512), 4096)
        block_rows = int(max(1, min(block_rows, m)))
        self.X = X
        self.blocks = [(s, min(s + block_rows, m)) for s in range(0, m, block_rows)]
        self.Z = np.empty((block_rows, k), X.dtype)
        self.T = np.empty((block_rows, k), X.dtype)
        self.G_block = np.empty((k, d), X.dtype)
        self.pool = None
        if pool is not None:
            self.pool = check_pooling(pool, k, X.dtype)
            self.Q = np.empty((block_rows, self.pool.shape[0]), X.dtype)

    def _penalty(self, Z: np.ndarray, T: np.ndarray, eps: float) -> float:
        """Sum of the penalty over a block; leaves dPenalty/dZ in Z."""
        np.multiply(Z, Z, out=T)
        if self.pool is None:
            T += eps
            np.sqrt(T, out=T)
            total = float(T.sum())
            np.divide(Z, T, out=Z)
            return total
        Q = self.Q[:Z.shape[0]]
        np.matmul(T, self.pool.T, out=Q)
        Q += eps
        np.sqrt(Q, out=Q)
        total = float(Q.sum())
        np.reciprocal(Q, out=Q)
        np.matmul(Q, self.pool, out=T)
        np.multiply(Z, T, out=Z)
        return total

    def __call__(self, W: np.ndarray, eps: float) -> tuple[float, np.ndarray]:
        X = self.X
        grad = np.zeros((W.shape[0], X.shape[1]), X.dtype)
        total = 0.0
        for start, stop in self.blocks:
            Xb = X[start:stop]
            Z, T = self.Z[:stop - start], self.T[:stop - start]
            np.matmul(Xb, W.T, out=Z)
            total += self._penalty(Z, T, eps)
            np.matmul(Z.T, Xb, out=self.G_block)
            grad += self.G_block
        return total, grad


def check_pooling(pool, n_features: int, dtype) -> np.ndarray:
    """A (p, n_features) non-negative pooling matrix as a C-contiguous ``dtype`` array."""
    pool = check_array(pool, dtype=dtype, name="pooling matrix", n_features=n_features)
    if (pool < 0).any():
        raise ValueError("pooling matrix must be non-negative")
    return pool


def sparsity_terms(W: np.ndarray, X: np.ndarray, eps: float,
                   pool: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """Unnormalised sparsity sums over the rows of X.

    W: (k, d); X: (m, d), same dtype; pool: optional (p, k) pooling matrix V.
    Returns ``(sum of the penalty, dpenalty/dW)``: without pooling the
    penalty is ``sum_ij sqrt(eps + Z_ij^2)`` with ``Z = X W^T`` and the
    gradient ``S^T X`` with ``S = Z / sqrt(eps + Z^2)``; with pooling it is
    ``sum sqrt(eps + Z^2 V^T)``.  The gradient is (k, d).  Sums over shards
    add up: this is what a distributed trainer computes per shard.
    """
    return SparsityKernel(X, W.shape[0], pool)(W, eps)


class RicaLoss:
    """The RICA objective and gradient over fixed data, with reusable buffers.

    ``RicaLoss(X, n_features, lam, eps, pool=None)(W) -> (J, dJ/dW)``; X: (m, d),
    W: (k, d) with k = n_features, both in the same float dtype; pool: optional
    (p, k) pooling matrix.  Construction computes ``C = X^T X / m`` (in
    float64, then cast) and allocates the (b, k) block buffers; a call then
    allocates only (k, d) and (d, d) arrays, never an m-sized one.
    """

    def __init__(self, X: np.ndarray, n_features: int, lam: float, eps: float,
                 pool: np.ndarray | None = None, block_rows: int | None = None):
        self.X = X
        self.m = X.shape[0]
        self.lam = float(lam)
        self.eps = float(eps)
        X64 = X.astype(np.float64, copy=False)
        self.C = ((X64.T @ X64) / self.m).astype(X.dtype)
        self._kernel = SparsityKernel(X, n_features, pool, block_rows)

    def __call__(self, W: np.ndarray) -> tuple[float, np.ndarray]:
        """(J, dJ/dW in W's dtype); the m-sized products run in X's dtype, the
        reconstruction term in float64 from W as given (see reconstruction_terms)."""
        value, grad = reconstruction_terms(W, self.C, self.lam)
        total, sparse_grad = self._kernel(W.astype(self.X.dtype, copy=False), self.eps)
        grad += sparse_grad * W.dtype.type(1.0 / self.m)
        return value + total / self.m, grad


def rica_loss_grad(W: np.ndarray, X: np.ndarray, lam: float, eps: float,
                   pool: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """RICA objective J(W) and gradient (k, d) on data X (m, d); see module doc.

    A one-off: it computes C = X^T X / m each call; to evaluate many W on the
    same data, build one ``RicaLoss``.

    pool: optional (p, k) pooling matrix V: the penalty is then on the pooled
    units ``sqrt(eps + V (W x)^2)`` (RICA with ISA/TICA pooling).
    """
    return RicaLoss(X, W.shape[0], lam, eps, pool)(W)


def rica_loss_grad_reference(W: np.ndarray, X: np.ndarray, lam: float, eps: float,
                             pool: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """Plain transcription of the formula, a new array per intermediate.

    The peer of the benchmark and the cross-check of the tests, as in the
    UFLDL exercise (there with examples as columns)::

        Z = W X;  R = W^T Z - X;  grad = 2 lam (Z R^T + W R X^T) / m + (Z / sqrt(eps + Z^2)) X^T / m

    With a pooling matrix V the last term is ``(Z * (V^T (1 / sqrt(eps + V Z^2)))) X^T / m``.
    """
    m = X.shape[0]
    Xc = X.T
    Z = W @ Xc
    R = W.T @ Z - Xc
    if pool is None:
        pooled = np.sqrt(eps + Z ** 2)
        dZ = Z / pooled
    else:
        pooled = np.sqrt(eps + pool @ Z ** 2)
        dZ = Z * (pool.T @ (1 / pooled))
    value = lam * np.sum(R ** 2) / m + np.sum(pooled) / m
    grad = 2 * lam * (Z @ R.T + W @ (R @ Xc.T)) / m + dZ @ Xc.T / m
    return float(value), grad


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
    # OpenBLAS slows down (and leaves the loss's GEMMs slower after): it runs
    # on one BLAS thread, the loss on all the threads in force at the call.
    controller = ThreadpoolController()
    loss_threads = max([info["num_threads"] for info in controller.info()
                        if info["user_api"] == "blas"], default=1)

    def fun(v: np.ndarray):
        # the loss gets W in float64 and runs its m-sized products in the data's dtype:
        # rounding W to float32 here would make J jitter by more than an iteration gains
        V, norms, W = span_weights(v.reshape(k, r), basis, np.float64)
        with controller.limit(limits=loss_threads, user_api="blas"):
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

    with controller.limit(limits=1, user_api="blas"):
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
        loss = RicaLoss(X, int(self.n_features), self.lam, self.eps, self.pool)
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
