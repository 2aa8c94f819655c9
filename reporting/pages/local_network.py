"""Figures and the HTML page of a local_network run (issue #9)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from reporting.toolkit import (
    from_cache,
    pyplot,
    run_sections,
    save_figure,
    save_image,
    save_line_plot,
    tile_filters,
    write_html_report,
)
from terafeat.atomic_files import save_json

#: The ICML 2012 run, for scale: connections, frames, cores and days.
PAPER = {"connections": 1e9, "frames": 1e7, "frame_side": 200, "cores": 16_000, "days": 3}


def save_invariance_curves(path, curves: dict[str, dict], unit: int) -> Path:
    """A unit's mean response relative to the untransformed stimuli, one panel per
    transformation (name -> {"values", "relative_response"})."""
    plt = pyplot()
    labels = {"translation": "shift (pixels)", "scale": "scale factor", "rotation": "angle (degrees)"}
    figure, axes = plt.subplots(1, len(curves), figsize=(3 * len(curves), 3), dpi=100,
                                squeeze=False)
    for ax, (name, curve) in zip(axes[0], curves.items()):
        ax.plot(curve["values"], curve["relative_response"], marker="o")
        ax.axhline(1.0, color="#999", linestyle=":")
        ax.set(xlabel=labels.get(name, name), title=name)
    axes[0][0].set_ylabel(f"unit {unit}: response / original")
    return save_figure(path, figure)


def local_network_report(run_dir, results: dict, filters: np.ndarray, field: int,
                         objectives: list[np.ndarray], top_stimuli: np.ndarray,
                         stimulus: np.ndarray) -> Path:
    """Figures, ``results.json`` and ``index.html`` of a local_network run.

    results: ``parameters``, ``training`` (per-layer rows, totals), ``units``
    (face scores, curves), ``timings``, ``cache``; filters: (k, field*field) layer-1 filters
    at the grid's centre; objectives: per layer (steps,) minibatch objectives;
    top_stimuli: (n, s, s) the best unit's strongest detection images;
    stimulus: (s, s) its optimal stimulus.
    """
    run = Path(run_dir)
    training, units = results["training"], results["units"]
    filter_image = save_image(run / "filters.png", tile_filters(filters, (field, field)), scale=6)
    curve = save_line_plot(run / "objective.png",
                           {f"layer {i + 1}": values for i, values in enumerate(objectives)},
                           "step", "minibatch objective (log)", "Training objective per layer",
                           logy=True)
    side = top_stimuli.shape[1]
    top = save_image(run / "top_stimuli.png",
                     tile_filters(top_stimuli.reshape(len(top_stimuli), -1), (side, side)), scale=3)
    optimal = save_image(run / "optimal_stimulus.png",
                         tile_filters(stimulus.reshape(1, -1), stimulus.shape, border=0), scale=3)
    invariance = save_invariance_curves(run / "invariance.png", units["curves"], units["best_unit"])
    layer_rows = [{key: value for key, value in row.items() if key != "objective"}
                  for row in training["layers"]]
    save_json(run / "results.json", results)
    return write_html_report(run / "index.html", "terafeat local_network: the ICML 2012 "
                             "architecture with model parallelism", [
        ("Network", [
            f"{len(layer_rows)} stages of (locally connected filters, L2 pooling, local contrast "
            f"normalisation), untied weights: {training['n_connections']:,} connections, "
            f"{training['n_parameters']:,} parameters (encoding and decoding), trained greedily "
            f"on {training['n_frames']} unlabelled frames in {training['training_seconds']:.1f} s, "
            f"{training['frames_per_second']:.1f} frames/s per layer on average"
            f"{from_cache(results, 'train-local-network')}.",
            layer_rows, curve]),
        ("Layer-1 filters at the centre of the grid", [filter_image]),
        ("The best top-layer unit as a face detector", [
            f"{units['n_images']} images ({units['n_faces']} faces): the unit and its "
            "threshold are chosen on lfw's training-half faces and non-face crops, and scored "
            f"on the {units['n_held_out']} held out ({units['n_held_out_faces']} test-half "
            "faces, other crops). Accuracy is balanced (the mean of the rates on faces and on "
            "non-faces; chance 0.5); 'random unit' is the same held-out accuracy averaged over "
            "all units (std: its spread over the units); the ROC area is threshold-free. "
            "'untrained': the same scores of the network of the same shape before training "
            "(the weights training started from). The best unit is a face detector when it "
            f"lies more than {units['margin_std']:g} std above the random unit (margin "
            f"{units['margin']:+.3f}) and above the untrained network's best unit "
            f"({units['untrained_best_unit_accuracy']:.3f}): "
            f"{'it is' if units['face_detector'] else 'it is not'}. Simple units: "
            "the top stage's local filter responses W1^T x; output units: after its L2 "
            "pooling and LCN.", units["by_kind"],
            "For reference, one linear unit made from labels, not learnt (its filter the "
            "mean training-half face on the network's input), scored the same way: "
            f"{units['template_unit_accuracy']:.3f} held out.",
            "Where the face information goes: held-out balanced accuracy of a label-trained "
            "linear classifier on all the units of each stage, trained and untrained network:",
            units["stages"],
            f"The best {units['kind']} unit, {units['best_unit']}:",
            f"Its {len(top_stimuli)} strongest stimuli ({units['top_faces']} faces):", top,
            f"Its optimal stimulus (the input of unit norm that maximises it; response "
            f"{units['optimal_response']:.4g}):", optimal,
            "Its response under translation, scaling and rotation of its strongest stimuli, "
            "relative to the untransformed ones:", invariance]),
        *run_sections(results),
    ])
