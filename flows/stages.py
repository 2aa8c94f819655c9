"""What every flow does around its tasks: a run folder, and timing per stage."""
from __future__ import annotations

import time
from pathlib import Path

from prefect import get_run_logger
from prefect.runtime import flow_run

from terafeat.storage import new_run_dir


class Stopwatch:
    """Runs stages and keeps their wall times, in seconds, in ``timings``."""

    def __init__(self):
        self.timings: dict[str, float] = {}

    def __call__(self, stage: str, call, *args, **kwargs):
        started = time.perf_counter()
        value = call(*args, **kwargs)
        self.timings[stage] = round(time.perf_counter() - started, 3)
        return value


def open_run_dir(flow_name: str, output_root: str) -> Path:
    """``<output_root>/<flow>/<time>-<flow run name>/``, new for this run, logged."""
    run_dir = new_run_dir(output_root, flow_name, flow_run.get_name())
    get_run_logger().info("run folder: %s", run_dir.resolve())
    return run_dir
