"""Stage: write the face-neuron run's report."""
from __future__ import annotations

import numpy as np
from prefect import task

from reporting.pages.face_neuron import face_neuron_report
from tasks.face_network import load_network
from tasks.logs import stage_logger
from terafeat.atomic_files import load_array
from terafeat.learning.pooled_network import PooledStage, WhitenStage


def first_layer_filters(network_path: str) -> np.ndarray:
    """Layer-1 simple units in pixel space: (k, h * w) = W A^T with A the whitening."""
    stages = load_network(network_path).stages
    whiten = next(stage for stage in stages if isinstance(stage, WhitenStage))
    pooled = next(stage for stage in stages if isinstance(stage, PooledStage))
    return pooled.W @ whiten.whitener.whitening_.T


@task(name="write-face-neuron-report")
def write_face_neuron_report(run_dir: str, results: dict) -> str:
    """``index.html``, ``results.json`` and figures under ``run_dir``; returns the page's path."""
    unit = results["unit"]
    page = face_neuron_report(run_dir, results, load_array(unit["top_stimuli"]),
                              load_array(unit["optimal_stimulus"]),
                              first_layer_filters(results["training"]["network"]))
    stage_logger().info("report: %s", page)
    return str(page)
