"""Stage: what the best unit sees: top stimuli, optimal stimulus, invariance curves."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from prefect import task

from tasks.face_network import load_network
from tasks.logs import stage_logger
from terafeat.analysis.invariance import invariance_curves
from terafeat.analysis.optimal_stimulus import optimal_stimulus
from terafeat.atomic_files import load_array, save_array


@task(name="inspect-face-unit")
def inspect_unit(network_path: str, images_path: str, responses_path: str, unit: int,
                 run_dir: str, n_top: int, seed: int) -> dict:
    """Writes ``top_stimuli.npy`` (n_top, s, s) (the detection images that drive
    ``unit`` most), ``optimal_stimulus.npy`` (s, s) and returns the invariance
    curves of the unit over its top stimuli (values, mean response, and mean
    response relative to the untransformed images)."""
    network = load_network(network_path)
    images = load_array(images_path)
    order = np.argsort(-load_array(responses_path)[:, unit], kind="stable")[:n_top]
    top = images[order]
    response, gradient = network.unit_response(unit)
    stimulus = optimal_stimulus(response, gradient, network.frame_shape, random_state=seed)
    curves = invariance_curves(lambda batch: network.transform(batch)[:, unit], top)
    reference = network.transform(top)[:, unit].astype(np.float64)
    run = Path(run_dir)
    summary = {name: {"values": curve["values"],
                      "mean_response": curve["responses"].mean(axis=1).tolist(),
                      "relative_response": (curve["responses"] / reference).mean(axis=1).tolist()}
               for name, curve in curves.items()}
    stage_logger().info("unit %d: optimal stimulus response %.4g, top stimulus %.4g", unit,
                        response(stimulus.ravel()), reference[0])
    return {"top_stimuli": str(save_array(run / "top_stimuli.npy", top)),
            "top_indices": order.tolist(),
            "optimal_stimulus": str(save_array(run / "optimal_stimulus.npy", stimulus)),
            "optimal_response": float(response(stimulus.ravel())), "curves": summary}
