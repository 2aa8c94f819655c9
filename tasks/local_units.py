"""Stage: the locally connected network's top units as face detectors, and what the
best one sees (top stimuli, invariance curves)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from prefect import task

from tasks.logs import stage_logger
from terafeat.local import UNIT_KINDS, load_network, unit_responses
from terafeat.local_stimulus import unit_functions
from terafeat.neuron import (face_detection_set, invariance_curves, optimal_stimulus,
                             score_face_units)
from terafeat.storage import save_array


@task(name="score-local-units")
def score_local_units(network_path: str, run_dir: str, frame_size: int,
                      n_nonfaces_per_face: float, seed: int, n_top: int,
                      stimulus_iterations: int, kind: str = "simple") -> dict:
    """Held-out faces vs non-faces through the network; scores every top-layer unit of
    both kinds (simple units and pooled, normalised outputs; ``score_face_units``: unit
    chosen on one half, accuracy on the other, beside the random-unit baseline and a
    linear ceiling); writes ``responses.npy`` (n, units) of ``kind``, whose best unit
    it inspects: ``top_stimuli.npy``,
    ``top_stimuli.npy`` and ``optimal_stimulus.npy`` (the unit-norm input maximising
    it, ``stimulus_iterations`` L-BFGS steps from 2 starts) of the best unit and
    returns the numbers with its invariance curves (translation, scale, rotation)
    over those stimuli."""
    logger = stage_logger()
    layers = load_network(network_path)
    images, is_face = face_detection_set(frame_size, n_nonfaces_per_face, seed)
    by_kind = {}
    for each in UNIT_KINDS:
        found = unit_responses(images, layers, each)
        by_kind[each] = score_face_units(found, is_face, seed)
        by_kind[each]["n_units"] = found.shape[1]
        if each == kind:
            responses = found
        logger.info("%s units: best of %d: %d, held-out accuracy %.3f (random unit %.3f, "
                    "linear %.3f, majority %.3f)", each, found.shape[1],
                    by_kind[each]["best_unit"], by_kind[each]["best_unit_accuracy"],
                    by_kind[each]["random_unit_accuracy"], by_kind[each]["linear_accuracy"],
                    by_kind[each]["majority_accuracy"])
    scores = by_kind[kind]
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
    summary = [{"units": name, "count": found["n_units"], "best unit": found["best_unit"],
                "best unit (held out)": found["best_unit_accuracy"],
                "random unit": found["random_unit_accuracy"],
                "linear, all units (labels)": found["linear_accuracy"],
                "majority": found["majority_accuracy"]} for name, found in by_kind.items()]
    return dict(numbers, kind=kind, by_kind=summary, n_units=int(responses.shape[1]),
                n_images=int(len(is_face)),
                n_faces=int(is_face.sum()), top_faces=int(is_face[order].sum()),
                responses=str(save_array(run / "responses.npy", responses)),
                top_stimuli=str(save_array(run / "top_stimuli.npy", top)),
                optimal_stimulus=str(save_array(run / "optimal_stimulus.npy", stimulus)),
                optimal_response=response(stimulus.ravel()),
                curves={name: {"values": curve["values"],
                               "relative_response": (curve["responses"] / reference).mean(
                                   axis=1).tolist()}
                        for name, curve in curves.items()})
