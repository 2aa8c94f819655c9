"""Figures and the HTML page of a quickstart run."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from reporting.toolkit import (
    from_cache,
    resumed,
    run_sections,
    save_bar_plot,
    save_grouped_bar_plot,
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
    invariance = results["invariance"]
    invariance_bars = save_grouped_bar_plot(
        run / "invariance.png", invariance["scores"], "invariance score (top units)",
        "Invariance of units (Goodfellow et al. 2009)")
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
        ("Which units are invariant?", [invariance_rows(invariance), invariance_bars,
                                        *invariance_text(invariance)]),
        *run_sections(results),
    ])


def invariance_rows(invariance: dict) -> list[dict]:
    """One row per set of units: its score per transformation."""
    return [{"units": name, **scores}
            for name, scores in invariance["scores"].items()]


def order_rows(invariance: dict) -> list[dict]:
    """One row per transformation: whether each predicted relation holds ("yes" / "no")."""
    return [{"transformation": transformation,
             **{f"{claim} (predicted)": "yes" if holds else "no" for claim, holds in order.items()}}
            for transformation, order in invariance["order"].items()]


def invariance_text(invariance: dict) -> list[str]:
    """What the invariance check measures, and whether the predicted order holds."""
    settings = invariance["settings"]
    failed = [f"{claim} under {transformation}"
              for transformation, order in invariance["order"].items()
              for claim, holds in order.items() if not holds]
    return [
        f"The invariance score of Goodfellow, Le, Saxe, Lee and Ng (NIPS 2009) on "
        f"{settings['n_trajectories']} patches of the bundled images (not the training draw), "
        f"each translated by {settings['shifts']} pixels along both axes and rotated by "
        f"+-{settings['angles']} degrees: a unit's threshold makes it fire on "
        f"{settings['firing_rate']:g} of the untransformed patches, and its score is how "
        f"often it still fires on the transformed copies of those, over that rate "
        f"(1 / {settings['firing_rate']:g} = {1 / settings['firing_rate']:g} for a perfectly "
        f"invariant unit, about 1 for one whose response is unrelated). A set's score is the "
        f"mean of its top {settings['top_units']:.0%} of units. Units: PCA (|response| of the "
        f"leading PCA-whitening filters), RICA simple (|Wx|), RICA pooled (groups of "
        f"consecutive simple units, L2-pooled; this RICA trains without pooling in its "
        f"sparsity term, so the groups are not learned subspaces).",
        "Predicted (papers.md: deeper, pooled units score higher): RICA pooled above RICA "
        "simple and above PCA. Measured: " + (
            "the predicted order holds under every transformation." if not failed else
            "the predicted order does NOT hold for " + "; ".join(failed) + "."),
        order_rows(invariance)]
