"""What every stage shares: logging that works inside a Prefect run and outside
one (``terafeat task`` runs a stage's function with no Prefect server), and the
stage cache."""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from prefect import get_run_logger
from prefect.context import FlowRunContext, TaskRunContext
from prefect.exceptions import MissingContextError

from terafeat.cache import run_cached

#: Called as listener(stage, done, total) by ``report_progress`` (the CLI's progress bar).
_PROGRESS: list[Callable[[str, int, int | None], None]] = []
#: The cache outcomes (True: hit) of the stages run inside ``cache_outcomes()``.
_OUTCOMES: ContextVar[list[bool] | None] = ContextVar("terafeat_cache_outcomes", default=None)


def in_prefect_run() -> bool:
    """True inside a Prefect flow or task run."""
    return TaskRunContext.get() is not None or FlowRunContext.get() is not None


def stage_logger():
    """Prefect's run logger in a run, else the ``terafeat.tasks`` logger."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("terafeat.tasks")


def cached(cache_root, stage: str, params: dict, inputs: dict[str, str], run_dir, compute):
    """``compute(folder)`` through the stage cache under ``cache_root`` (None: no cache,
    compute straight into ``run_dir``); logs whether it was a hit."""
    if cache_root is None:
        return compute(Path(run_dir))
    result, hit = run_cached(cache_root, stage, params, inputs, run_dir, compute)
    if (outcomes := _OUTCOMES.get()) is not None:
        outcomes.append(hit)
    stage_logger().info("%s: %s", stage, "cache hit, skipped" if hit else "computed, cached")
    return result


@contextmanager
def cache_outcomes() -> Iterator[list[bool]]:
    """Collects, in the list it yields, whether each cached stage run inside hit."""
    outcomes: list[bool] = []
    token = _OUTCOMES.set(outcomes)
    try:
        yield outcomes
    finally:
        _OUTCOMES.reset(token)


def report_progress(stage: str, done: int, total: int | None) -> None:
    """Tell the progress listeners (if any) that ``stage`` has done ``done`` of ``total``
    steps (iterations, batches, clips)."""
    for listener in list(_PROGRESS):
        listener(stage, done, total)


@contextmanager
def progress_listener(listener: Callable[[str, int, int | None], None]) -> Iterator[None]:
    """Within the block, ``report_progress`` calls reach ``listener``."""
    _PROGRESS.append(listener)
    try:
        yield
    finally:
        _PROGRESS.remove(listener)
