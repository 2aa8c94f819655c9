"""A linear classifier fitted over feature shards streamed from disk, its regulariser
chosen on held-out images.

Memory holds one shard plus the (f + 1)^2 Gram matrix (in ``precision``) and one factor,
whatever the number of rows.  Ridge's regulariser is chosen on a
held-out part of the training rows; the L2-SVM's (or softmax's) along a warm-started
path from ridge's choice down (the squared hinge ignores the rows it already separates,
and wants a weaker one); the best held-out candidate is kept and refitted on all rows.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from terafeat.classification.linear_models import (
    fit_lbfgs,
    gram_statistics,
    preconditioner,
    ridge_solve,
)
from terafeat.classification.model_selection import extend_at_edge
from terafeat.classification.scoring import held_out_accuracy
from terafeat.classification.shard_streams import (
    Standardizer,
    feature_moments,
    iter_masked_shards,
    iter_shards,
    row_groups,
    validation_masks,
)

#: Each L-BFGS method and its loss (``linear_models.streamed_loss``).
LBFGS_LOSSES = {"l2svm": "squared_hinge", "softmax": "softmax"}
METHODS = ("ridge", *LBFGS_LOSSES)
NAMES = {"ridge": "ridge", "l2svm": "L2-SVM", "softmax": "softmax"}
PRECISIONS = ("float32", "float64")
#: Regularisers tried, as multiples of the number of training rows.
LAM_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0)


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
                            svm_patience: int | None = 5,
                            progress=None, precision: str = "float32"
                            ) -> tuple[np.ndarray, dict]:
    """Fit a one-vs-rest linear classifier over feature shards; memory: one shard + O(f^2).

    paths: feature shard files; labels: per shard, its rows' labels.  A held-out
    ``val_fraction`` of the images (``groups``: per shard, each row's image id, for
    listings with repeated or mirrored images; default: every row a distinct image)
    scores every candidate fitted on the other rows, with ``lam = g * n_fit``: ridge at
    each g of ``lam_grid``; with method "l2svm" (one-vs-rest squared hinge) or "softmax"
    (multinomial logistic regression) also that L-BFGS classifier at ridge's best g and the
    ``svm_path - 1`` smaller grid values in turn, each started from the last
    (``svm_path_iter`` L-BFGS iterations; ``svm_patience``: early stopping, each point
    scored on the held-out rows after every iteration and stopped ``svm_patience``
    iterations past its best, which it keeps).  Where the best ridge (SVM) point sits at an
    end of the values it was chosen among (more than one), up to ``grid_extension`` more
    values past that end are tried (:mod:`~terafeat.classification.model_selection`).
    The candidate of highest held-out accuracy is kept, ridge or L-BFGS (ties: the
    L-BFGS classifier's), and refitted on all rows: ridge exactly; the other started from its
    path point, for up to ``svm_iter`` iterations (early stopping or not: the summary's
    "svm" says whether its convergence test passed).  precondition: the L-BFGS fits in the
    variables of one :func:`preconditioner`, factored once at ridge's choice of lam on the
    fitting rows (scaled by sqrt(n / n_fit) for all rows): G + lam I' bounds the Hessians
    at the path's smaller penalties within their ratio, so one f^3 / 3 factorisation
    serves every point (without it the fits stop far from their optimum, and the path
    compares iteration counts as much as regularisers).
    progress: optional ``progress(shards_read)``, called after every shard any pass reads.
    precision: dtype of the Gram matrix and ridge's Cholesky factors ("float32": half the
    memory and the factorisation time of "float64"; the entries are float32 products
    either way); the L-BFGS preconditioner is float64 either way.
    Returns (weights (f + 1, c) on raw features, last row the bias; summary dict: the
    kept "classifier", "lam/n", "lam", every "candidates" point, the "extensions").
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
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
                                  n_classes, precision)

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
    svm_points, R = [], None
    if method in LBFGS_LOSSES:
        if precondition:  # one factor for the whole path (see precondition above)
            R = preconditioner(G, best_ridge["lam/n"] * n_fit)

        def svm_point(g: float, start: dict) -> dict:
            weights, svm = fit_lbfgs(lambda: counted(iter_masked_shards(paths, labels, fitting)),
                                     standardizer, n_classes, g * n_fit, start["weights"],
                                     svm_path_iter, R=R,
                                     held_out=lambda W: accuracy(W)[0], patience=svm_patience,
                                     loss=LBFGS_LOSSES[method])
            score = svm["held_out_accuracy"] if "held_out_accuracy" in svm else accuracy(weights)[0]
            point = {"classifier": method, "lam/n": g, "validation_accuracy": score,
                     "n_iter": svm["n_iter"], "converged": svm["converged"], "weights": weights}
            log(f"{NAMES[method]} path: lam/n {g}: validation accuracy "
                f"{point['validation_accuracy']:.4f} ({svm['n_iter']} L-BFGS iterations)")
            return point

        start = best_ridge
        for g in sorted((g for g in summary["lam_grid"] if g <= best_ridge["lam/n"]),
                        reverse=True)[:svm_path]:
            start = svm_point(g, start)
            svm_points.append(start)
        extensions[method] = extend_at_edge(
            svm_points, lambda g, kept: {**svm_point(g, kept), "extension": True}, _kept,
            summary["lam_grid"], grid_extension if svm_path > 1 else 0, "lam/n",
            "validation_accuracy")
    for family, extension in extensions.items():
        if extension["added"]:
            log(f"{family}: the held-out choice sat at an end of its grid; tried lam/n "
                f"{extension['added']}" + (f", still at the {extension['at_edge']} end"
                                           if extension["at_edge"] else ""))
    kept = _kept(svm_points + ridge_path)  # ties: the L-BFGS classifier's
    summary["candidates"] = [_public(point) for point in ridge_path + svm_points]
    summary.update({"classifier": kept["classifier"], "lam/n": kept["lam/n"],
                    "lam": kept["lam/n"] * n})
    if svm_points:
        summary["svm_path"] = [_public(point) for point in svm_points]
    log(f"kept: {kept['classifier']} at lam/n {kept['lam/n']} (validation accuracy "
        f"{kept['validation_accuracy']:.4f}, best of {len(summary['candidates'])} candidates)")
    del ridge_path, svm_points
    if kept["classifier"] == "ridge":
        G_val, B_val, _ = gram_statistics(counted(iter_shards(paths, labels, held_out)),
                                          standardizer, n_classes, precision)
        G += G_val
        B += B_val
        del G_val
        return standardizer.fold(ridge_solve(G, B, summary["lam"])), summary
    G = None  # only R is needed from here
    if R is not None:  # all rows: the Gram matrix grows about as the rows do
        R *= np.sqrt(n / n_fit)
    weights, svm = fit_lbfgs(lambda: counted(iter_masked_shards(paths, labels)), standardizer,
                             n_classes, summary["lam"], kept["weights"], svm_iter, R=R,
                             loss=LBFGS_LOSSES[kept["classifier"]])
    log(f"{NAMES[kept['classifier']]} at lam/n {kept['lam/n']} on all rows: {svm['n_iter']} L-BFGS "
        f"iterations, objective {svm['objective']:.6g} ({svm['message']})")
    if not svm["converged"]:
        log(f"{NAMES[kept['classifier']]} on all rows did NOT converge: " + (
            f"stopped at its iteration limit ({svm_iter} iterations)" if svm["stopped_at_limit"]
            else f"stopped early ({svm['message']})") + " before its convergence test passed")
    summary["svm"] = svm
    return standardizer.fold(weights), summary
