"""Stage: write the run's report."""
from __future__ import annotations

from prefect import task

from reporting.pages.quickstart import quickstart_report
from tasks.logs import stage_logger
from terafeat.atomic_files import load_array


@task(name="write-report")
def write_quickstart_report(run_dir: str, results: dict, W_path: str, objective_path: str,
                            patch_size: int) -> str:
    """``index.html``, ``results.json`` and figures under ``run_dir``; returns the page's path."""
    page = quickstart_report(run_dir, results, load_array(W_path), load_array(objective_path),
                             (patch_size, patch_size))
    stage_logger().info("report: %s", page)
    return str(page)
