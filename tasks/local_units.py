"""Stage: the locally connected network's top units as face detectors, and what the
best one sees (top stimuli, invariance curves)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from prefect import task

from tasks.logs import stage_logger
from terafeat.analysis.face_data import face_detection_splits, lfw_face_half
from terafeat.analysis.invariance import invariance_curves
from terafeat.analysis.optimal_stimulus import optimal_stimulus
from terafeat.analysis.unit_scoring import (
    linear_ceiling,
    random_unit_margin,
    score_face_units,
    template_unit,
)
from terafeat.atomic_files import save_array
from terafeat.locally_connected.network import (
    UNIT_KINDS,
    load_network,
    network_input,
    random_network,
    stage_responses,
    unit_responses,
)
from terafeat.locally_connected.stimulus import unit_functions

#: Standard deviations of the units' held-out accuracies by which the best unit must
#: beat the random-unit baseline to count as a face detector.
MARGIN_STD = 2.0


@task(name="score-local-units")
def score_local_units(network_path: str, run_dir: str, frame_size: int,
                      n_nonfaces_per_face: float, seed: int, n_top: int,
                      stimulus_iterations: int, kind: str = "simple") -> dict:
    """Faces vs non-faces (``face_detection_splits``: lfw's training-half faces and
    crops to choose units on, its test-half faces and other crops held out) through
    the network and through an untrained one of the same shape (the weights training
    started from, ``random_network``); scores every top-layer unit of both kinds
    (simple units and pooled, normalised outputs; ``score_face_units`` with balanced
    accuracy, the mean of the rates on faces and on non-faces: unit and threshold
    chosen on the selection part, accuracy and ROC area on the held-out part, beside
    the random-unit baseline and a linear ceiling), and the linear ceiling of every
    stage's units (where the face information goes).  The trained network's best
    ``kind`` unit is a face detector when its held-out accuracy exceeds the random
    unit's mean by ``MARGIN_STD`` standard deviations and the untrained network's best
    unit of that kind, scored the same way (a control: the best of thousands of random
    filters is itself far above the random-unit mean).  For reference, the same
    score of one linear unit built from labels (``template_unit``: the mean
    training-half face on the network's input).  Writes ``responses.npy``
    (n, units) of ``kind``, ``top_stimuli.npy`` and ``optimal_stimulus.npy`` (the
    unit-norm input maximising it, ``stimulus_iterations`` L-BFGS steps from 2
    starts) of the best unit and returns the numbers with its invariance curves
    (translation, scale, rotation) over those stimuli."""
    logger = stage_logger()
    layers = load_network(network_path)
    untrained = random_network([g for g, _ in layers], seed, layers[0][1].dtype)
    images, is_face, held_out = face_detection_splits(frame_size, n_nonfaces_per_face, seed)
    split = {"held_out": held_out, "balanced": True}
    summary, stages, by_kind = [], [], {}
    for network, weights in (("trained", layers), ("untrained", untrained)):
        found = stage_responses(images, weights)
        if network == "trained":
            responses = found[-1][kind]
        for i, stage in enumerate(found):
            row = {"network": network, "stage": i + 1}
            for each in UNIT_KINDS:
                row[f"{each} units"] = stage[each].shape[1]
                row[f"linear, {each}"] = linear_ceiling(stage[each], is_face, seed, **split)
            stages.append(row)
        for each in UNIT_KINDS:
            scores = score_face_units(found[-1][each], is_face, seed, **split)
            by_kind[network, each] = scores
            summary.append({"network": network, "units": each, "count": found[-1][each].shape[1],
                            "best unit": scores["best_unit"],
                            "best unit (held out)": scores["best_unit_accuracy"],
                            "random unit": scores["random_unit_accuracy"],
                            "random unit std": scores["random_unit_std"],
                            f"margin over random + {MARGIN_STD:g} std":
                                random_unit_margin(scores, MARGIN_STD),
                            "best unit ROC area": scores["best_unit_auc"],
                            "random unit ROC area": scores["random_unit_auc"],
                            "random unit ROC area std": scores["random_unit_auc_std"],
                            "linear, all units (labels)": scores["linear_accuracy"],
                            "chance": scores["majority_accuracy"]})
            logger.info("%s network, %s units: best of %d: %d, held-out balanced accuracy %.3f "
                        "(random unit %.3f +- %.3f, linear %.3f); ROC area %.3f (random unit "
                        "%.3f +- %.3f)", network, each, scores["held_out_accuracy"].size,
                        scores["best_unit"], scores["best_unit_accuracy"],
                        scores["random_unit_accuracy"], scores["random_unit_std"],
                        scores["linear_accuracy"], scores["best_unit_auc"],
                        scores["random_unit_auc"], scores["random_unit_auc_std"])
    lcn_size = layers[0][0].lcn_size
    template = score_face_units(template_unit(network_input(images, lcn_size), network_input(
        lfw_face_half("train", frame_size), lcn_size)), is_face, seed,
        **split)["best_unit_accuracy"]
    logger.info("reference: one linear unit, the mean training-half face on the network's "
                "input: held-out accuracy %.3f", template)
    scores = by_kind["trained", kind]
    unit = scores["best_unit"]
    order = np.argsort(-responses[:, unit], kind="stable")[:n_top]
    top = images[order]
    curves = invariance_curves(lambda batch: unit_responses(batch, layers, kind)[:, unit], top)
    reference = responses[order, unit].astype(np.float64)
    response, gradient = unit_functions(layers, unit, (frame_size, frame_size), kind)
    stimulus = optimal_stimulus(response, gradient, (frame_size, frame_size), n_starts=2,
                                max_iter=stimulus_iterations, random_state=seed)
    logger.info("unit %d: optimal stimulus response %.4g, strongest test image %.4g", unit,
                response(stimulus.ravel()), reference[0])
    run = Path(run_dir)
    numbers = {key: value.tolist() if hasattr(value, "tolist") else value
               for key, value in scores.items()}
    margin = random_unit_margin(scores, MARGIN_STD)
    untrained_best = by_kind["untrained", kind]["best_unit_accuracy"]
    beats_untrained = scores["best_unit_accuracy"] > untrained_best
    return dict(numbers, kind=kind, by_kind=summary, stages=stages, margin=margin,
                margin_std=MARGIN_STD, beats_random=bool(margin > 0),
                beats_untrained=bool(beats_untrained),
                face_detector=bool(margin > 0 and beats_untrained),
                untrained_best_unit_accuracy=untrained_best, template_unit_accuracy=template,
                n_units=int(responses.shape[1]),
                n_images=int(len(is_face)), n_held_out=int(held_out.sum()),
                n_faces=int(is_face.sum()), n_held_out_faces=int(is_face[held_out].sum()),
                top_faces=int(is_face[order].sum()),
                responses=str(save_array(run / "responses.npy", responses)),
                top_stimuli=str(save_array(run / "top_stimuli.npy", top)),
                optimal_stimulus=str(save_array(run / "optimal_stimulus.npy", stimulus)),
                optimal_response=response(stimulus.ravel()),
                curves={name: {"values": curve["values"],
                               "relative_response": (curve["responses"] / reference).mean(
                                   axis=1).tolist()}
                        for name, curve in curves.items()})
