"""Stage: write the histology run's report."""
from __future__ import annotations

import numpy as np
from prefect import task

from reporting.pages.histology import histology_report
from tasks.logs import stage_logger
from tasks.tiles import load_tile_table
from tasks.whitening import load_whitener
from terafeat.atomic_files import load_array
from terafeat.datasets.tile_tables import iter_tile_batches
from terafeat.media.colour import filters_for_display

#: Example tiles shown per group.
N_EXAMPLES = 8


def example_tiles(tiles_path: str, predictions_path: str, class_names: list[str],
                  n_examples: int = N_EXAMPLES) -> dict[str, np.ndarray]:
    """Test tiles per (true, predicted) outcome, the most confident (class-1 margin
    farthest from 0) first.

    predictions: (n, 3) rows of ``tiles.csv``, predicted label, class-1 margin.
    Returns "true <a>, predicted <b>" -> tiles (<= n_examples, h, w, 3).
    """
    table = load_tile_table(tiles_path)
    predictions = load_array(predictions_path)
    rows, predicted = predictions[:, 0].astype(np.int64), predictions[:, 1].astype(np.int64)
    confidence = np.abs(np.nan_to_num(predictions[:, 2], nan=0.0))
    truth = table["label"].to_numpy()[rows]
    examples = {}
    for true_label, name in enumerate(class_names):
        for guess, guess_name in enumerate(class_names):
            chosen = np.flatnonzero((truth == true_label) & (predicted == guess))
            chosen = rows[chosen[np.argsort(-confidence[chosen])][:n_examples]]
            tiles = [batch for _, batch, _ in iter_tile_batches(table.loc[chosen], n_examples)]
            examples[f"true {name}, predicted {guess_name}"] = (
                np.concatenate(tiles) if tiles else np.empty((0, 1, 1, 3)))
    return examples


@task(name="write-histology-report")
def write_histology_report(*, run_dir: str, results: dict, W_path: str, objective_path: str,
                           whitener_path: str, tiles_path: str, class_names: list[str]) -> str:
    """``index.html``, ``results.json`` and figures under ``run_dir``; returns the page's
    path.  Filters are shown in the colour space's pixels (``filters_for_display``)."""
    parameters = results["parameters"]
    pixel_filters = load_array(W_path) @ load_whitener(whitener_path).dewhitening_
    filters, patch_shape = filters_for_display(pixel_filters, parameters["patch_size"],
                                               parameters["colour_mode"])
    examples = example_tiles(tiles_path, results["classification"]["predictions"]["rica"],
                             class_names)
    page = histology_report(run_dir, results, filters, patch_shape, examples, class_names,
                            load_array(objective_path))
    stage_logger().info("report: %s", page)
    return str(page)
