"""Logging and UI feedback that work inside a Prefect run and outside one
(``terafeat task`` runs a stage's function with no Prefect server)."""
from __future__ import annotations

import logging

from prefect import get_run_logger
from prefect.context import FlowRunContext, TaskRunContext
from prefect.exceptions import MissingContextError


def in_prefect_run() -> bool:
    """True inside a Prefect flow or task run."""
    return TaskRunContext.get() is not None or FlowRunContext.get() is not None


def stage_logger():
    """Prefect's run logger in a run, else the ``terafeat.tasks`` logger."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("terafeat.tasks")
