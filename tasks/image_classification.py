"""Stage: linear classifiers over the feature shards, scored on the test split."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from prefect import task

from tasks.logs import report_progress, stage_logger
from terafeat.atomic_files import save_array
from terafeat.classification.scoring import (
    evaluate_streamed,
    top_confusions,
)
from terafeat.classification.streamed import fit_streamed_classifier

#: Up to this many classes the report shows the full confusion matrix.
MAX_CONFUSION_CLASSES = 20
NAMES = {"rica": "RICA (learned)", "pixels": "raw pixels"}


def stored_arrays(paths: list[str], key: str) -> list[np.ndarray]:
    """Array ``key`` ("labels", or "images": listing image ids) of each shard's .npz."""
    arrays = []
    for path in paths:
        with np.load(path) as stored:
            arrays.append(stored[key])
    return arrays


def fit_feature_set(encoded: dict, name: str, n_classes: int, logger, *, classifier: str,
                    penalty_grid: list[float], val_fraction: float, svm_iter: int, seed: int,
                    svm_path: int, svm_path_iter: int, grid_extension: int,
                    svm_patience: int | None, gram_precision: str = "float32"
                    ) -> tuple[np.ndarray, dict]:
    """``fit_streamed_classifier`` on feature set ``name``'s training shards of an
    ``encode-image-shards`` result, the rows of one image held out together: (weights
    (f + 1, c) on raw features, the fit's summary)."""
    shards, labels = encoded["shards"][name], encoded["labels"][name]
    return fit_streamed_classifier(
        shards["train"], stored_arrays(labels["train"], "labels"), n_classes, classifier,
        penalty_grid, val_fraction, seed, svm_iter,
        log=lambda line: logger.info("%s: %s", name, line),
        groups=stored_arrays(labels["train"], "images"), svm_path=svm_path,
        svm_path_iter=svm_path_iter, grid_extension=grid_extension, svm_patience=svm_patience,
        precision=gram_precision,
        progress=lambda reads: report_progress(f"classify {name} (shards read)", reads, None))


@task(name="classify-images")
def classify_images(*, encoded: dict, n_classes: int, run_dir: str, classifier: str,
                    penalty_grid: list[float], val_fraction: float, svm_iter: int, seed: int,
                    svm_path: int = 4, svm_path_iter: int = 30, grid_extension: int = 0,
                    svm_patience: int | None = 5, gram_precision: str = "float32") -> dict:
    """Per feature set: fit on the training shards, score the test shards (per image:
    the rows of one image, e.g. it and its mirror image, by their mean scores).

    Returns {set: {"top1", "top5", "mean_class_accuracy", "n", "seconds", "fit": summary,
    "confusion_matrix" (<= 20 classes) or "top_confusions", "predictions": path of (n, 2)
    true / predicted}}.
    """
    logger = stage_logger()
    results = {}
    for name in encoded["shards"]:
        started = time.perf_counter()
        shards, labels = encoded["shards"][name], encoded["labels"][name]
        weights, fit = fit_feature_set(
            encoded, name, n_classes, logger, classifier=classifier, penalty_grid=penalty_grid,
            val_fraction=val_fraction, svm_iter=svm_iter, seed=seed, svm_path=svm_path,
            svm_path_iter=svm_path_iter, grid_extension=grid_extension,
            svm_patience=svm_patience, gram_precision=gram_precision)
        truth, predicted, metrics = evaluate_streamed(
            shards["test"], stored_arrays(labels["test"], "labels"), weights,
            groups=stored_arrays(labels["test"], "images"))
        metrics.update(seconds=time.perf_counter() - started, fit=fit,
                       predictions=str(save_array(Path(run_dir) / f"predictions-{name}.npy",
                                                  np.stack([truth, predicted], axis=1))))
        if n_classes <= MAX_CONFUSION_CLASSES:
            confusion = np.zeros((n_classes, n_classes), np.int64)
            np.add.at(confusion, (truth, predicted), 1)
            metrics["confusion_matrix"] = confusion.tolist()
        else:
            metrics["top_confusions"] = top_confusions(truth, predicted)
        logger.info("%s features (%d dims), %s kept: test top-1 %.4f, mean per-class %.4f, "
                    "top-5 %.4f (%.0f s)", NAMES.get(name, name), fit["feature_dim"],
                    fit["classifier"], metrics["top1"], metrics["mean_class_accuracy"],
                    metrics["top5"], metrics["seconds"])
        results[name] = metrics
    return results
