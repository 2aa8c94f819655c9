"""Figures and the HTML page of a histology run."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from reporting.toolkit import (
    adaptation_items,
    from_cache,
    resumed,
    pyplot,
    run_sections,
    save_confusion_plot,
    save_figure,
    save_image,
    save_line_plot,
    tile_filters,
    write_html_report,
)
from terafeat.atomic_files import save_json

#: How the report names the feature sets of a run.
SET_NAMES = {"rica": "RICA (learned)", "kmeans": "k-means filters", "pca": "PCA filters",
             "pixels": "raw pixels", "hand-crafted": "HOG + HSV + LBP"}


def save_roc_plot(path, curves: dict[str, dict]) -> Path:
    """ROC curves, name -> {"fpr": [...], "tpr": [...], "roc_auc": float}, as a PNG."""
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(5, 5), dpi=100)
    for name, curve in curves.items():
        axes.plot(curve["fpr"], curve["tpr"], label=f"{name} (AUC {curve['roc_auc']:.3f})")
    axes.plot([0, 1], [0, 1], color="#999", linestyle=":")
    axes.set(xlabel="false positive rate", ylabel="true positive rate", title="Test ROC curves")
    axes.legend(loc="lower right", fontsize=8)
    return save_figure(path, figure)


def save_invariance_plot(path, invariance: dict[str, dict[str, float]]) -> Path:
    """Test accuracy per transformation (grouped bars), set -> transform -> accuracy."""
    plt = pyplot()
    names = list(invariance)
    transforms = list(invariance[names[0]])
    figure, axes = plt.subplots(figsize=(7, 3.5), dpi=100)
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        values = [invariance[name][t] for t in transforms]
        axes.bar(np.arange(len(transforms)) + (i - (len(names) - 1) / 2) * width, values, width,
                 label=name)
    low = min(v for sets in invariance.values() for v in sets.values())
    axes.set_ylim(max(0.0, low - 0.05), 1.0)
    axes.set_xticks(range(len(transforms)), transforms, rotation=30, fontsize=8)
    axes.set(ylabel="test accuracy",
             title="Test tiles rotated / flipped, each copy alone")
    axes.legend(fontsize=8)
    return save_figure(path, figure)


def example_grid(groups: dict[str, np.ndarray], border: int = 4) -> np.ndarray:
    """Rows of tiles, one row per group (name -> (n, h, w, 3) in [0, 1]), white borders.

    Returns (rows * (h + border) + border, columns * (w + border) + border, 3).
    """
    shapes = {tiles.shape[1:] for tiles in groups.values() if len(tiles)}
    (h, w, _), = shapes
    columns = max(len(tiles) for tiles in groups.values())
    grid = np.ones((len(groups) * (h + border) + border, columns * (w + border) + border, 3))
    for r, tiles in enumerate(groups.values()):
        for c, tile in enumerate(tiles):
            top, left = border + r * (h + border), border + c * (w + border)
            grid[top:top + h, left:left + w] = tile
    return grid


def histology_report(run_dir, results: dict, filters: np.ndarray, patch_shape: tuple,
                     examples: dict[str, np.ndarray], class_names: list[str],
                     objective: np.ndarray) -> Path:
    """Figures, ``results.json`` and ``index.html`` of a histology run.

    results: the run's numbers ("parameters", "tiles", "training",
    "encoding", "classification", "timings", "unreadable_tiles");
    filters: (k, d') learned filters as displayed (``colour.filters_for_display``)
    of ``patch_shape``; examples: group name -> tiles (n, h, w, 3);
    objective: (iterations + 1,) RICA objective.  Returns the page's path.
    """
    run = Path(run_dir)
    classification = results["classification"]
    metrics = classification["metrics"]
    encoding = results["encoding"]
    figures = {
        "filters": save_image(run / "filters.png", tile_filters(filters, patch_shape), scale=4),
        "objective": save_line_plot(run / "objective.png", {"RICA objective": objective},
                                    "L-BFGS iteration", "J(W)", "Training objective"),
        "confusion": save_confusion_plot(run / "confusion.png",
                                         metrics["rica"]["confusion_matrix"], class_names,
                                         "RICA features, test tiles"),
        "invariance": save_invariance_plot(run / "invariance.png", classification["invariance"]),
    }
    curves = {SET_NAMES.get(name, name): {**m["roc_curve"], "roc_auc": m["roc_auc"]}
              for name, m in metrics.items() if "roc_curve" in m}
    roc = [save_roc_plot(run / "roc.png", curves)] if curves else []
    example_items = []
    if any(len(tiles) for tiles in examples.values()):
        example_items = [f"Rows, top to bottom: {', '.join(examples)}.",
                         save_image(run / "examples.png", example_grid(examples), scale=1)]
    other = "original" if classification["headline_scoring"] == "averaged" else "averaged"

    def interval(m: dict) -> str:
        return "" if "roc_auc_ci" not in m else "{:.4f} - {:.4f}".format(*m["roc_auc_ci"])

    rows = [{"features": SET_NAMES.get(name, name), "dimensions": m["n_features"],
             "classifier kept": m["fit"]["classifier"], "lam/n": m["fit"]["lam/n"],
             "accuracy": m["accuracy"], "mean per-class accuracy": m["balanced_accuracy"],
             "ROC AUC": m.get("roc_auc", float("nan")), "AUC 95% interval": interval(m),
             f"accuracy ({other})": m["scorings"][other]["accuracy"],
             f"ROC AUC ({other})": m["scorings"][other].get("roc_auc", float("nan")),
             "seconds (classify)": m["seconds"],
             "seconds (encode)": round(encoding["seconds"][name], 1)}
            for name, m in metrics.items()]
    invariance_rows = [{"features": SET_NAMES.get(name, name), **by_transform}
                       for name, by_transform in classification["invariance"].items()]
    unreadable = [{"tile": path, "problem": problem}
                  for path, problem in results["unreadable_tiles"]]
    save_json(run / "results.json", results)
    parameters = results["parameters"]
    title = "terafeat histology: single-layer features of H&E tiles"
    layout = ("the centre cell of a 3x3 grid and its surround"
              if parameters["layout"] == "centre_surround"
              else f"a {parameters['grid']}x{parameters['grid']} grid")
    return write_html_report(run / "index.html", title, [
        ("Tiles", [f"Data set {parameters['dataset']} at {parameters['data_root']}: tiles "
                   "listed per split and class; each training tile is encoded in "
                   f"{parameters['dihedral_train']} of its 8 rotations / flips, each test "
                   "tile in all 8.",
                   [{"split": split, **{class_names[int(label)]: n for label, n in counts.items()}}
                    for split, counts in results["tiles"]["counts"].items()],
                   *([f"Test tiles from {parameters['test_root']} (test_root)."]
                     if parameters.get("test_root") else []),
                   *[f"Split {split!r}: {n} tiles found and not used"
                     + (" (test_split=valid scores them)." if split == "valid" else ".")
                     for split, n in results["tiles"].get("unused_splits", {}).items()],
                   *adaptation_items(encoding.get("adaptations"),
                                     f"RGB, resized to {parameters['image_size']}px")]),
        ("Learned colour filters", [
            f"{filters.shape[0]} RICA filters of {'x'.join(map(str, patch_shape))} "
            f"{parameters['colour_mode']} patches (shown in the colour space's pixels), "
            "trained on contrast-normalised, whitened patches of training tiles only; each "
            f"scaled to its own range{from_cache(results, 'train-rica')}{resumed(results['training'])}.",
            figures["filters"], figures["objective"]]),
        ("Test metrics beside the peers", [
            "One pipeline for every feature set: the same convolutional encoder "
            f"({parameters['nonlinearity']} units, {parameters['pooling']}-pooled over {layout}) "
            "for the RICA, k-means and PCA filter banks, then the same streamed classifier "
            "(penalty chosen on held-out training tiles) for them and the pixel and "
            f"hand-crafted peers. Headline scoring: {classification['headline_scoring']} "
            "(averaged: the summed scores of a tile's 8 rotations / flips; original: the tile "
            f"alone). AUC interval: bootstrap of the test tiles{from_cache(results, 'encode-image-shards')}.",
            rows,
            "Published numbers are on other data: Le et al. (ISBI 2012) classify regions of "
            "TCGA glioblastoma (GBM) and kidney clear cell carcinoma (KIRC) sections; the "
            "group's follow-up (ISBI 2013) reports 84% accuracy (GBM, 3 classes) and 81% (KIRC) "
            "on 1000x1000 blocks. No published number exists for these tiles with these features.",
            *roc, figures["confusion"]]),
        ("Invariance: rotated and flipped test tiles", [
            "Test accuracy of each rotation / flip of the test tiles, each copy scored alone.",
            invariance_rows, figures["invariance"]]),
        ("Examples (RICA features)", example_items or ["no test tiles"]),
        ("Unreadable tiles (skipped)", [unreadable] if unreadable else ["none"]),
        *run_sections(results),
    ])
