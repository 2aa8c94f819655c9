"""What every stage shares: logging that works inside a Prefect run and outside
one (``terafeat task`` runs a stage's function with no Prefect server), progress
(a Prefect progress artifact in a task run, and any listener such as the CLI's
terminal line), and the stage cache."""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from prefect import get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.context import TaskRunContext
from prefect.exceptions import MissingContextError

from runs.stage_cache import run_cached

#: Percent between two updates of a stage's progress artifact (few API calls).
PROGRESS_STEP = 5.0
#: (task run id, stage) -> [progress artifact id, percent shown].
_ARTIFACTS: dict[tuple[str, str], list] = {}
#: Called as listener(stage, done, total) by ``report_progress`` (the CLI's progress bar).
_PROGRESS: list[Callable[[str, int, int | None], None]] = []
#: The cache outcomes (True: hit) of the stages run inside ``cache_outcomes()``.
_OUTCOMES: ContextVar[list[bool] | None] = ContextVar("terafeat_cache_outcomes", default=None)


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
    :func:`runs.stage_cache.run_cached`."""
    if cache_root is None:
        return compute(Path(run_dir))
    result, hit = run_cached(cache_root, stage, params, inputs, run_dir, compute, resumable)
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
    steps (iterations, batches, clips); in a Prefect task run, show it as the stage's
    progress artifact (updated every ``PROGRESS_STEP`` percent, and at the end)."""
    for listener in list(_PROGRESS):
        listener(stage, done, total)
    task_run = TaskRunContext.get()
    if total and task_run is not None:
        percent = 100.0 * min(done, total) / total
        key = (str(task_run.task_run.id), stage)
        if key not in _ARTIFACTS:
            _ARTIFACTS[key] = [create_progress_artifact(
                percent, description=f"{stage}: % of {total} steps done"), percent]
        elif percent - _ARTIFACTS[key][1] >= PROGRESS_STEP or (
                percent == 100.0 and _ARTIFACTS[key][1] < 100.0):
            update_progress_artifact(_ARTIFACTS[key][0], percent)
            _ARTIFACTS[key][1] = percent


@contextmanager
def progress_listener(listener: Callable[[str, int, int | None], None]) -> Iterator[None]:
    """Within the block, ``report_progress`` calls reach ``listener``."""
    _PROGRESS.append(listener)
    try:
        yield
    finally:
        _PROGRESS.remove(listener)
