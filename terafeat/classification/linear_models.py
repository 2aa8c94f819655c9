"""Linear models fitted over streamed shards: ridge from the Gram matrix; the one-vs-rest
L2-SVM and the multinomial (softmax) logistic regression by preconditioned L-BFGS.

- ridge (regularised least squares on ±1 targets), solved exactly from the streamed
  Gram matrix;
- L2-SVM (squared hinge, as Coates et al.) and softmax (cross-entropy of the class
  scores), trained by scipy's L-BFGS with one streaming pass per evaluation, started from
  a ridge solution and preconditioned by the Cholesky factor of ridge's regularised Gram
  matrix (image features are strongly correlated: plain L-BFGS stops far from the optimum).

All minimise ``sum_i loss(y_i, s_i) + lam * ||W||^2`` (bias not penalised), so one
``lam`` means the same strength for ridge and the L2-SVM.  Weights are (f + 1, c) on
standardised, bias-augmented features
(:class:`~terafeat.classification.shard_streams.Standardizer`).  The Gram matrix and
ridge's factors keep the dtype ``gram_statistics`` is given (float32 halves their memory
and the factorisation's time; the entries are float32 products either way); the
L-BFGS preconditioner is float64.
"""
from __future__ import annotations

import numpy as np
from scipy.linalg import cho_factor, cho_solve, solve_triangular
from scipy.optimize import minimize

from terafeat.classification.shard_streams import Standardizer, targets

LOSSES = ("squared_hinge", "softmax")
#: L-BFGS stops when an iteration lowers the objective by less than this fraction: the
#: scores are float32 products, so changes within a few float32 roundings are noise, not
#: progress (chasing them ends in a failed line search instead of the convergence test).
RELATIVE_TOLERANCE = 10 * float(np.finfo(np.float32).eps)


def gram_statistics(shards, standardizer: Standardizer, n_classes: int,
                    dtype=np.float64) -> tuple[np.ndarray, np.ndarray, int]:
    """(G (f+1, f+1) ``dtype``, B (f+1, c) float64, n) = (sum A^T A, sum A^T Y, rows) over
    the shards, A the standardised, bias-augmented features; sums of float32 products."""
    G = B = None
    n = 0
    for X, y in shards:
        A = standardizer.augment(X)
        if G is None:
            G = np.zeros((A.shape[1], A.shape[1]), dtype)
            B = np.zeros((A.shape[1], n_classes))
        G += A.T @ A
        B += A.T @ targets(y, n_classes)
        n += len(A)
    if G is None:
        raise ValueError("no feature rows to fit")
    return G, B, n


def _penalised(G: np.ndarray, lam: float) -> np.ndarray:
    """G + lam I' in place (I' the identity but for the bias); returns G."""
    np.einsum("ii->i", G)[:-1] += lam
    return G


def _cholesky(G: np.ndarray, lam: float, dtype) -> np.ndarray:
    """Upper Cholesky factor (f+1, f+1) ``dtype`` of G + lam I' (lower triangle as it was).

    G's entries are sums of float32 products, accurate to about float32's resolution of
    its largest diagonal entry; with more features than rows and a small lam, G + lam I'
    can be indefinite at that resolution.  Where the factorisation fails, lam is raised to
    ten float32 roundings of G's largest diagonal entry and it is factored in float64."""
    # Fortran order: LAPACK factors it in place (a C-ordered copy is copied once more)
    try:
        return cho_factor(_penalised(G.astype(dtype, order="F"), lam), overwrite_a=True)[0]
    except np.linalg.LinAlgError:
        floor = 10 * float(np.finfo(np.float32).eps) * float(np.max(np.diagonal(G)))
        return cho_factor(_penalised(G.astype(np.float64, order="F"), max(lam, floor)),
                          overwrite_a=True)[0]


def ridge_solve(G: np.ndarray, B: np.ndarray, lam: float) -> np.ndarray:
    """argmin_W ||A W - Y||^2 + lam ||W[:-1]||^2 from G = A^T A, B = A^T Y: (f+1, c)
    float64, factored in G's dtype (B cast to it: scipy would cast G to B's instead;
    see ``_cholesky`` for a G + lam I' indefinite at G's resolution)."""
    factor = _cholesky(G, lam, G.dtype)
    return np.asarray(cho_solve((factor, False), B.astype(factor.dtype), overwrite_b=True),
                      np.float64)


def preconditioner(G: np.ndarray, lam: float, block: int = 1024) -> np.ndarray:
    """Upper-triangular R (f+1, f+1) float64 with R^T R = G + lam I' (G = A^T A).

    Half the L2-SVM's Hessian is A_S^T A_S + lam I' (S: the rows with slack), bounded by
    G + lam I'; in the variables V = R W that bound is the identity, so L-BFGS no longer
    crawls along the ill-conditioned directions of correlated features (softmax's Hessian
    is bounded by a multiple of the same matrix).  Costs one Cholesky factorisation,
    f^3 / 3 flops (``_cholesky``).  R is float64 whatever G's
    dtype: L-BFGS needs the change of variables to be one fixed linear map, and solves
    with a float32 R round V and W to float32, which stops its line search short of
    its convergence test.
    """
    R = _cholesky(G, lam, np.float64)
    for start in range(0, len(R), block):  # cho_factor leaves the lower triangle as it was
        R[start:start + block] = np.triu(R[start:start + block], start)
    return R


def preconditioned(loss, R: np.ndarray, n_classes: int):
    """``loss`` (flat W -> value, gradient) as a function of flat V = R W."""
    def loss_v(flat: np.ndarray) -> tuple[float, np.ndarray]:
        W = solve_triangular(R, flat.reshape(-1, n_classes))
        value, grad = loss(W.ravel())
        return value, solve_triangular(R, grad.reshape(-1, n_classes), trans="T").ravel()
    return loss_v


def scores(X: np.ndarray, weights_raw: np.ndarray) -> np.ndarray:
    """Class scores (n, c) of raw features (n, f) under folded weights (f+1, c)."""
    return X @ weights_raw[:-1].astype(np.float32) + weights_raw[-1].astype(np.float32)


def squared_hinge_rows(y: np.ndarray, S: np.ndarray, n_classes: int
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Per row (n,) the one-vs-rest squared hinge sum_c max(0, 1 - Y_c s_c)^2 (float64)
    and its derivative (n, c) with respect to the scores S (n, c)."""
    Y = targets(y, n_classes)
    slack = np.maximum(1 - Y * S, 0)
    return np.square(slack, dtype=np.float64).sum(axis=1), -2 * Y * slack


def softmax_rows(y: np.ndarray, S: np.ndarray, n_classes: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Per row (n,) the cross-entropy log sum_c exp(s_c) - s_y and its derivative (n, c),
    softmax(S) - onehot(y), with respect to the scores S (n, c); in float64 (a
    well-classified row's loss is a small difference of large terms), the derivative
    returned in S's dtype."""
    shifted = S - S.max(axis=1, keepdims=True, initial=-np.inf).astype(np.float64)
    exp = np.exp(shifted)
    total = exp.sum(axis=1, keepdims=True)
    rows = np.arange(len(y))
    derivative = exp / total
    derivative[rows, y] -= 1
    return np.log(total[:, 0]) - shifted[rows, y], derivative.astype(S.dtype)


ROW_LOSSES = {"squared_hinge": squared_hinge_rows, "softmax": softmax_rows}


def streamed_loss(shards, standardizer: Standardizer, n_classes: int, lam: float,
                  loss: str = "squared_hinge"):
    """Loss-and-gradient (flat W -> value, gradient) of a linear classifier over streamed
    shards: ``loss`` ("squared_hinge": one-vs-rest L2-SVM; "softmax": multinomial
    logistic regression) summed over the rows, plus lam ||W[:-1]||^2.

    shards: a callable returning a fresh iterator of (X, y, rows), as
    ``iter_masked_shards``: rows outside ``rows`` count for nothing, so a subset costs a
    pass over whole shards but no copy of them (copying was slower than the products).
    """
    if loss not in ROW_LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    row_loss = ROW_LOSSES[loss]

    def value_and_gradient(flat: np.ndarray) -> tuple[float, np.ndarray]:
        W = flat.reshape(-1, n_classes)
        raw = standardizer.fold(W)
        value, grad_raw = 0.0, np.zeros_like(raw)
        for X, y, rows in shards():
            per_row, G = row_loss(y, scores(X, raw), n_classes)  # G: d loss / d score
            if rows is not None:
                per_row[~rows] = 0
                G[~rows] = 0
            value += float(per_row.sum())
            grad_raw[:-1] += X.T @ G
            grad_raw[-1] += G.sum(axis=0)
        # chain rule through fold(): raw = W / scale, bias_raw = b - mean @ raw
        grad = np.empty_like(W)
        grad[:-1] = (grad_raw[:-1] - np.outer(standardizer.mean, grad_raw[-1])) \
            / standardizer.scale[:, None]
        grad[-1] = grad_raw[-1]
        value += lam * float(np.square(W[:-1]).sum())
        grad[:-1] += 2 * lam * W[:-1]
        return value, grad.ravel()
    return value_and_gradient


def fit_lbfgs(shards, standardizer: Standardizer, n_classes: int, lam: float,
              initial: np.ndarray, max_iter: int = 100, R: np.ndarray | None = None,
              held_out=None, patience: int | None = None,
              loss: str = "squared_hinge", tolerance: float = RELATIVE_TOLERANCE
              ) -> tuple[np.ndarray, dict]:
    """A linear classifier (``loss`` as :func:`streamed_loss`: the one-vs-rest L2-SVM, or
    softmax) by L-BFGS over ``shards()`` (a callable returning a fresh iterator of
    (X, y, rows) each pass, as ``iter_masked_shards``).  initial: (f+1, c) standardised
    weights (e.g. the ridge solution); R: a :func:`preconditioner` (None: plain L-BFGS on
    W).  held_out, patience: early stopping: ``held_out`` (weights (f+1, c) -> accuracy)
    scores every iterate, and the fit stops once ``patience`` iterations pass without a
    higher score, returning the best iterate.  tolerance: L-BFGS-B's ``ftol``, the
    relative reduction of the objective below which it stops (its convergence test).
    Returns (weights (f+1, c) standardised, summary dict: "n_iter" (of the returned
    iterate), "objective", "message", "converged" (L-BFGS-B's own convergence test
    passed), "stopped_at_limit" (it ran out of iterations first), "iteration_limit";
    with early stopping also "stopped_early" and "held_out_accuracy" of the iterate)."""
    objective = streamed_loss(shards, standardizer, n_classes, lam, loss)
    start = np.asarray(initial, np.float64)
    if R is not None:
        objective = preconditioned(objective, R, n_classes)
        start = R @ start

    def weights_of(flat: np.ndarray) -> np.ndarray:
        weights = flat.reshape(-1, n_classes)
        return weights if R is None else solve_triangular(R, weights)

    best = {"accuracy": -np.inf, "iteration": 0, "weights": None}
    iteration = 0

    def monitor(flat: np.ndarray) -> None:
        nonlocal iteration
        iteration += 1
        weights = weights_of(flat)
        accuracy = held_out(weights)
        if accuracy > best["accuracy"]:
            best.update(accuracy=accuracy, iteration=iteration, weights=weights)
        elif iteration - best["iteration"] >= patience:
            raise StopIteration

    result = minimize(objective, start.ravel(), jac=True, method="L-BFGS-B",
                      options={"maxiter": max_iter, "maxcor": 20, "ftol": tolerance},
                      callback=None if patience is None else monitor)
    summary = {"n_iter": int(result.nit), "objective": float(result.fun),
               "message": str(result.message), "converged": bool(result.status == 0),
               "stopped_at_limit": bool(result.status == 1), "iteration_limit": max_iter}
    if patience is None or best["weights"] is None:
        return weights_of(result.x), summary
    summary.update(n_iter=best["iteration"], held_out_accuracy=best["accuracy"],
                   stopped_early=iteration > best["iteration"] and result.status == 99)
    return best["weights"], summary
