"""Stage: write the local_network run's report."""
from __future__ import annotations

import numpy as np
from prefect import task

from reporting.pages.local_network import local_network_report
from tasks.logs import stage_logger
from terafeat.atomic_files import load_array
from terafeat.locally_connected.network import load_network
from terafeat.locally_connected.tile_objective import encoder_weights


@task(name="write-local-network-report")
def write_local_network_report(run_dir: str, results: dict) -> str:
    """``index.html``, ``results.json`` and figures under ``run_dir``; returns the page's path."""
    geometry, V = load_network(results["training"]["network"])[0]
    W1 = encoder_weights(V)[0]
    rows, cols = geometry.grid
    centre = W1[(rows // 2) * cols + cols // 2]
    objectives = [load_array(row["objective"]) for row in results["training"]["layers"]]
    units = results["units"]
    held_out = load_array(results["frames"]["held_out"])
    page = local_network_report(
        run_dir, results, np.asarray(centre), geometry.field, objectives,
        load_array(units["top_stimuli"]),
        {"trained": load_array(units["optimal_stimulus"]),
         "no faces": load_array(units["no_face_optimal_stimulus"]),
         "mean face": load_array(units["mean_face"])},
        {"responses": load_array(units["responses"])[held_out, units["best_unit"]],
         "is_face": load_array(results["frames"]["image_is_face"])[held_out]})
    stage_logger().info("report: %s", page)
    return str(page)
