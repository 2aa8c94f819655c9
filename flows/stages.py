"""A flow is a declared sequence of stages; this module runs the declaration, and
``terafeat task STAGE --run DIR`` replays one stage of a finished run from the same
declaration, so no stage's call is written twice.

A :class:`Stage` names its Prefect task (the stage's label is the task's name), the
key of ``results.json`` its output goes to, and how its keyword arguments come from the
flow's parameters and the outputs of earlier stages.  Every task also receives
``run_dir`` (the folder it writes to) and, where it takes one, ``cache_root``.
"""
from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.runtime import flow_run
from prefect.states import State
from pydantic import BaseModel

from flows.progress import logged_progress
from reporting.toolkit import environment, markdown_table
from runs.folders import new_run_dir
from tasks.logs import cache_outcomes, marking_cache_hits
from terafeat.atomic_files import load_json
from terafeat.distributed.cluster import check_reachable, scheduler_address
from terafeat.process_memory import peak_rss_bytes

# The core reports through `logging` (the Dask dashboard link, worker recoveries);
# with PREFECT_LOGGING_EXTRA_LOGGERS=terafeat (the CLI sets it) Prefect shows them.
logging.getLogger("terafeat").setLevel(logging.INFO)

#: Builds a stage's keyword arguments from (validated parameters, outputs so far).
Arguments = Callable[[BaseModel, Mapping], dict]


def _always(params: BaseModel) -> bool:
    return True


@dataclass(frozen=True)
class Stage:
    """One stage: ``task(**arguments(params, outputs), run_dir=..., cache_root=...)``,
    its result stored as ``outputs[key]``; skipped where ``when(params)`` is false."""

    task: Callable
    key: str
    arguments: Arguments
    when: Callable[[BaseModel], bool] = _always

    @property
    def name(self) -> str:
        """The stage's label: its task's name (``train-rica``)."""
        return self.task.name

    def call(self, params: BaseModel, outputs: Mapping, run_dir: Path, *,
             in_prefect: bool = True):
        """Run the task (as a Prefect task run, its state "Cached" where the stage cache
        served it; or its plain function for a replay)."""
        kwargs = dict(self.arguments(params, outputs), run_dir=str(run_dir))
        function = marking_cache_hits(self.task) if in_prefect else self.task.fn
        if "cache_root" in inspect.signature(self.task.fn).parameters:
            kwargs["cache_root"] = (getattr(params, "cache_root", None) or None) if in_prefect \
                else None
        value = function(**kwargs)
        return value.result() if isinstance(value, State) else value


@dataclass(frozen=True)
class FlowPlan:
    """A flow's declaration: its parameter model, its stages in order, how the run's
    results and headline rows are assembled, and the report stage."""

    name: str
    model: type[BaseModel]
    stages: tuple[Stage, ...]
    #: (params, outputs) -> extra entries of results.json (headline numbers and the like).
    summarise: Callable[[BaseModel, dict], dict]
    #: (params, results) -> headline rows: the table artifact and the log's summary.
    headline: Callable[[dict], list[dict]]
    report: Stage

    def stage(self, name: str) -> Stage:
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise KeyError(name)

    def validate(self, arguments: Mapping) -> BaseModel:
        """The flow function's arguments through the model (checks across parameters)."""
        return self.model.model_validate(dict(arguments))


class Stopwatch:
    """Keeps each stage's wall time in seconds (``timings``) and, for stages that go
    through the stage cache, whether it was a hit (``sources``: "cache", every cached
    part a hit, its stored numbers an earlier run's; or "computed")."""

    def __init__(self):
        self.timings: dict[str, float] = {}
        self.sources: dict[str, str] = {}

    def __call__(self, label: str, call: Callable[[], object]):
        started = time.perf_counter()
        with cache_outcomes() as hits:
            value = call()
        self.timings[label] = round(time.perf_counter() - started, 3)
        if hits:
            self.sources[label] = "cache" if all(outcome.hit for outcome in hits) else "computed"
        return value


def check_scheduler(params) -> None:
    """With ``backend=dask`` and a scheduler named (``dask_address`` or
    ``$TERAFEAT_DASK_ADDRESS``): ConnectionError naming it unless it is reachable."""
    if getattr(params, "backend", None) == "dask":
        address = scheduler_address(getattr(params, "dask_address", None))
        if address is not None:
            check_reachable(address)


def run_flow(plan: FlowPlan, arguments: Mapping) -> dict:
    """Validate the flow's arguments, run its stages into a new run folder (long stages
    logging their progress where stdout is not a terminal), write the report and publish
    the headline as Prefect artifacts.  Returns results.json's content
    with ``report``, the page's absolute path."""
    params = plan.validate(arguments)
    check_scheduler(params)
    logger = get_run_logger()
    run_dir = new_run_dir(params.output_root, plan.name, flow_run.get_name())
    logger.info("run folder: %s", run_dir.resolve())
    timed, outputs = Stopwatch(), {}
    with logged_progress():
        for stage in plan.stages:
            if stage.when(params):
                outputs[stage.key] = timed(
                    stage.name, lambda stage=stage: stage.call(params, outputs, run_dir))
            else:
                outputs[stage.key] = None
    results = {"flow": plan.name, "run_dir": str(run_dir.resolve()),
               "parameters": params.model_dump(mode="json"), **outputs,
               **plan.summarise(params, outputs), "peak_memory": peak_memory(outputs),
               "environment": environment()}
    results["headline"] = plan.headline(results)
    results.update(timings=timed.timings, cache=timed.sources)
    outputs[plan.report.key] = timed(plan.report.name,
                                     lambda: plan.report.call(params, results, run_dir))
    for row in results["headline"]:
        logger.info("%s", ", ".join(f"{key} {value}" for key, value in row.items()))
    results["report"] = publish_report(plan.name, outputs[plan.report.key], results["headline"])
    return results


def peak_memory(outputs: Mapping) -> dict[str, int]:
    """Peak resident memory per process, bytes: "flow" (this process, where every stage
    runs but what a stage sends elsewhere) and, for each stage whose output reports a
    "peak_rss" (the largest of its Dask workers or encoding processes), its key."""
    return {"flow": peak_rss_bytes(),
            **{key: int(output["peak_rss"]) for key, output in outputs.items()
               if isinstance(output, dict) and "peak_rss" in output}}


def publish_report(flow_name: str, page: str, headline: list[dict]) -> str:
    """Show a finished run in the Prefect UI: a Markdown artifact with the headline
    numbers and where ``index.html`` is, and a table artifact of the same rows.
    Returns the report's absolute path."""
    page = str(Path(page).resolve())
    key = flow_name.replace("_", "-")
    create_table_artifact(headline, key=f"{key}-results",
                          description=f"{flow_name}: headline numbers")
    create_markdown_artifact(
        f"# {flow_name} report\n\n{markdown_table(headline)}\n\n"
        f"Full report (figures, parameters, timings): [{page}](file://{page})\n",
        key=f"{key}-report", description=f"{flow_name}: report summary")
    return page


def relocated(value, old_root: str, new_root: str):
    """``value`` (results.json content) with paths under ``old_root`` moved to ``new_root``."""
    if isinstance(value, str):
        return new_root + value[len(old_root):] if value.startswith(old_root) else value
    if isinstance(value, dict):
        return {key: relocated(item, old_root, new_root) for key, item in value.items()}
    if isinstance(value, list):
        return [relocated(item, old_root, new_root) for item in value]
    return value


@dataclass(frozen=True)
class Replay:
    """What :func:`replay_stage` did: the folder it wrote, the input files it read."""

    folder: Path
    inputs: tuple[str, ...]
    result: object


def _files_named(value) -> list[str]:
    if isinstance(value, str):
        return [value] if Path(value).is_file() else []
    if isinstance(value, (list, tuple)):
        return [path for item in value for path in _files_named(item)]
    if isinstance(value, dict):
        return [path for item in value.values() for path in _files_named(item)]
    return []


def replay_stage(plan: FlowPlan, name: str, run: Path, overrides: Mapping,
                 output_root: Path) -> Replay:
    """Run stage ``name`` of the finished run folder ``run`` alone, without Prefect and
    without the cache, on that run's parameters (with ``overrides``) and the outputs
    its earlier stages left; writes to a new folder ``<output_root>/tasks/<stage>/...``.
    Returns that folder, the files the stage was given and the task's result."""
    run = Path(run)
    results = load_json(run / "results.json")
    try:
        stage = plan.stage(name)
    except KeyError:
        raise ValueError(f"{run}: a {plan.name} run has no stage {name!r}; stages: "
                         f"{', '.join(s.name for s in plan.stages)}") from None
    params = plan.validate({**results["parameters"], **overrides})
    if not stage.when(params):
        raise ValueError(f"{run}: stage {name} does not run with these parameters")
    outputs = relocated(results, results["run_dir"], str(run.resolve()))
    inputs = tuple(_files_named(stage.arguments(params, outputs)))
    out = new_run_dir(output_root / "tasks", name, run.name)
    return Replay(out, inputs, stage.call(params, outputs, out, in_prefect=False))
