"""Figures and the HTML page of a quickstart run."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from reporting.toolkit import (
    from_cache,
    resumed,
    run_sections,
    save_bar_plot,
    save_image,
    save_line_plot,
    tile_filters,
    write_html_report,
)
from terafeat.atomic_files import save_json


def quickstart_report(run_dir, results: dict, W: np.ndarray, objective: np.ndarray,
                      patch_shape: tuple[int, ...]) -> Path:
    """Figures, ``results.json`` and ``index.html`` of a quickstart run.

    results: the run's numbers (``parameters``, ``training``, ``evaluation``,
    ``timings``); W: (k, d) filters; objective: (iterations + 1,) curve.
    Returns the path of ``index.html``.
    """
    run = Path(run_dir)
    filters = save_image(run / "filters.png", tile_filters(W, patch_shape), scale=4)
    gap = objective - objective.min()
    curve = save_line_plot(run / "objective.png", {"J(W) - final J": np.where(gap > 0, gap, np.nan)},
                           "L-BFGS iteration", "J(W) - min J (log scale)",
                           f"Training objective (final J = {objective.min():.6g})", logy=True)
    accuracy = results["evaluation"]["accuracy"]
    bars = save_bar_plot(run / "accuracy.png", {k: v["mean"] for k, v in accuracy.items()},
                         {k: v["std"] for k, v in accuracy.items()}, "accuracy",
                         f"Faces vs non-faces ({len(next(iter(accuracy.values()))['folds'])}-fold CV)")
    accuracy_rows = [{"features": name, "dimensions": v["n_features"], "accuracy": v["mean"],
                      "std": v["std"]} for name, v in accuracy.items()]
    training = results["training"]
    save_json(run / "results.json", results)
    return write_html_report(run / "index.html", "terafeat quickstart: RICA on natural images", [
        ("Learned filters", [
            f"{W.shape[0]} RICA features of {patch_shape[0]}x{patch_shape[1]} whitened patches "
            f"({W.shape[0] / W.shape[1]:g}x overcomplete), each scaled to its own range.", filters]),
        ("Training", [
            f"{training['n_iter']} L-BFGS iterations in {training['seconds']:.1f} s; objective "
            f"{training['initial_objective']:.5g} -> {training['final_objective']:.5g} "
            f"({training['optimizer_message']}){from_cache(results, 'train-rica')}"
            f"{resumed(training)}.", curve]),
        ("Are the features useful?", [
            "Face / non-face classification of scikit-image's lfw_subset (25x25, 100 + 100) "
            "with a linear classifier (standardised logistic regression, C chosen inside each "
            "training fold), cross-validated. This check has no published counterpart: "
            "the papers' numbers are the histology and action-recognition flows'.",
            accuracy_rows, bars]),
        *run_sections(results),
    ])
