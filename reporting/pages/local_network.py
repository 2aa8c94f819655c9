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


def save_response_histogram(path, responses: np.ndarray, is_face: np.ndarray, unit: int,
                            threshold: float) -> Path:
    """Histogram of one unit's responses (n,) to held-out faces and distractors (is_face
    (n,) bool), with its threshold (chosen on the selection part) marked."""
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(5, 3), dpi=100)
    bins = np.histogram_bin_edges(responses, bins=40)
    for mask, label, colour in ((~is_face, "distractors", "#999"), (is_face, "faces", "#c44")):
        axes.hist(responses[mask], bins=bins, density=True, alpha=0.6, color=colour,
                  label=f"{label} ({int(mask.sum())})")
    if np.isfinite(threshold):
        axes.axvline(threshold, color="k", linestyle=":", label="threshold")
    axes.set(xlabel=f"unit {unit}: response", ylabel="density (held out)")
    axes.legend()
    return save_figure(path, figure)


def local_network_report(run_dir, results: dict, filters: np.ndarray, field: int,
                         objectives: list[np.ndarray], top_stimuli: np.ndarray,
                         stimuli: dict[str, np.ndarray], held_out: dict[str, np.ndarray]) -> Path:
    """Figures, ``results.json`` and ``index.html`` of a local_network run.

    results: ``parameters``, ``frames``, ``training``, ``no_face_training`` (per-layer rows,
    totals), ``units`` (face scores, verdict, curves), ``timings``, ``cache``; filters:
    (k, field*field) layer-1 filters at the grid's centre; objectives: per layer (steps,)
    minibatch objectives; top_stimuli: (n, s, s) the best unit's strongest detection
    images; stimuli: "trained", "no faces" optimal stimuli and "mean face" (s, s); held_out:
    "responses" (m,) of the best unit and "is_face" (m,) on the held-out part.
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
    optimal = save_image(run / "optimal_stimulus.png", tile_filters(
        np.stack([stimuli[name].ravel() for name in ("trained", "mean face", "no faces")]),
        (side, side), border=1), scale=3)
    invariance = save_invariance_curves(run / "invariance.png", units["curves"], units["best_unit"])
    histogram = save_response_histogram(run / "responses.png", held_out["responses"],
                                        held_out["is_face"], units["best_unit"],
                                        units["best_unit_threshold"])
    layer_rows = [{key: value for key, value in row.items() if key != "objective"}
                  for row in training["layers"]]
    verdict = units["verdict"]
    table = [{"network": row["network"], "held-out balanced accuracy": round(row["mean"], 4),
              "trained's margin over it": "" if row["margin"] is None
              else f"{row['margin']:+.4f}"} for row in verdict["rows"]]
    save_json(run / "results.json", results)
    return write_html_report(run / "index.html", "terafeat local_network: the face neuron on "
                             "the ICML 2012 architecture", [
        ("Network", [
            f"{len(layer_rows)} stages of (locally connected filters, L2 pooling, local contrast "
            f"normalisation), untied weights: {training['n_connections']:,} connections, "
            f"{training['n_parameters']:,} parameters (encoding and decoding), trained greedily "
            f"on {training['n_frames']} unlabelled frames ({results['frames']['n_faces']} "
            f"faces; distractors: {results['frames']['distractors']}) in "
            f"{training['training_seconds']:.1f} s, {training['frames_per_second']:.1f} "
            f"frames/s per layer on average{from_cache(results, 'train-local-network')}; the "
            f"no-face control on the {results['no_face_training']['n_frames']} frames "
            "without faces, same seed and steps.", layer_rows, curve]),
        ("Layer-1 filters at the centre of the grid", [filter_image]),
        ("The verdict", [
            f"{units['n_images']} images ({units['n_faces']} faces): each network's best "
            f"{units['kind']} unit and its threshold are chosen on lfw's training-half faces "
            "and distractors, and scored on the "
            f"{units['n_held_out']} held out ({units['n_held_out_faces']} test-half faces, "
            "unseen distractors). Accuracy is balanced (the mean of the rates on faces and on "
            "non-faces; chance 0.5). 'no faces': the same network trained on the same frames "
            "minus the faces; 'untrained': the weights training started from; 'random unit': "
            "the trained network's units' mean; 'linear ceiling': a label-trained logistic "
            "regression on all its units. The first three rows are best units.", table,
            f"Verdict: {verdict['verdict']}.",
            "For reference, one linear unit made from labels, not learnt (its filter the "
            "mean training-half face on the network's input), scored the same way: "
            f"{units['template_unit_accuracy']:.3f} held out."]),
        (f"The best {units['kind']} unit, {units['best_unit']}", [
            f"Its {len(top_stimuli)} strongest stimuli ({units['top_faces']} faces):", top,
            "Left to right: its optimal stimulus (the input of unit norm that maximises it; "
            f"response {units['optimal_response']:.4g}), the mean held-out face, and the "
            "no-face control's best unit's optimal stimulus. Correlation with the mean face: "
            f"{units['stimulus_face_correlation']:.3f}, the control's "
            f"{units['no_face_stimulus_face_correlation']:.3f}.", optimal,
            "Its responses to the held-out faces and distractors:", histogram,
            "Its response under translation, scaling and in-plane rotation of its strongest "
            "stimuli, relative to the untransformed ones:", invariance]),
        *run_sections(results),
    ])
