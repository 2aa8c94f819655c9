"""RICA's objective and gradient (Le, Karpenko, Ngiam, Ng; NIPS 2011).

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

Threads.  Every product runs on one BLAS thread; the row blocks are spread
over a pool of Python threads (numpy releases the GIL), and their sums are
added in block order, so the objective, and the W that L-BFGS reaches, are
the same bits for any number of threads (``terafeat.blas``); a multi-threaded
BLAS would also spin on these small products when the cores are busy.  Unless
told a thread count, each call takes the faster of one thread and all of them,
by the time each last took (``terafeat.blas.FasterThreadCount``): on busy cores
the threads can lose.
"""
from __future__ import annotations

from collections import deque
from contextlib import nullcontext

import numpy as np

from terafeat.blas import FasterThreadCount, blas_threads, one_blas_thread, thread_pool
from terafeat.validation import check_array


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

    Rows are processed in blocks whose (b, k) slice of Z fits the cache, by
    ``n_threads`` Python threads (default: each call the faster, as measured, of
    one thread and the BLAS threads in force at construction), each with its
    own preallocated (b, k) buffers for Z and its elementwise transforms and
    a (k, d) buffer for its block's ``S^T X``; the block sums are added in
    block order, so the result does not depend on ``n_threads`` (see the
    module doc).  With a pooling matrix V (p, k)
    the penalty is on pooled units ``sqrt(eps + Z^2 V^T)`` (ISA/TICA) instead
    of on each simple unit.  A call may cover only rows ``[start, stop)`` (``rows``),
    in blocks of the same size starting at ``start``: a portion's sums do not depend
    on which kernel over the same X computes them.
    """

    def __init__(self, X: np.ndarray, k: int, pool: np.ndarray | None = None,
                 block_rows: int | None = None, n_threads: int | None = None):
        m, d = X.shape
        if block_rows is None:
            block_rows = min(max(BLOCK_BYTES // (k * X.dtype.itemsize), 512), 4096)
        block_rows = int(max(1, min(block_rows, m)))
        self.X = X
        self.block_rows = block_rows
        self.blocks = self._blocks(0, m)
        measured = n_threads is None
        n_threads = blas_threads() if measured else int(n_threads)
        self.n_threads = max(1, min(n_threads, len(self.blocks)))
        self._thread_count = FasterThreadCount(self.n_threads) if measured else None
        self.pool = None if pool is None else check_pooling(pool, k, X.dtype)
        p = 0 if self.pool is None else self.pool.shape[0]
        # two buffer slots per thread: a thread starts its next block while the
        # caller adds up the last one
        n_slots = 1 if self.n_threads == 1 else 2 * self.n_threads
        self._slots = [(np.empty((block_rows, k), X.dtype), np.empty((block_rows, k), X.dtype),
                        np.empty((block_rows, p), X.dtype), np.empty((k, d), X.dtype))
                       for _ in range(n_slots)]

    def _penalty(self, Z: np.ndarray, T: np.ndarray, Q: np.ndarray, eps: float) -> float:
        """Sum of the penalty over a block; leaves dPenalty/dZ in Z."""
        np.multiply(Z, Z, out=T)
        if self.pool is None:
            T += eps
            np.sqrt(T, out=T)
            total = float(T.sum())
            np.divide(Z, T, out=Z)
            return total
        np.matmul(T, self.pool.T, out=Q)
        Q += eps
        np.sqrt(Q, out=Q)
        total = float(Q.sum())
        np.reciprocal(Q, out=Q)
        np.matmul(Q, self.pool, out=T)
        np.multiply(Z, T, out=Z)
        return total

    def _block(self, slot: int, start: int, stop: int, W: np.ndarray, eps: float) -> float:
        """Penalty sum of rows [start, stop); their ``S^T X`` left in the slot's (k, d) buffer."""
        Z, T, Q, G = self._slots[slot]
        rows = stop - start
        Xb = self.X[start:stop]
        Z, T, Q = Z[:rows], T[:rows], Q[:rows]
        np.matmul(Xb, W.T, out=Z)
        total = self._penalty(Z, T, Q, eps)
        np.matmul(Z.T, Xb, out=G)
        return total

    def _blocks(self, start: int, stop: int) -> list[tuple[int, int]]:
        return [(s, min(s + self.block_rows, stop)) for s in range(start, stop, self.block_rows)]

    def threads(self, rows: int | None = None):
        """Context manager yielding this call's thread count: ``n_threads`` when it was
        given, else the faster of one and all threads by measured time per row of
        ``rows`` (default all of X; ``FasterThreadCount``)."""
        if self._thread_count is None:
            return nullcontext(self.n_threads)
        return self._thread_count.timed(units=len(self.X) if rows is None else rows)

    def __call__(self, W: np.ndarray, eps: float,
                 rows: tuple[int, int] | None = None) -> tuple[float, np.ndarray]:
        """(penalty sum, its gradient (k, d)) over all rows of X, or rows [start, stop)."""
        with self.threads(None if rows is None else rows[1] - rows[0]) as n_threads:
            return self.evaluate(W, eps, n_threads, rows)

    def evaluate(self, W: np.ndarray, eps: float, n_threads: int,
                 rows: tuple[int, int] | None = None) -> tuple[float, np.ndarray]:
        """As a call, with the blocks on ``n_threads`` threads (1 or ``self.n_threads``)."""
        blocks = self.blocks if rows is None else self._blocks(*rows)
        with one_blas_thread():
            if n_threads == 1:
                return self._sequential(W, eps, blocks)
            return self._threaded(W, eps, blocks)

    def _sequential(self, W: np.ndarray, eps: float, blocks) -> tuple[float, np.ndarray]:
        grad = np.zeros((W.shape[0], self.X.shape[1]), self.X.dtype)
        total = 0.0
        for start, stop in blocks:
            total += self._block(0, start, stop, W, eps)
            grad += self._slots[0][3]
        return total, grad

    def _threaded(self, W: np.ndarray, eps: float, blocks) -> tuple[float, np.ndarray]:
        """The blocks on the thread pool, their sums added in block order as they finish."""
        grad = np.zeros((W.shape[0], self.X.shape[1]), self.X.dtype)
        total = 0.0
        threads = thread_pool(self.n_threads)
        free, pending = list(range(len(self._slots))), deque()

        def add_oldest():
            nonlocal total
            slot, block_sum = pending.popleft()
            total += block_sum.result()
            np.add(grad, self._slots[slot][3], out=grad)
            free.append(slot)

        for start, stop in blocks:
            if not free:
                add_oldest()
            slot = free.pop()
            pending.append((slot, threads.submit(self._block, slot, start, stop, W, eps)))
        while pending:
            add_oldest()
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
    (p, k) pooling matrix; n_threads: the sparsity kernel's threads (default:
    chosen by measurement each call; the result is the same for any).
    Construction computes ``C = X^T X / m`` (in float64, then cast) and
    allocates the (b, k) block buffers; a call then allocates only (k, d) and
    (d, d) arrays, never an m-sized one.
    """

    def __init__(self, X: np.ndarray, n_features: int, lam: float, eps: float,
                 pool: np.ndarray | None = None, block_rows: int | None = None,
                 n_threads: int | None = None):
        self.X = X
        self.m = X.shape[0]
        self.lam = float(lam)
        self.eps = float(eps)
        X64 = X.astype(np.float64, copy=False)
        with one_blas_thread():
            self.C = ((X64.T @ X64) / self.m).astype(X.dtype)
        self._kernel = SparsityKernel(X, n_features, pool, block_rows, n_threads)

    def __call__(self, W: np.ndarray) -> tuple[float, np.ndarray]:
        """(J, dJ/dW in W's dtype); the m-sized products run in X's dtype, the
        reconstruction term in float64 from W as given (see reconstruction_terms)."""
        with self._kernel.threads() as n_threads, one_blas_thread():
            threaded = n_threads > 1
            # threaded, the d x d algebra runs on a pool thread beside the row blocks
            reconstruction = (thread_pool(n_threads).submit(
                reconstruction_terms, W, self.C, self.lam) if threaded else None)
            total, sparse_grad = self._kernel.evaluate(W.astype(self.X.dtype, copy=False),
                                                       self.eps, n_threads)
            value, grad = (reconstruction.result() if threaded
                           else reconstruction_terms(W, self.C, self.lam))
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
