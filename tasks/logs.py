"""What every stage shares: logging that works inside a Prefect run and outside
one (``terafeat task`` runs a stage's function with no Prefect server), progress
(a Prefect progress artifact in a task run, and any listener such as the CLI's
terminal line), and the stage cache."""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache, wraps
from pathlib import Path
from typing import NamedTuple

from prefect import Task, get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.context import TaskRunContext
from prefect.exceptions import MissingContextError
from prefect.states import Completed

from runs.stage_cache import cache_entry, run_entry

#: Percent between two updates of a stage's progress artifact (few API calls).
PROGRESS_STEP = 5.0
#: (task run id, stage) -> [progress artifact id, percent shown].
_ARTIFACTS: dict[tuple[str, str], list] = {}
#: Called as listener(stage, done, total) by ``report_progress`` (the CLI's progress bar).
_PROGRESS: list[Callable[[str, int, int | None], None]] = []


class CacheOutcome(NamedTuple):
    """One lookup of the stage cache: the stage, its entry's key, whether it hit."""

    stage: str
    key: str
    hit: bool


#: The cache outcomes of the stages run inside ``cache_outcomes()``.
_OUTCOMES: ContextVar[list[CacheOutcome] | None] = ContextVar("terafeat_cache_outcomes",
                                                              default=None)


def stage_logger():
    """Prefect's run logger in a run, else the ``terafeat.tasks`` logger."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("terafeat.tasks")


def cached(cache_root, stage: str, params: dict, inputs: dict[str, str], run_dir, compute,
           resumable: bool = False):
    """``compute(folder)`` through the stage cache under ``cache_root`` (None: no cache,
    compute straight into ``run_dir``), keyed on the code of compute's module (the
    task's) and what it imports; logs "cache hit: <stage> <key>" or that it computed.
    resumable: see :func:`runs.stage_cache.run_entry`."""
    if cache_root is None:
        return compute(Path(run_dir))
    entry = cache_entry(cache_root, stage, params, inputs, compute.__module__)
    result, hit = run_entry(entry, run_dir, compute, resumable)
    if (outcomes := _OUTCOMES.get()) is not None:
        outcomes.append(CacheOutcome(stage, entry.name, hit))
    stage_logger().info("%s: %s %s", "cache hit" if hit else "computed and cached", stage,
                        entry.name)
    return result


@contextmanager
def cache_outcomes() -> Iterator[list[CacheOutcome]]:
    """Collects, in the list it yields, the cache lookups of the stages run inside (an
    enclosing ``cache_outcomes`` block gets them too)."""
    outer = _OUTCOMES.get()
    outcomes: list[CacheOutcome] = []
    token = _OUTCOMES.set(outcomes)
    try:
        yield outcomes
    finally:
        _OUTCOMES.reset(token)
        if outer is not None:
            outer.extend(outcomes)


@cache
def marking_cache_hits(stage_task: Task) -> Task:
    """A copy of ``stage_task`` whose run, where every stage-cache lookup inside hit, ends
    in a Completed state named "Cached" (message "cache hit: <stage> <key>"): what the
    Prefect UI shows.  Called, it returns that state (``.result()`` is the value) or,
    where something was computed, the value."""
    function = stage_task.fn

    @wraps(function)
    def run(*args, **kwargs):
        with cache_outcomes() as outcomes:
            value = function(*args, **kwargs)
        if outcomes and all(outcome.hit for outcome in outcomes):
            message = ", ".join(f"{outcome.stage} {outcome.key}" for outcome in outcomes)
            return Completed(name="Cached", message=f"cache hit: {message}", data=value)
        return value

    marked = stage_task.with_options()
    marked.fn = run
    return marked


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
