"""Figures and the HTML page of a histology run (issue #5)."""
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

#: How the report names the flow's ``classifier`` parameter.
CLASSIFIER_NAMES = {"logistic": "L2 logistic regression", "linear_svm": "linear SVM"}


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


def simple_units(parameters: dict) -> str:
    """How the report names the unpooled units of a run's ``parameters``."""
    if parameters.get("simple_units", "abs") == "abs":
        return "|Wx|"
    return f"max(Wx - {parameters['alpha']:g}, 0) and max(-Wx - {parameters['alpha']:g}, 0)"


def save_invariance_plot(path, invariance: dict[str, dict[str, dict]]) -> Path:
    """Test accuracy per transformation (grouped bars), set -> transform -> {"accuracy"}."""
    plt = pyplot()
    names = list(invariance)
    transforms = list(invariance[names[0]])
    figure, axes = plt.subplots(figsize=(7, 3.5), dpi=100)
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        values = [invariance[name][t]["accuracy"] for t in transforms]
        axes.bar(np.arange(len(transforms)) + (i - (len(names) - 1) / 2) * width, values, width,
                 label=name)
    low = min(v["accuracy"] for sets in invariance.values() for v in sets.values())
    axes.set_ylim(max(0.0, low - 0.05), 1.0)
    axes.set_xticks(range(len(transforms)), transforms)
    axes.set(ylabel="test accuracy",
             title="Test tiles rotated / flipped (classifier trained on originals)")
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
    "features", "classification", "timings", "unreadable_tiles");
    filters: (k, d') learned filters as displayed (``colour.filters_for_display``)
    of ``patch_shape``; examples: group name -> tiles (n, h, w, 3);
    objective: (iterations + 1,) RICA objective.  Returns the page's path.
    """
    run = Path(run_dir)
    metrics = results["classification"]["metrics"]
    learned = "learned pooled"
    figures = {
        "filters": save_image(run / "filters.png", tile_filters(filters, patch_shape), scale=4),
        "objective": save_line_plot(run / "objective.png", {"RICA objective": objective},
                                    "L-BFGS iteration", "J(W)", "Training objective"),
        "confusion": save_confusion_plot(run / "confusion.png",
                                         metrics[learned]["confusion_matrix"], class_names,
                                         f"{learned} features, test tiles"),
        "invariance": save_invariance_plot(run / "invariance.png",
                                           results["classification"]["invariance"]),
    }
    curves = {name: {**m["roc_curve"], "roc_auc": m["roc_auc"]} for name, m in metrics.items()
              if "roc_curve" in m}
    roc = [save_roc_plot(run / "roc.png", curves)] if curves else []
    example_items = []
    if any(len(tiles) for tiles in examples.values()):
        example_items = [f"Rows, top to bottom: {', '.join(examples)}.",
                         save_image(run / "examples.png", example_grid(examples), scale=1)]
    rows = [{"features": name, "dimensions": m["n_features"], "C": m["C"],
             "accuracy": m["accuracy"], "mean per-class accuracy": m["balanced_accuracy"],
             **({"top-5": m["top5"]} if "top5" in m else {}),
             "ROC AUC": m.get("roc_auc", float("nan")), "seconds (classify)": m["seconds"],
             "seconds (extract)": results["features"]["seconds"][name]}
            for name, m in metrics.items()]
    C_rows = [{"features": name, "C": point["C"], "CV score": round(point["cv_score"], 4),
               "past the grid's end": bool(point.get("extension")), "kept": point["C"] == m["C"]}
              for name, m in metrics.items() for point in m["C_path"]]
    C_edges = [f"{name}: the kept C is still the "
               f"{'largest' if m['C_at_edge'] == 'top' else 'smallest'} tried (raise "
               "grid_extension or widen C_grid)." for name, m in metrics.items()
               if m["C_at_edge"]]
    C_edges += [f"{name}: the fit on all training tiles did NOT converge (stopped at its "
                "solver's iteration limit)." for name, m in metrics.items() if not m["converged"]]
    invariance_rows = [{"features": name, **{t: v["accuracy"] for t, v in by_transform.items()}}
                       for name, by_transform in results["classification"]["invariance"].items()]
    unreadable = [{"tile": path, "problem": problem}
                  for path, problem in results["unreadable_tiles"]]
    save_json(run / "results.json", results)
    parameters = results["parameters"]
    title = "terafeat histology: invariant features of H&E tiles"
    return write_html_report(run / "index.html", title, [
        ("Tiles", [f"Data set {parameters['dataset']} at {parameters['data_root']}: tiles "
                   "listed per split and class, and those read (unreadable ones skipped).",
                   [{"split": split, **{class_names[int(label)]: n for label, n in counts.items()},
                     "read": results["features"]["n_tiles"][split]}
                    for split, counts in results["tiles"]["counts"].items()],
                   *([f"Test tiles from {parameters['test_root']} (test_root)."]
                     if parameters.get("test_root") else []),
                   *[f"Split {split!r}: {n} tiles found and not used"
                     + (" (test_split=valid scores them)." if split == "valid" else ".")
                     for split, n in results["tiles"].get("unused_splits", {}).items()],
                   *adaptation_items(results["features"].get("adaptations"),
                                     "RGB at its stored size (a tile of another size than "
                                     "the first is skipped as unreadable)")]),
        ("Learned colour filters", [
            f"{filters.shape[0]} RICA filters of {'x'.join(map(str, patch_shape))} "
            f"{parameters['colour_mode']} patches (whitened space), trained with ISA pooling in "
            f"groups of {parameters['group_size']} on patches of training tiles only; each "
            f"scaled to its own range{from_cache(results, 'train-rica')}{resumed(results['training'])}.",
            figures["filters"], figures["objective"]]),
        ("Test accuracy beside the peers", [
            f"One classifier for every feature set: standardised "
            f"{CLASSIFIER_NAMES[parameters.get('classifier', 'logistic')]}, C chosen by "
            "cross-validation on the training split only, scored once on the test split"
            f"{from_cache(results, 'extract-tile-features')}.", rows,
            "Published numbers are on other data: Le et al. (ISBI 2012) classify regions of "
            "TCGA glioblastoma (GBM) and kidney clear cell carcinoma (KIRC) sections; the "
            "group's follow-up (ISBI 2013) reports 84% accuracy (GBM, 3 classes) and 81% (KIRC) "
            "on 1000x1000 blocks. No published number exists for these tiles with these features.",
            *roc, figures["confusion"]]),
        ("Choice of C", [
            "Cross-validated score of every C tried on the training split; where the best "
            "was the largest or smallest of C_grid, further Cs past that end were tried.",
            C_rows, *C_edges]),
        ("Invariance: rotated and flipped test tiles", [
            "Test accuracy of the classifiers trained on unmodified tiles, for the ISA-pooled "
            f"units and the unpooled simple units ({simple_units(parameters)}) of the same "
            "filters.",
            invariance_rows, figures["invariance"]]),
        ("Examples (learned pooled features)", example_items or ["no test tiles"]),
        ("Unreadable tiles (skipped)", [unreadable] if unreadable else ["none"]),
        *run_sections(results),
    ])
