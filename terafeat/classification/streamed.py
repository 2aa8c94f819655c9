"""Linear classifiers trained over feature shards streamed from disk.

Features of n examples live in shard files ((n_s, f) float32 ``.npy``); memory holds
one shard plus two (f + 1)^2 float64 matrices, whatever n is.  Features are standardised on the
fly (mean and scale from one streaming pass).  Two one-vs-rest classifiers:

- ridge (regularised least squares on ±1 targets), solved exactly from the streamed
  Gram matrix; its regulariser is chosen on a held-out part of the training rows;
- L2-SVM (squared hinge, as Coates et al.), trained by scipy's L-BFGS with one
  streaming pass per evaluation, started from the ridge solution and preconditioned by
  the Cholesky factor of ridge's regularised Gram matrix (image features are strongly
  correlated: plain L-BFGS stops far from the optimum); its own regulariser is chosen
  on the held-out rows along a warm-started path from ridge's choice down (the squared
  hinge ignores the rows it already separates, and wants a weaker one).

Only the first pass (``feature_moments``) reads and checks whole shards; the L-BFGS
passes map the files (``np.load(mmap_mode="r")``), so the page cache serves them
without a copy.

Both minimise ``sum_i sum_c loss(y_ic, s_ic) + lam * ||W||^2`` (bias not penalised), so
one ``lam`` means the same strength for both.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from scipy.linalg import cho_factor, cho_solve, solve_triangular
from scipy.optimize import minimize

from terafeat.classification.model_selection import extend_at_edge
from terafeat.distributed.shards import load_shard

METHODS = ("ridge", "l2svm")
#: Regularisers tried, as multiples of the number of training rows.
LAM_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0)


def iter_masked_shards(paths: Sequence, labels: Sequence[np.ndarray],
                       masks: Sequence[np.ndarray] | None = None
                       ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """(features (n_s, f), labels (n_s,), rows (n_s,) bool or None: the rows that count)
    of each shard, memory-mapped (``load_shard`` with ``mapped``: ``feature_moments``
    checks every shard once) and whole: no copy of the rows that count."""
    for index, path in enumerate(paths):
        X, y = load_shard(path, mapped=True), np.asarray(labels[index])
        if len(X) != len(y):
            raise ValueError(f"{path}: {len(X)} feature rows but {len(y)} labels")
        yield X, y, None if masks is None else np.asarray(masks[index], bool)


def iter_shards(paths: Sequence, labels: Sequence[np.ndarray],
                masks: Sequence[np.ndarray] | None = None
                ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(features (n_s, f), labels (n_s,)) of each shard's rows where ``masks`` is True
    (``iter_masked_shards``, the rows copied out)."""
    for X, y, rows in iter_masked_shards(paths, labels, masks):
        yield (X, y) if rows is None else (X[rows], y[rows])


def feature_moments(paths: Sequence) -> tuple[np.ndarray, np.ndarray, int]:
    """(mean (f,), std (f,), n) of the rows of all shards, float64, in one pass that
    checks every shard (``load_shard``: a ShardError names a bad or non-finite one)."""
    total, squares, n = 0.0, 0.0, 0
    for path in paths:
        X = load_shard(path)
        total = total + X.sum(axis=0, dtype=np.float64)
        squares = squares + np.einsum("ij,ij->j", X, X, dtype=np.float64)
        n += len(X)
    if n == 0:
        raise ValueError("no feature rows in the shards")
    mean = total / n
    return mean, np.sqrt(np.maximum(squares / n - mean ** 2, 0)), n


class Standardizer:
    """x -> (x - mean) / sqrt(var + eps), with a constant 1 appended for the bias.

    eps regularises near-constant features (in the features' squared units).
    """

    def __init__(self, mean: np.ndarray, std: np.ndarray, eps: float = 1e-2):
        self.mean = np.asarray(mean, np.float64)
        self.scale = np.sqrt(np.asarray(std, np.float64) ** 2 + eps)

    def augment(self, X: np.ndarray) -> np.ndarray:
        """(n, f) raw -> (n, f + 1) float32 standardised, last column 1."""
        out = np.ones((len(X), X.shape[1] + 1), np.float32)
        np.subtract(X, self.mean.astype(np.float32), out=out[:, :-1])
        out[:, :-1] /= self.scale.astype(np.float32)
        return out

    def fold(self, weights: np.ndarray) -> np.ndarray:
        """Weights (f + 1, c) on standardised features -> the same scores on raw ones."""
        raw = weights[:-1] / self.scale[:, None]
        return np.vstack([raw, weights[-1:] - self.mean @ raw])


def targets(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """One-vs-rest targets: (n, n_classes) float32, +1 for the label, -1 elsewhere."""
    Y = -np.ones((len(labels), n_classes), np.float32)
    Y[np.arange(len(labels)), labels] = 1
    return Y


def gram_statistics(shards, standardizer: Standardizer, n_classes: int
                    ) -> tuple[np.ndarray, np.ndarray, int]:
    """(G (f+1, f+1), B (f+1, c), n) = (sum A^T A, sum A^T Y, rows) over the shards,
    A the standardised, bias-augmented features; float64 sums of float32 products."""
    G = B = None
    n = 0
    for X, y in shards:
        A = standardizer.augment(X)
        if G is None:
            G = np.zeros((A.shape[1], A.shape[1]))
            B = np.zeros((A.shape[1], n_classes))
        G += A.T @ A
        B += A.T @ targets(y, n_classes)
        n += len(A)
    if G is None:
        raise ValueError("no feature rows to fit")
    return G, B, n


def _regularised(G: np.ndarray, lam: float, overwrite: bool = False) -> np.ndarray:
    """G + lam I' (f+1, f+1), I' the identity but for the bias; in place if overwrite."""
    regularised = G if overwrite else G.copy()
    np.einsum("ii->i", regularised)[:-1] += lam
    return regularised


def ridge_solve(G: np.ndarray, B: np.ndarray, lam: float) -> np.ndarray:
    """argmin_W ||A W - Y||^2 + lam ||W[:-1]||^2 from G = A^T A, B = A^T Y: (f+1, c)."""
    return cho_solve(cho_factor(_regularised(G, lam), overwrite_a=True), B)


def preconditioner(G: np.ndarray, lam: float, overwrite: bool = False,
                   block: int = 1024) -> np.ndarray:
    """Upper-triangular R (f+1, f+1) with R^T R = G + lam I' (G = A^T A, as ridge).

    Half the L2-SVM's Hessian is A_S^T A_S + lam I' (S: the rows with slack), bounded by
    G + lam I'; in the variables V = R W that bound is the identity, so L-BFGS no longer
    crawls along the ill-conditioned directions of correlated features.  Costs one
    Cholesky factorisation, f^3 / 3 flops; overwrite: factor G in place.
    """
    R, _ = cho_factor(_regularised(G, lam, overwrite), overwrite_a=True)
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


def top_k_accuracy(score: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Fraction of rows whose label is among the k highest scores."""
    k = min(k, score.shape[1])
    top = np.argpartition(-score, k - 1, axis=1)[:, :k]
    return float((top == np.asarray(labels)[:, None]).any(axis=1).mean())


def _squared_hinge(shards, standardizer: Standardizer, n_classes: int, lam: float):
    """Loss-and-gradient of the one-vs-rest L2-SVM over streamed shards, flat weights.

    shards: a callable returning a fresh iterator of (X, y, rows), as
    ``iter_masked_shards``: rows outside ``rows`` get zero slack, so a subset costs a
    pass over whole shards but no copy of them (copying was slower than the products).
    """
    def loss(flat: np.ndarray) -> tuple[float, np.ndarray]:
        W = flat.reshape(-1, n_classes)
        raw = standardizer.fold(W)
        value, grad_raw = 0.0, np.zeros_like(raw)
        for X, y, rows in shards():
            Y = targets(y, n_classes)
            slack = np.maximum(1 - Y * scores(X, raw), 0)
            if rows is not None:
                slack[~rows] = 0
            value += float(np.square(slack, dtype=np.float64).sum())
            G = -2 * Y * slack  # d loss / d score, (n_s, c)
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
    return loss


def fit_l2svm(shards, standardizer: Standardizer, n_classes: int, lam: float,
              initial: np.ndarray, max_iter: int = 100, R: np.ndarray | None = None,
              held_out=None, patience: int | None = None) -> tuple[np.ndarray, dict]:
    """One-vs-rest L2-SVM by L-BFGS over ``shards()`` (a callable returning a fresh
    iterator of (X, y, rows) each pass, as ``iter_masked_shards``).  initial: (f+1, c)
    standardised weights (e.g. the ridge solution); R: a :func:`preconditioner` (None:
    plain L-BFGS on W).  held_out, patience: early stopping: ``held_out`` (weights
    (f+1, c) -> accuracy) scores every iterate, and the fit stops once ``patience``
    iterations pass without a higher score, returning the best iterate.
    Returns (weights (f+1, c) standardised, summary dict: "n_iter" (of the returned
    iterate), "objective", "message", "converged" (L-BFGS-B's own convergence test
    passed), "stopped_at_limit" (it ran out of iterations first), "iteration_limit";
    with early stopping also "stopped_early" and "held_out_accuracy" of the iterate)."""
    loss = _squared_hinge(shards, standardizer, n_classes, lam)
    start = np.asarray(initial, np.float64)
    if R is not None:
        loss, start = preconditioned(loss, R, n_classes), R @ start

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

    result = minimize(loss, start.ravel(), jac=True, method="L-BFGS-B",
                      options={"maxiter": max_iter, "maxcor": 20},
                      callback=None if patience is None else monitor)
    summary = {"n_iter": int(result.nit), "objective": float(result.fun),
               "message": str(result.message), "converged": bool(result.status == 0),
               "stopped_at_limit": bool(result.status == 1), "iteration_limit": max_iter}
    if patience is None or best["weights"] is None:
        return weights_of(result.x), summary
    summary.update(n_iter=best["iteration"], held_out_accuracy=best["accuracy"],
                   stopped_early=iteration > best["iteration"] and result.status == 99)
    return best["weights"], summary


def held_out_accuracy(shards, standardizer: Standardizer, weights: np.ndarray,
                      n_classes: int) -> list[float]:
    """Accuracy of each of L candidate classifiers, weights (f+1, c * L) on standardised
    features side by side, over the rows of ``shards`` (an iterable of (X, y)): one pass."""
    weights = np.asarray(weights, np.float32)
    n_candidates = weights.shape[1] // n_classes
    correct, n = np.zeros(n_candidates), 0
    for X, y in shards:
        predicted = (standardizer.augment(X) @ weights).reshape(
            len(X), n_candidates, n_classes).argmax(axis=2)
        correct += (predicted == y[:, None]).sum(axis=0)
        n += len(X)
    if n == 0:
        raise ValueError("no held-out rows to score: too few images for the validation "
                         "fraction (raise val_fraction or add images)")
    return (correct / n).tolist()


def validation_masks(groups: Sequence[np.ndarray], fraction: float,
                     random_state: int) -> list[np.ndarray]:
    """Per shard, a boolean mask of the rows held out for validation (seeded).

    groups: per shard, each row's image id (ints >= 0): every row of one image falls
    on the same side, so an image listed twice cannot be both fitted and validated.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"validation fraction must be in (0, 1), got {fraction}")
    groups = [np.asarray(g, np.int64) for g in groups]
    n_groups = max((int(g.max()) + 1 for g in groups if len(g)), default=0)
    held_out = np.random.default_rng(random_state).random(n_groups) < fraction
    return [held_out[g] for g in groups]


def row_groups(labels: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Every row its own group, numbered across shards (rows of distinct images)."""
    offsets = np.cumsum([0] + [len(y) for y in labels])
    return [np.arange(start, stop) for start, stop in zip(offsets[:-1], offsets[1:])]


def _kept(points: list[dict]) -> dict:
    """The point of highest held-out accuracy, the first of equals (list order)."""
    return max(points, key=lambda point: point["validation_accuracy"])


def _public(point: dict) -> dict:
    return {key: value for key, value in point.items() if key != "weights"}


def fit_streamed_classifier(paths: Sequence, labels: Sequence[np.ndarray], n_classes: int,
                            method: str = "l2svm", lam_grid: Sequence[float] = LAM_GRID,
                            val_fraction: float = 0.1, random_state: int = 0, svm_iter: int = 100,
                            log=None, groups: Sequence[np.ndarray] | None = None,
                            svm_path: int = 4, svm_path_iter: int = 30,
                            precondition: bool = True, grid_extension: int = 2,
                            svm_patience: int | None = None,
                            progress=None) -> tuple[np.ndarray, dict]:
    """Fit a one-vs-rest linear classifier over feature shards; memory: one shard + O(f^2).

    paths: feature shard files; labels: per shard, its rows' labels.  A held-out
    ``val_fraction`` of the images (``groups``: per shard, each row's image id, for
    listings with repeated or mirrored images; default: every row a distinct image)
    scores every candidate fitted on the other rows, with ``lam = g * n_fit``: ridge at
    each g of ``lam_grid``; with method "l2svm" also L2-SVMs at ridge's best g and the
    ``svm_path - 1`` smaller grid values in turn, each started from the last
    (``svm_path_iter`` L-BFGS iterations; ``svm_patience``: early stopping, each point
    scored on the held-out rows after every iteration and stopped ``svm_patience``
    iterations past its best, which it keeps).  Where the best ridge (SVM) point sits at an
    end of the values it was chosen among (more than one), up to ``grid_extension`` more
    values past that end are tried (:mod:`~terafeat.classification.model_selection`).
    The candidate of highest held-out accuracy is kept, ridge or SVM (ties: the SVM with
    method "l2svm"), and refitted on all rows: ridge exactly; the SVM started from its
    path point, for up to ``svm_iter`` iterations (early stopping or not: the summary's
    "svm" says whether its convergence test passed).  precondition: each SVM by L-BFGS in the variables of the
    :func:`preconditioner` at its lam (without it the fits stop far from their optimum,
    and the path compares iteration counts as much as regularisers).
    progress: optional ``progress(shards_read)``, called after every shard any pass reads.
    Returns (weights (f + 1, c) on raw features, last row the bias; summary dict: the
    kept "classifier", "lam/n", "lam", every "candidates" point, the "extensions").
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if svm_path < 1:
        raise ValueError(f"svm_path must be >= 1, got {svm_path}")
    if grid_extension < 0:
        raise ValueError(f"grid_extension must be >= 0, got {grid_extension}")
    log = log or (lambda *args: None)
    reads = 0

    def counted(shards):
        nonlocal reads
        for shard in shards:
            yield shard
            reads += 1
            if progress is not None:
                progress(reads)

    mean, std, n = feature_moments(paths)
    standardizer = Standardizer(mean, std)
    held_out = validation_masks(row_groups(labels) if groups is None else groups,
                                val_fraction, random_state)
    fitting = [~mask for mask in held_out]
    G, B, n_fit = gram_statistics(counted(iter_shards(paths, labels, fitting)), standardizer,
                                  n_classes)

    def accuracy(weights: np.ndarray) -> list[float]:
        return held_out_accuracy(counted(iter_shards(paths, labels, held_out)), standardizer,
                                 weights, n_classes)

    ridges = [ridge_solve(G, B, g * n_fit) for g in lam_grid]
    ridge_path = [{"classifier": "ridge", "lam/n": g, "validation_accuracy": value,
                   "weights": weights}
                  for g, value, weights in zip(lam_grid, accuracy(np.hstack(ridges)), ridges)]
    del ridges

    def ridge_point(g: float, _kept: dict) -> dict:
        weights = ridge_solve(G, B, g * n_fit)
        point = {"classifier": "ridge", "lam/n": g, "validation_accuracy": accuracy(weights)[0],
                 "weights": weights, "extension": True}
        log(f"ridge grid extended: lam/n {g:g}: validation accuracy "
            f"{point['validation_accuracy']:.4f}")
        return point

    extensions = {"ridge": extend_at_edge(ridge_path, ridge_point, _kept, lam_grid,
                                          grid_extension if len(lam_grid) > 1 else 0,
                                          "lam/n", "validation_accuracy")}
    best_ridge = _kept(ridge_path)
    for point in ridge_path:  # only the best ridge's weights are needed from here
        if point is not best_ridge:
            del point["weights"]
    log(f"ridge validation accuracy over lam/n {[p['lam/n'] for p in ridge_path]}: "
        + ", ".join(f"{p['validation_accuracy']:.4f}" for p in ridge_path)
        + f" -> lam/n {best_ridge['lam/n']}")
    summary = {"method": method, "n_train": n, "n_validation": int(sum(m.sum() for m in held_out)),
               "lam_grid": [p["lam/n"] for p in ridge_path],
               "validation_accuracy": [p["validation_accuracy"] for p in ridge_path],
               "feature_dim": int(len(mean)), "extensions": extensions}
    svm_points = []
    if method == "l2svm":
        def svm_point(g: float, start: dict) -> dict:
            weights, svm = fit_l2svm(lambda: counted(iter_masked_shards(paths, labels, fitting)),
                                     standardizer, n_classes, g * n_fit, start["weights"],
                                     svm_path_iter,
                                     R=preconditioner(G, g * n_fit) if precondition else None,
                                     held_out=lambda W: accuracy(W)[0], patience=svm_patience)
            score = svm["held_out_accuracy"] if "held_out_accuracy" in svm else accuracy(weights)[0]
            point = {"classifier": "l2svm", "lam/n": g, "validation_accuracy": score,
                     "n_iter": svm["n_iter"], "converged": svm["converged"], "weights": weights}
            log(f"L2-SVM path: lam/n {g}: validation accuracy {point['validation_accuracy']:.4f} "
                f"({svm['n_iter']} L-BFGS iterations)")
            return point

        start = best_ridge
        for g in sorted((g for g in summary["lam_grid"] if g <= best_ridge["lam/n"]),
                        reverse=True)[:svm_path]:
            start = svm_point(g, start)
            svm_points.append(start)
        extensions["l2svm"] = extend_at_edge(
            svm_points, lambda g, kept: {**svm_point(g, kept), "extension": True}, _kept,
            summary["lam_grid"], grid_extension if svm_path > 1 else 0, "lam/n",
            "validation_accuracy")
    for family, extension in extensions.items():
        if extension["added"]:
            log(f"{family}: the held-out choice sat at an end of its grid; tried lam/n "
                f"{extension['added']}" + (f", still at the {extension['at_edge']} end"
                                           if extension["at_edge"] else ""))
    kept = _kept(svm_points + ridge_path)  # ties: the SVM's
    summary["candidates"] = [_public(point) for point in ridge_path + svm_points]
    summary.update({"classifier": kept["classifier"], "lam/n": kept["lam/n"],
                    "lam": kept["lam/n"] * n})
    if svm_points:
        summary["svm_path"] = [_public(point) for point in svm_points]
    log(f"kept: {kept['classifier']} at lam/n {kept['lam/n']} (validation accuracy "
        f"{kept['validation_accuracy']:.4f}, best of {len(summary['candidates'])} candidates)")
    del ridge_path, svm_points
    G_val, B_val, _ = gram_statistics(counted(iter_shards(paths, labels, held_out)), standardizer,
                                      n_classes)
    G += G_val
    B += B_val
    del G_val
    if kept["classifier"] == "ridge":
        return standardizer.fold(ridge_solve(G, B, summary["lam"])), summary
    R = preconditioner(G, summary["lam"], overwrite=True) if precondition else None
    G = None  # only R is needed from here
    weights, svm = fit_l2svm(lambda: counted(iter_masked_shards(paths, labels)), standardizer,
                             n_classes, summary["lam"], kept["weights"], svm_iter, R=R)
    log(f"L2-SVM at lam/n {kept['lam/n']} on all rows: {svm['n_iter']} L-BFGS iterations, "
        f"objective {svm['objective']:.6g} ({svm['message']})")
    if not svm["converged"]:
        log("L2-SVM on all rows did NOT converge: " + (
            f"stopped at its iteration limit ({svm_iter} iterations)" if svm["stopped_at_limit"]
            else f"stopped early ({svm['message']})") + " before its convergence test passed")
    summary["svm"] = svm
    return standardizer.fold(weights), summary


def top_confusions(labels: np.ndarray, predicted: np.ndarray, n: int = 20) -> list[dict]:
    """The ``n`` most frequent (true, predicted) pairs with true != predicted, by count."""
    wrong = labels != predicted
    pairs, counts = np.unique(np.stack([labels[wrong], predicted[wrong]]), axis=1,
                              return_counts=True)
    order = np.argsort(-counts, kind="stable")[:n]
    return [{"true": int(pairs[0, i]), "predicted": int(pairs[1, i]), "count": int(counts[i])}
            for i in order]


def evaluate_streamed(paths: Sequence, labels: Sequence[np.ndarray], weights_raw: np.ndarray,
                      top_k: int = 5, groups: Sequence[np.ndarray] | None = None
                      ) -> tuple[np.ndarray, np.ndarray, dict]:
    """Score feature shards with folded weights (f+1, c): (labels (n,), predicted (n,),
    {"top1", "top<k>", "mean_class_accuracy", "n"}) per image.  groups: per shard, each
    row's image id; rows of one image (e.g. it and its mirror image) are scored by their
    summed scores (the mean's ranking; default: every row its own image).  Memory: the (n, c) scores."""
    truth, score = [], []
    for X, y in iter_shards(paths, labels):
        truth.append(y)
        score.append(scores(X, weights_raw))
    truth, score = np.concatenate(truth), np.concatenate(score)
    if groups is not None:
        images, first, index = np.unique(np.concatenate(groups), return_index=True,
                                         return_inverse=True)
        if len(index) != len(truth):
            raise ValueError(f"{len(index)} image ids for {len(truth)} scored rows")
        summed = np.zeros((len(images), score.shape[1]), np.float64)
        np.add.at(summed, index, score)
        truth, score = truth[first], summed
    predicted = score.argmax(axis=1)
    return truth, predicted, {"top1": float((truth == predicted).mean()),
                              f"top{top_k}": top_k_accuracy(score, truth, top_k),
                              "mean_class_accuracy": mean_class_accuracy(truth, predicted),
                              "n": int(len(truth))}


def mean_class_accuracy(labels: np.ndarray, predicted: np.ndarray) -> float:
    """Top-1 accuracy of each class present in ``labels`` (n,), averaged over the classes
    (Caltech-101's measure: every class counts the same, however many images it has)."""
    classes, index = np.unique(labels, return_inverse=True)
    correct = np.bincount(index, weights=labels == predicted, minlength=len(classes))
    return float(np.mean(correct / np.bincount(index, minlength=len(classes))))
