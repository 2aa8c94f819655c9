"""Stage: the locally connected network's top units as face detectors beside its controls
(the network trained without faces, the untrained network, a random unit, a linear
ceiling), the verdict table, and what the best unit sees."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from prefect import task

from tasks.logs import stage_logger
from terafeat.analysis.face_data import lfw_face_half
from terafeat.analysis.invariance import invariance_curves
from terafeat.analysis.optimal_stimulus import optimal_stimulus, template_correlation
from terafeat.analysis.unit_scoring import random_unit_margin, score_face_units, template_unit
from terafeat.analysis.verdict import face_neuron_verdict
from terafeat.atomic_files import load_array, save_array
from terafeat.locally_connected.network import (
    load_network,
    network_input,
    random_network,
    unit_responses,
)
from terafeat.locally_connected.stimulus import unit_functions

#: Standard deviations of the units' held-out accuracies by which the best unit must
#: beat the random-unit mean to count as above it.
MARGIN_STD = 2.0


def _best_unit_stimulus(layers, unit: int, kind: str, frame_size: int, iterations: int,
                        seed: int) -> tuple[np.ndarray, float]:
    """(optimal stimulus (s, s) of unit norm, its response): L-BFGS from 2 starts."""
    response, gradient = unit_functions(layers, unit, (frame_size, frame_size), kind)
    stimulus = optimal_stimulus(response, gradient, (frame_size, frame_size), n_starts=2,
                                max_iter=iterations, random_state=seed)
    return stimulus, float(response(stimulus.ravel()))


@task(name="score-local-units")
def score_local_units(network_path: str, no_face_network_path: str, images_path: str,
                      is_face_path: str, held_out_path: str, run_dir: str, seed: int,
                      n_top: int, stimulus_iterations: int, kind: str = "output") -> dict:
    """The detection set (selection part, held-out part) through the trained network, the
    no-face control and the untrained network (``random_network``: the weights training
    started from); every top-layer ``kind`` unit of each scored by ``score_face_units``
    (balanced accuracy: unit and threshold chosen on the selection part, accuracy and ROC
    area held out), the linear ceiling on the trained network's units, the verdict table
    (``face_neuron_verdict``, one seed: no verdict), and for reference one unit built from
    labels (``template_unit``).  The trained network's best unit: ``top_stimuli.npy``, its
    invariance curves, ``optimal_stimulus.npy`` (unit norm, ``stimulus_iterations`` L-BFGS
    steps from 2 starts); the no-face control's best unit: ``no_face_optimal_stimulus.npy``;
    each stimulus's correlation with the mean held-out face.  Writes ``responses.npy``
    (n, units) of the trained network."""
    logger = stage_logger()
    layers = load_network(network_path)
    networks = {"trained": layers, "no faces": load_network(no_face_network_path),
                "untrained": random_network([g for g, _ in layers], seed, layers[0][1].dtype)}
    images, is_face, held_out = (load_array(path) for path in (images_path, is_face_path,
                                                               held_out_path))
    split = {"held_out": held_out, "balanced": True}
    scores, responses = {}, None
    for name, weights in networks.items():
        found = unit_responses(images, weights, kind)
        if name == "trained":
            responses = found
        scores[name] = score_face_units(found, is_face, seed, linear=name == "trained", **split)
        logger.info("%s network, %s units: best of %d: %d, held-out balanced accuracy %.3f "
                    "(random unit %.3f +- %.3f); ROC area %.3f", name, kind, found.shape[1],
                    scores[name]["best_unit"], scores[name]["best_unit_accuracy"],
                    scores[name]["random_unit_accuracy"], scores[name]["random_unit_std"],
                    scores[name]["best_unit_auc"])
    trained = scores["trained"]
    verdict = face_neuron_verdict([trained["best_unit_accuracy"]],
                                  [scores["no faces"]["best_unit_accuracy"]], {
        "untrained": [scores["untrained"]["best_unit_accuracy"]],
        "random unit": [trained["random_unit_accuracy"]],
        "linear ceiling": [trained["linear_accuracy"]]})
    logger.info("verdict: %s", verdict["verdict"])
    lcn_size = layers[0][0].lcn_size
    frame_size = images.shape[1]
    template = score_face_units(template_unit(network_input(images, lcn_size), network_input(
        lfw_face_half("train", frame_size), lcn_size)), is_face, seed, linear=False,
        **split)["best_unit_accuracy"]
    unit = trained["best_unit"]
    order = np.argsort(-responses[:, unit], kind="stable")[:n_top]
    top = images[order]
    curves = invariance_curves(lambda batch: unit_responses(batch, layers, kind)[:, unit], top)
    reference = responses[order, unit].astype(np.float64)
    mean_face = images[is_face & held_out]
    stimuli = {name: _best_unit_stimulus(networks[name], scores[name]["best_unit"], kind,
                                         frame_size, stimulus_iterations, seed)
               for name in ("trained", "no faces")}
    correlations = {name: template_correlation(stimulus, mean_face)
                    for name, (stimulus, _) in stimuli.items()}
    logger.info("optimal stimulus vs the mean held-out face: correlation %.3f (no-face "
                "control's best unit: %.3f)", correlations["trained"], correlations["no faces"])
    run = Path(run_dir)
    numbers = {key: value.tolist() if hasattr(value, "tolist") else value
               for key, value in trained.items()}
    margin = random_unit_margin(trained, MARGIN_STD)
    return dict(
        numbers, kind=kind, verdict=verdict, margin=margin, margin_std=MARGIN_STD,
        beats_random=bool(margin > 0),
        controls={name: {key: scores[name][key] for key in
                         ("best_unit", "best_unit_accuracy", "best_unit_auc",
                          "random_unit_accuracy", "random_unit_std")}
                  for name in ("no faces", "untrained")},
        template_unit_accuracy=template, n_units=int(responses.shape[1]),
        n_images=int(len(is_face)), n_held_out=int(held_out.sum()),
        n_faces=int(is_face.sum()), n_held_out_faces=int((is_face & held_out).sum()),
        top_faces=int(is_face[order].sum()),
        responses=str(save_array(run / "responses.npy", responses)),
        top_stimuli=str(save_array(run / "top_stimuli.npy", top)),
        optimal_stimulus=str(save_array(run / "optimal_stimulus.npy", stimuli["trained"][0])),
        no_face_optimal_stimulus=str(save_array(run / "no_face_optimal_stimulus.npy",
                                                stimuli["no faces"][0])),
        mean_face=str(save_array(run / "mean_held_out_face.npy", mean_face.mean(axis=0))),
        optimal_response=stimuli["trained"][1],
        stimulus_face_correlation=correlations["trained"],
        no_face_stimulus_face_correlation=correlations["no faces"],
        curves={name: {"values": curve["values"],
                       "relative_response": (curve["responses"] / reference).mean(
                           axis=1).tolist()}
                for name, curve in curves.items()})
