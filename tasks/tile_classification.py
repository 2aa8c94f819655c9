"""Stage: the streamed classifier of every feature set, trained on training tiles (and
their dihedral copies), scored on the test tiles: per tile averaged over its 8 dihedral
copies and on the original alone, and per copy (the invariance check)."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
from prefect import task

from tasks.image_classification import fit_feature_set, stored_arrays
from tasks.logs import stage_logger
from terafeat.atomic_files import save_array
from terafeat.classification.roc import accuracy_per_transform, tile_metrics
from terafeat.classification.scoring import streamed_scores
from terafeat.encoding.sharded import kept_path
from terafeat.media.dihedral import NAMES

#: The two ways a test tile is scored: its 8 dihedral copies' summed scores, or its own.
SCORINGS = ("averaged", "original")


@task(name="classify-tiles")
def classify_tiles(*, encoded: dict, tiles: dict, run_dir: str, classifier: str,
                   penalty_grid: list[float], val_fraction: float, svm_iter: int, seed: int,
                   svm_path: int = 4, svm_path_iter: int = 30, grid_extension: int = 0,
                   svm_patience: int | None = 5, gram_precision: str = "float32",
                   test_time_average: bool = True) -> dict:
    """Per feature set of ``encoded`` (``encode-image-shards``): ``fit_feature_set`` on the
    training rows (a tile's copies held out together), then ``roc.tile_metrics`` of the test
    tiles scored both ways (``SCORINGS``); the headline metrics are "averaged" with
    ``test_time_average``, else "original".

    Writes ``predictions/<set>.npy`` (n_test, 3): tile row in ``tiles.csv``, predicted
    label, class-1 margin (headline scoring; NaN for more than two classes).  Returns
    {"metrics": {set: headline metrics + "scorings" {scoring: metrics}, "fit" (the
    classifier's summary), "n_features", "seconds"}, "invariance": {set: {dihedral
    element name: accuracy of the copies under it}}, "predictions": {set: path}}.
    """
    logger = stage_logger()
    listing = pd.read_csv(tiles["listing"], usecols=["tile", "dihedral"])
    n_classes = len(tiles["classes"])
    headline = SCORINGS[0] if test_time_average else SCORINGS[1]
    metrics, invariance, predictions = {}, {}, {}
    for name in encoded["shards"]:
        started = time.perf_counter()
        weights, fit = fit_feature_set(
            encoded, name, n_classes, logger, classifier=classifier, penalty_grid=penalty_grid,
            val_fraction=val_fraction, svm_iter=svm_iter, seed=seed, svm_path=svm_path,
            svm_path_iter=svm_path_iter, grid_extension=grid_extension,
            svm_patience=svm_patience, gram_precision=gram_precision)
        shards, label_paths = encoded["shards"][name]["test"], encoded["labels"][name]["test"]
        labels, images = stored_arrays(label_paths, "labels"), stored_arrays(label_paths, "images")
        rows = listing.iloc[np.concatenate([np.load(kept_path(path)) for path in shards])]
        elements = rows["dihedral"].to_numpy()
        original = elements == 0
        truth_rows, scores_rows = streamed_scores(shards, labels, weights)
        truth_tiles, scores_tiles = streamed_scores(shards, labels, weights, images)
        truth = {"averaged": truth_tiles, "original": truth_rows[original]}
        scored = {"averaged": scores_tiles, "original": scores_rows[original]}
        by_scoring = {scoring: tile_metrics(truth[scoring], scored[scoring], random_state=seed)
                      for scoring in SCORINGS}
        first_rows = np.unique(np.concatenate(images), return_index=True)[1]
        tile_rows = {"averaged": rows["tile"].to_numpy()[first_rows],
                     "original": rows["tile"].to_numpy()[original]}
        chosen = scored[headline]
        margin = chosen[:, 1] - chosen[:, 0] if n_classes == 2 else np.full(len(chosen), np.nan)
        predictions[name] = str(save_array(
            Path(run_dir) / "predictions" / f"{name}.npy",
            np.column_stack([tile_rows[headline], chosen.argmax(axis=1), margin])))
        invariance[name] = accuracy_per_transform(truth_rows, scores_rows.argmax(axis=1),
                                                  elements, NAMES)
        metrics[name] = {**by_scoring[headline], "scorings": by_scoring, "fit": fit,
                         "n_features": int(fit["feature_dim"]),
                         "seconds": round(time.perf_counter() - started, 3)}
        logger.info("%-12s %6d features, %s kept: test accuracy %.4f, AUC %s (%s; original "
                    "tiles alone: %.4f, %s)", name, fit["feature_dim"], fit["classifier"],
                    metrics[name]["accuracy"], metrics[name].get("roc_auc"), headline,
                    by_scoring["original"]["accuracy"], by_scoring["original"].get("roc_auc"))
    return {"metrics": metrics, "invariance": invariance, "predictions": predictions,
            "headline_scoring": headline}
