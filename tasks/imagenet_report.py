"""Stage: write the imagenet run's report."""
from __future__ import annotations

from prefect import task

from reporting.pages.imagenet import imagenet_report
from tasks.logs import stage_logger
from tasks.whitening import load_whitener
from terafeat.atomic_files import load_array


@task(name="write-imagenet-report")
def write_imagenet_report(*, run_dir: str, results: dict, W_path: str, objective_path: str,
                          whitener_path: str) -> str:
    """``index.html``, ``results.json`` and figures under ``run_dir``; returns the page's path.
    Filters are shown in pixel space: the input pattern each unit responds to most."""
    pixel_filters = load_array(W_path) @ load_whitener(whitener_path).dewhitening_
    page = imagenet_report(run_dir, results, pixel_filters, load_array(objective_path))
    stage_logger().info("report: %s", page)
    return str(page)
