"""Stage: the locally connected network's top units as face detectors, and what the
best one sees (top stimuli, invariance curves)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from prefect import task

from tasks.logs import stage_logger
from terafeat.local import load_network, unit_responses
from terafeat.local_stimulus import unit_functions
from terafeat.neuron import (face_detection_set, invariance_curves, optimal_stimulus,
                             score_face_units)
from terafeat.storage import save_array


@task(name="score-local-units")
def score_local_units(network_path: str, run_dir: str, frame_size: int,
                      n_nonfaces_per_face: float, seed: int, n_top: int,
                      stimulus_iterations: int) -> dict:
    """Held-out faces vs non-faces through the network; scores every top-layer unit
    (``score_face_units``: unit chosen on one half, accuracy on the other, beside the
    random-unit baseline and a linear ceiling); writes ``responses.npy`` (n, units),
    ``top_stimuli.npy`` and ``optimal_stimulus.npy`` (the unit-norm input maximising
    it, ``stimulus_iterations`` L-BFGS steps from 2 starts) of the best unit and
    returns the numbers with its invariance curves (translation, scale, rotation)
    over those stimuli."""
    logger = stage_logger()
    layers = load_network(network_path)
    images, is_face = face_detection_set(frame_size, n_nonfaces_per_face, seed)
    responses = unit_responses(images, layers)
    scores = score_face_units(responses, is_face, seed)
    unit = scores["best_unit"]
    logger.info("best of %d units: %d, held-out accuracy %.3f (random unit %.3f, linear %.3f, "
                "majority %.3f)", responses.shape[1], unit, scores["best_unit_accuracy"],
                scores["random_unit_accuracy"], scores["linear_accuracy"],
                scores["majority_accuracy"])
    order = np.argsort(-responses[:, unit], kind="stable")[:n_top]
    top = images[order]
    curves = invariance_curves(lambda batch: unit_responses(batch, layers)[:, unit], top)
    reference = responses[order, unit].astype(np.float64)
    response, gradient = unit_functions(layers, unit, (frame_size, frame_size))
    stimulus = optimal_stimulus(response, gradient, (frame_size, frame_size), n_starts=2,
                                max_iter=stimulus_iterations, random_state=seed)
    logger.info("unit %d: optimal stimulus response %.4g, strongest test image %.4g", unit,
                response(stimulus.ravel()), reference[0])
    run = Path(run_dir)
    numbers = {key: value.tolist() if hasattr(value, "tolist") else value
               for key, value in scores.items()}
    return dict(numbers, n_units=int(responses.shape[1]), n_images=int(len(is_face)),
                n_faces=int(is_face.sum()), top_faces=int(is_face[order].sum()),
                responses=str(save_array(run / "responses.npy", responses)),
                top_stimuli=str(save_array(run / "top_stimuli.npy", top)),
                optimal_stimulus=str(save_array(run / "optimal_stimulus.npy", stimulus)),
                optimal_response=response(stimulus.ravel()),
                curves={name: {"values": curve["values"],
                               "relative_response": (curve["responses"] / reference).mean(
                                   axis=1).tolist()}
                        for name, curve in curves.items()})
