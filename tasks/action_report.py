"""Stage: write the action-recognition run's report."""
from __future__ import annotations

from prefect import task

from reporting.pages.action_recognition import action_report
from tasks.features import load_model
from tasks.logs import stage_logger


@task(name="write-action-report")
def write_action_report(*, run_dir: str, results: dict, model: dict) -> str:
    """``index.html``, ``results.json`` and ``filters.png`` under ``run_dir``; returns the
    page's path."""
    filters = load_model(model).layer1.input_filters()
    page = action_report(run_dir, results, filters)
    stage_logger().info("report: %s", page)
    return str(page)
