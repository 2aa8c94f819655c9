"""What every stage shares: logging that works inside a Prefect run and outside
one (``terafeat task`` runs a stage's function with no Prefect server), and the
stage cache."""
from __future__ import annotations

import logging
from pathlib import Path

from prefect import get_run_logger
from prefect.context import FlowRunContext, TaskRunContext
from prefect.exceptions import MissingContextError

from terafeat.cache import run_cached


def in_prefect_run() -> bool:
    """True inside a Prefect flow or task run."""
    return TaskRunContext.get() is not None or FlowRunContext.get() is not None


def stage_logger():
    """Prefect's run logger in a run, else the ``terafeat.tasks`` logger."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("terafeat.tasks")


def cached(cache_root, stage: str, params: dict, inputs: dict[str, str], run_dir, compute,
           resumable: bool = False):
    """``compute(folder)`` through the stage cache under ``cache_root`` (None: no cache,
    compute straight into ``run_dir``); logs whether it was a hit.  resumable: see
    :func:`terafeat.cache.run_cached`."""
    if cache_root is None:
        return compute(Path(run_dir))
    result, hit = run_cached(cache_root, stage, params, inputs, run_dir, compute, resumable)
    stage_logger().info("%s: %s", stage, "cache hit, skipped" if hit else "computed, cached")
    return result
