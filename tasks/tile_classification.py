"""Stage: one linear classifier per feature set, trained on training tiles, scored on test tiles."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from prefect import task

from tasks.logs import stage_logger
from tasks.tile_features import FEATURE_SETS, INVARIANCE_SETS, load_feature_shards
from tasks.tiles import load_tile_table
from terafeat.atomic_files import save_array
from terafeat.classification.protocols import (
    chosen_C,
    classification_metrics,
    fit_linear_classifier,
    predict_scores,
)
from terafeat.encoding.tile_features import TRANSFORMS


@task(name="classify-tiles")
def classify_tiles(*, features: dict, tiles_path: str, run_dir: str, C_grid: list[float],
                   inner_folds: int, seed: int, classifier: str = "logistic",
                   grid_extension: int = 0) -> dict:
    """Standardised linear ``classifier`` per feature set (``protocols.linear_classifier``:
    "logistic" or "linear_svm"), C from ``C_grid`` by ``inner_folds``-fold CV on
    the training split only (``grid_extension``: at most this many Cs past the end of
    ``C_grid`` where the choice sits at it); metrics on the test split (and on its transformed copies
    for the learned sets: the invariance check).

    Writes ``predictions/<set>.npy`` (n_test, 3): tile row, predicted label, class-1 score
    (probability, or SVM decision value; NaN for more than two classes).  Returns
    {"metrics": {set: metrics + "C", "C_path" (every C tried, its CV score),
    "C_at_edge", "converged" (the final fit), "n_features", "seconds"},
    "invariance": {set: {"original" | transform: {"accuracy", "roc_auc"}}},
    "predictions": {set: path}}.
    """
    logger = stage_logger()
    labels = load_tile_table(tiles_path)["label"].to_numpy()
    folder = features["features_dir"]
    metrics, invariance, predictions = {}, {}, {}
    for name, slug in FEATURE_SETS.items():
        started = time.perf_counter()
        train, train_rows = load_feature_shards(folder, name, "train")
        model, selection = fit_linear_classifier(train, labels[train_rows], inner_folds, C_grid,
                                                 seed, classifier, grid_extension=grid_extension)
        test, test_rows = load_feature_shards(folder, name, "test")
        predicted, scores = predict_scores(model, test)
        many = len(model.classes_) > 5  # top-5 from every class's decision value
        metrics[name] = {**classification_metrics(
                             labels[test_rows], predicted, scores,
                             model.decision_function(test) if many else None, model.classes_),
                         "C": chosen_C(model), "C_path": selection["path"],
                         "C_at_edge": selection["at_edge"], "converged": selection["converged"],
                         "n_features": int(train.shape[1]),
                         "seconds": round(time.perf_counter() - started, 3)}
        predictions[name] = str(save_array(
            Path(run_dir) / "predictions" / f"{slug}.npy",
            _prediction_table(test_rows, predicted, scores)))
        logger.info("%-16s %5d features, C=%g: accuracy %.4f, AUC %s", name, train.shape[1],
                    metrics[name]["C"], metrics[name]["accuracy"], metrics[name].get("roc_auc"))
        if not selection["converged"]:
            logger.warning("%s: the %s fit on all training tiles did NOT converge (stopped at "
                           "its iteration limit)", name, classifier)
        if selection["added"]:
            logger.info("%s: C chosen at an end of C_grid; also tried C=%s%s", name,
                        selection["added"], f", still at the {selection['at_edge']} end"
                        if selection["at_edge"] else "")
        if name in INVARIANCE_SETS:
            invariance[name] = {"original": _summary(metrics[name])}
            for transform in TRANSFORMS:
                moved, moved_rows = load_feature_shards(folder, name, f"test-{transform}")
                invariance[name][transform] = _summary(
                    classification_metrics(labels[moved_rows], *predict_scores(model, moved)))
    return {"metrics": metrics, "invariance": invariance, "predictions": predictions}


def _summary(metrics: dict) -> dict:
    return {"accuracy": metrics["accuracy"], "roc_auc": metrics.get("roc_auc")}


def _prediction_table(rows: np.ndarray, predicted: np.ndarray,
                      scores: np.ndarray | None) -> np.ndarray:
    return np.column_stack([rows, predicted, np.full(len(rows), np.nan) if scores is None
                            else scores]).astype(np.float64)
