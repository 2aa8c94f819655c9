"""Figures and the HTML page of an ImageNet-family run (issue #6)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from reporting.toolkit import (
    adaptation_items,
    from_cache,
    resumed,
    run_sections,
    save_confusion_plot,
    save_image,
    save_line_plot,
    tile_filters,
    write_html_report,
)
from terafeat.atomic_files import save_json
from terafeat.classification.streamed import NAMES as CLASSIFIER_NAMES

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck"]
#: Coates, Lee & Ng (AISTATS 2011), CIFAR-10 test accuracy, single layer + linear SVM.
COATES_CIFAR10 = [("k-means (triangle), 1600 features", 0.779),
                  ("k-means (triangle), 4000 features", 0.796),
                  ("sparse autoencoder, 1600 features", 0.734),
                  ("sparse RBM, 1600 features", 0.724)]
NAMES = {"rica": "RICA (learned)", "kmeans": "k-means (same pipeline)", "pixels": "raw pixels"}


def headline_rows(results: dict) -> list[dict]:
    """One row per feature set of this run (RICA, then its peers): features, dimensions,
    top-1 and mean per-class accuracy of the test images, top-5 where there are more than
    five classes, and the classifier kept."""
    classification = results["classification"]
    many_classes = len(results["listing"]["class_names"]) > 5
    order = sorted(results["encoding"]["dims"],
                   key=lambda name: list(NAMES).index(name) if name in NAMES else len(NAMES))
    rows = []
    for name in order:
        metrics, fit = classification[name], classification[name]["fit"]
        rows.append({"features": NAMES.get(name, name),
                     "dimensions": results["encoding"]["dims"][name],
                     "top-1": round(metrics["top1"], 4),
                     "mean per-class accuracy": round(metrics["mean_class_accuracy"], 4),
                     **({"top-5": round(metrics["top5"], 4)} if many_classes else {}),
                     "classifier kept": f"{fit['classifier']}, lam/n {fit['lam/n']:g}"})
    return rows


def _candidate_rows(classification: dict) -> list[dict]:
    """Every candidate classifier of every feature set with its held-out accuracy."""
    rows = []
    for name, result in classification.items():
        fit = result["fit"]
        for point in fit["candidates"]:
            rows.append({"features": NAMES.get(name, name), "classifier": point["classifier"],
                         "lam/n": point["lam/n"],
                         "held-out accuracy": round(point["validation_accuracy"], 4),
                         "L-BFGS iterations": point.get("n_iter", ""),
                         "past the grid's end": bool(point.get("extension")),
                         "kept": (point["classifier"], point["lam/n"])
                         == (fit["classifier"], fit["lam/n"])})
    return rows


def _selection_notes(classification: dict) -> list[str]:
    """Grid extensions, choices still at an end, and the final SVM's convergence."""
    notes = []
    for name, result in classification.items():
        fit, label = result["fit"], NAMES.get(name, name)
        for family, extension in fit["extensions"].items():
            if extension["added"]:
                notes.append(f"{label}: the best {family} penalty sat at an end of the values "
                             f"it was chosen among; also tried lam/n "
                             f"{', '.join(f'{g:g}' for g in extension['added'])}.")
            if extension["at_edge"]:
                notes.append(f"{label}: the kept {family} penalty is still the "
                             f"{'largest' if extension['at_edge'] == 'top' else 'smallest'} "
                             "tried (raise grid_extension or widen penalty_grid).")
        svm = fit.get("svm")
        if svm is not None:
            notes.append(f"{label}: the final {CLASSIFIER_NAMES[fit['classifier']]} on all "
                         "training rows "
                         + ("converged" if svm["converged"] else "did NOT converge")
                         + f" in {svm['n_iter']} L-BFGS iterations"
                         + (f" (stopped at its limit of {svm['iteration_limit']} iterations)"
                            if svm["stopped_at_limit"] else f" ({svm['message']})") + ".")
    return notes


def imagenet_report(run_dir, results: dict, W: np.ndarray, objective: np.ndarray) -> Path:
    """Figures, ``results.json`` and ``index.html`` of a run; returns the page's path.

    results: "parameters", "listing", "patches", "training", "encoding",
    "classification", "timings", "peak_memory"; W: (k, p*p*3) filters in pixel space;
    objective: (iterations + 1,) RICA objective.
    """
    run = Path(run_dir)
    parameters, listing = results["parameters"], results["listing"]
    names = listing["class_names"]
    p = parameters["patch_size"]
    rows = headline_rows(results)
    published = []
    if names == CIFAR10_CLASSES:  # the CIFAR-10 classes, from its files or class folders
        published = ["Beside published single-layer results on CIFAR-10:",
                     [{"source": "this run", "features": row["features"], "top-1": row["top-1"]}
                      for row in rows]
                     + [{"source": "Coates et al. 2011", "features": what, "top-1": accuracy}
                        for what, accuracy in COATES_CIFAR10]]
    learned = results["classification"]["rica"]
    if "confusion_matrix" in learned:
        confusion = [save_confusion_plot(run / "confusion.png", learned["confusion_matrix"],
                                         names, "RICA features, test images")]
    else:
        confusion = ["Most frequent confusions of the RICA features (test images):",
                     [{"true": names[c["true"]], "predicted": names[c["predicted"]],
                       "count": c["count"]} for c in learned["top_confusions"]]]
    save_json(run / "results.json", results)
    title = f"terafeat imagenet: RICA features on {parameters['dataset']}"
    return write_html_report(run / "index.html", title, [
        ("Test accuracy", [
            f"Single layer of {parameters['n_features']} RICA features on {p}x{p}x3 patches, "
            f"stride-1 convolution over {parameters['image_size']}px images, "
            f"{parameters['nonlinearity']} non-linearity, {parameters['pooling']}-pooled over a "
            f"{parameters['grid']}x{parameters['grid']} grid; {parameters['classifier']} "
            "one-vs-rest linear classifier on standardised features, regulariser chosen on "
            f"{parameters['val_fraction']:.0%} of the training images held out; accuracy per "
            "test image (top-1), and averaged per class (each class counting once).",
            rows, *([f"k-means: {parameters['n_features']} centroids of the same whitened "
                     "patches (Coates et al.'s learner), unit-normalised, then the same encoder "
                     "and classifier; only the filter learner differs."]
                    if results.get("kmeans") else []),
            *published]),
        ("Data", [[{"data set": parameters["dataset"], "root": parameters["data_root"],
                    "training rows (with copies)": listing["n_train"],
                    "test images": listing["n_test"],
                    "classes": len(names), "train listed x": parameters["train_repeat"],
                    "train mirrored": parameters["mirror_train"],
                    "train shifted copies": parameters["shift_train"],
                    "test mirrored (scores averaged)": parameters["mirror_test"],
                    "unreadable (skipped)": len(results["unreadable_images"])}]]),
        ("Learned filters", [
            f"The {W.shape[0]} RICA filters in pixel space (each unit's weights mapped back "
            "through the whitening: the colour pattern it responds to most), each scaled to its "
            "own range"
            f"{from_cache(results, 'train-rica')}{resumed(results['training'])}.",
            f"Distinct filters (no earlier filter with |cosine| > 0.95 in the whitened space): "
            f"{results['training']['distinct_filters']} of {W.shape[0]}. With many more filters "
            "than whitened dimensions, RICA's reconstruction term is met by copies too, and "
            "long fits gather the filters onto a few hundred sparse directions; the learned "
            "features are only as many as the distinct ones.",
            save_image(run / "filters.png", tile_filters(W, (p, p, 3)), scale=3),
            save_line_plot(run / "objective.png", {"RICA objective": objective},
                           "L-BFGS iteration", "J(W)", "Training objective")]),
        ("Confusions", confusion),
        ("Classifier validation", [
            "Every candidate, fitted on the training images outside the held-out part and "
            "scored on it (lam = lam/n x training rows): ridge at each penalty, and the L2-SVM "
            "(or softmax) along its own path (from ridge's choice down, each point started "
            "from the last). "
            "The best is kept, whichever classifier it is, and refitted on all training rows.",
            _candidate_rows(results["classification"]),
            *_selection_notes(results["classification"])]),
        ("Images as read", adaptation_items(
            results["encoding"].get("adaptations"),
            f"{parameters['image_size']}x{parameters['image_size']} RGB")),
        ("Throughput", [
            "Feature extraction reads and encodes one batch of images at a time and the "
            "classifier holds one shard plus (f+1)^2 statistics, so peak memory (the table "
            "per process below) does not grow with the number of images.",
            "Feature extraction" + from_cache(results, "encode-image-shards") + ":",
            [{"features": NAMES.get(name, name), "images/s": round(rate, 1)}
             for name, rate in results["encoding"]["images_per_second"].items()]]),
        ("Unreadable images (skipped)", [[{"image": path, "problem": problem}
                                          for path, problem in results["unreadable_images"]]]
         if results["unreadable_images"] else ["none"]),
        *run_sections(results),
    ])
