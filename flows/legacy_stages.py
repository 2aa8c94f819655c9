"""Transitional (removed when every flow runs its declared stages): What every flow does around its tasks: a run folder, timing per stage, and the
run's results published as Prefect artifacts."""
from __future__ import annotations

import logging
import time
from pathlib import Path

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run

from tasks.logs import cache_outcomes
from reporting.toolkit import markdown_table
from runs.folders import new_run_dir

# The core reports through `logging` (the Dask dashboard link, worker recoveries);
# with PREFECT_LOGGING_EXTRA_LOGGERS=terafeat (the CLI sets it) Prefect shows them.
logging.getLogger("terafeat").setLevel(logging.INFO)


class Stopwatch:
    """Runs stages and keeps their wall times, in seconds, in ``timings``, and for
    the stages that go through the stage cache, in ``sources``, "cache" (every
    cached part a hit: its stored numbers, e.g. training seconds, are an earlier
    run's) or "computed"."""

    def __init__(self):
        self.timings: dict[str, float] = {}
        self.sources: dict[str, str] = {}

    def __call__(self, stage: str, call, *args, **kwargs):
        started = time.perf_counter()
        with cache_outcomes() as hits:
            value = call(*args, **kwargs)
        self.timings[stage] = round(time.perf_counter() - started, 3)
        if hits:
            self.sources[stage] = "cache" if all(outcome.hit for outcome in hits) else "computed"
        return value


def open_run_dir(flow_name: str, output_root: str) -> Path:
    """``<output_root>/<flow>/<time>-<flow run name>/``, new for this run, logged."""
    run_dir = new_run_dir(output_root, flow_name, flow_run.get_name())
    get_run_logger().info("run folder: %s", run_dir.resolve())
    return run_dir


def publish_report(flow_name: str, page: str, headline: list[dict]) -> str:
    """Show a finished run in the Prefect UI: a Markdown artifact with the headline
    numbers and where ``index.html`` is, and a table artifact of the same rows.

    headline: one dict per row (e.g. a feature set and its accuracy), same keys.
    Returns the report's absolute path.
    """
    page = str(Path(page).resolve())
    key = f"{flow_name.replace('_', '-')}-results"
    create_table_artifact(headline, key=key, description=f"{flow_name}: headline numbers")
    create_markdown_artifact(
        f"# {flow_name} report\n\n{markdown_table(headline)}\n\n"
        f"Full report (figures, parameters, timings): [{page}](file://{page})\n",
        key=f"{flow_name.replace('_', '-')}-report", description=f"{flow_name}: report summary")
    return page
