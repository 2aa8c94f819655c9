"""Figures and the HTML page of an action-recognition run."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from reporting.toolkit import (from_cache, run_sections, save_image, save_panel_curves,
                               write_html_report)
from terafeat.atomic_files import save_json

#: Le et al. (CVPR 2011), Table: data set -> (measure, best earlier published, the paper).
PAPER_SCORES = {"KTH": ("accuracy", 0.921, 0.939), "Hollywood2": ("mean AP", 0.509, 0.533),
                "UCF Sports": ("accuracy", 0.856, 0.865), "YouTube": ("accuracy", 0.712, 0.758)}


def paper_rows(layout: str) -> list[dict]:
    """The paper's scores as table rows, the data set of ``layout`` marked."""
    current = {"kth": "KTH", "hollywood2": "Hollywood2"}.get(layout)
    return [{"data set": name + (" (this layout)" if name == current else ""), "measure": measure,
             "best earlier published": earlier, "Le et al. 2011": theirs}
            for name, (measure, earlier, theirs) in PAPER_SCORES.items()]


def filter_strips(filters: np.ndarray, block_shape, n_filters: int = 24,
                  border: int = 1) -> np.ndarray:
    """Space-time filters as frame strips: one row per filter, its frames left to right.

    filters: (k, frames * height * width); the first ``n_filters`` are shown,
    each scaled to [0, 1] over all its frames. Returns a grey image
    (n * (height + border) + border, frames * (width + border) + border), white borders.
    """
    frames, height, width = block_shape
    shown = filters[:n_filters].reshape(-1, frames, height, width).astype(np.float64)
    low = shown.min(axis=(1, 2, 3), keepdims=True)
    span = shown.max(axis=(1, 2, 3), keepdims=True) - low
    shown = (shown - low) / np.where(span > 0, span, 1.0)
    image = np.ones((len(shown) * (height + border) + border, frames * (width + border) + border))
    for i, row in enumerate(shown):
        for t, frame in enumerate(row):
            top, left = border + i * (height + border), border + t * (width + border)
            image[top:top + height, left:left + width] = frame
    return image


def confusion_rows(confusion, classes) -> list[dict]:
    """A confusion matrix (true x predicted counts) as table rows."""
    return [{"true \\ predicted": str(name), **{str(other): int(count)
                                               for other, count in zip(classes, row)}}
            for name, row in zip(classes, confusion)]


#: The transformed test's feature sets as the report names them (the learned one by its
#: layers), and the differences it shows.
PEERS = ("PCA blocks", "motion energy")
GAPS = ("learned - motion energy", "learned - PCA blocks")


def transformed_rows(test: dict, learned_name: str) -> list[dict]:
    """One row per (change, strength), strength 0 the clips as filmed: accuracy and
    fold-to-fold spread of each feature set, and the learned features' difference from
    each peer, "separated" where it exceeds the spread of its per-fold values."""
    rows = []
    for row in [{"kind": "as filmed", "strength": 0.0, **test["clean"]}, *test["conditions"]]:
        cells = {"change": row["kind"], "strength": row["strength"]}
        for key in ("learned", *PEERS):
            name = learned_name if key == "learned" else key
            cells[name] = row[key]["accuracy"]
            cells[f"{name} fold std"] = row[key]["fold_std"]
        for gap in GAPS:
            difference, spread = row[gap]["difference"], row[gap]["fold_std"]
            cells[gap.replace("learned", learned_name)] = (
                f"{difference:+.3f} (sd {spread:.3f}"
                f"{', separated' if abs(difference) > spread else ''})")
        rows.append(cells)
    return rows


def transformed_section(run: Path, test: dict, learned_name: str) -> tuple[str, list]:
    """The transformed test's section: what it is, curves per change, the table."""
    panels = {}
    for kind in test["kinds"]:
        rows = [test["clean"]] + [row for row in test["conditions"] if row["kind"] == kind]
        x = [0.0] + [row["strength"] for row in rows[1:]]
        panels[kind] = {(learned_name if key == "learned" else key): (
            x, [row[key]["accuracy"] for row in rows], [row[key]["fold_std"] for row in rows])
            for key in ("learned", *PEERS)}
    curves = save_panel_curves(run / "transformed.png", panels, "strength",
                               "accuracy (bars: fold std)", "Transformed test (our protocol)")
    return ("Transformed test (our protocol, not a paper's)", [
        "The classifiers train on the clips as filmed and score the held-out clips (same "
        "folds) as a changed camera films them: translation by up to a quarter of the frame "
        "(strength 1), zoom 0.75-1.33, playback speed 0.67-1.5x, contrast 0.67-1.5x with "
        "brightness +-0.2, or all four at once (combined); each clip's direction of change "
        "(which way, in or out, faster or slower) is seeded, the same for every feature set. "
        "Peers: PCA blocks (layer 1's PCA of the same blocks through the same energy "
        "nonlinearity, no learned filters, its own vocabulary of the same size, the same "
        "SVM) and motion energy. Le et al. (CVPR 2011) report no such test; these numbers "
        "have no published counterpart. A difference is 'separated' where it is larger than "
        "the standard deviation of its per-fold values.", curves,
        transformed_rows(test, learned_name)])


def action_report(run_dir, results: dict, layer1_filters: np.ndarray) -> Path:
    """``results.json``, ``filters.png`` and ``index.html`` of an action-recognition run.

    results: the run's numbers ("classification" and "motion_energy_classification",
    the scores of the learned features and of the peer, "features", "sizes", "timings",
    "skipped", "parameters"); layer1_filters: (k, frames * height * width) in pixel space.
    Returns the path of ``index.html``.
    """
    run = Path(run_dir)
    sizes = results["sizes"]
    strips = save_image(run / "filters.png",
                        filter_strips(layer1_filters, sizes["layer1_block"]), scale=3)
    evaluation = {"learned": results["classification"],
                  "motion energy": results["motion_energy_classification"]}
    score_key = "mean_ap" if "mean_ap" in evaluation["learned"] else "accuracy"
    score_rows = [{"features": name, score_key: scores[score_key],
                   "classifier": f"{scores['classifier']} SVM (C={scores['C']:g})",
                   "protocol": scores["protocol"], "wrong": len(scores.get("wrong", []))}
                  for name, scores in evaluation.items()]
    learned = evaluation["learned"]
    features = results["features"]
    save_json(run / "results.json", results)
    return write_html_report(run / "index.html", "terafeat: action recognition with stacked "
                             "convolutional ISA", [
        ("Learned features against the motion-energy peer", [
            f"{results['parameters']['n_layers']}-layer ISA descriptors, bag of "
            f"{sizes['vocabulary']} words, against the motion-energy image of each clip "
            "(16x16, standardised, linear SVM) on the same clips and folds. The unsupervised "
            "stages (PCA, ISA layers, vocabulary) see every clip but no label; the SVMs are "
            "refitted in each fold.", score_rows]),
        *([transformed_section(run, results["transformed_test"],
                               f"{results['parameters']['n_layers']}-layer ISA")]
          if results.get("transformed_test") else []),
        ("Beside the paper", [
            f"This run: {score_rows[0][score_key]:.4g} ({score_key}, {learned['protocol']} "
            f"protocol) on {results['n_clips']} clips of {results['parameters']['data_root']} "
            f"({results['parameters']['layout']} layout). Le et al. (CVPR 2011) report on the "
            "full data sets under their own protocols, with 200,000 training blocks per layer:",
            paper_rows(results["parameters"]["layout"])]),
        ("Confusion matrix (learned features)", [
            confusion_rows(learned["confusion_matrix"], learned["classes"])
            if "confusion_matrix" in learned
            else "mean AP protocol: no confusion matrix", "Misclassified: " +
            (", ".join(Path(path).name for path in learned.get("wrong", [])) or "none")]),
        ("Layer-1 filters", [
            f"The first filters of layer 1 in pixel space, one row each, frames left to right "
            f"(block {tuple(sizes['layer1_block'])} frames x height x width).", strips]),
        ("Feature extraction", [
            f"{features['n_descriptors']} descriptors from {features['frames']} frames in "
            f"{features['seconds']:.1f} s: {features['seconds_per_frame']:.4f} s per frame "
            "(Le et al. 2011, Table 6: ISA one layer 0.14 s, two layers 0.44 s per frame)"
            f"{from_cache(results, 'extract-descriptors')}."]),
        ("Sizes used", [[{"size": key, "value": str(value)} for key, value in sizes.items()]]),
        ("Skipped files", [results["skipped"]] if results["skipped"] else ["none"]),
        *run_sections(results),
    ])
