"""The deployments that ``terafeat serve`` puts on a Prefect server, with schedules
read from a small config file (none active unless configured)."""
from __future__ import annotations

import tomllib
from pathlib import Path

from flows.registry import FLOWS

#: Looked for in the working folder, in this order, when no config is named.
CONFIG_FILES = ("terafeat.toml", "pyproject.toml")


def read_schedules(path: Path | None = None) -> dict[str, dict]:
    """Flow name -> ``{"cron": str}`` or ``{"interval": seconds}``, plus optional
    ``"parameters"`` (the flow's parameter fields for scheduled runs).

    From ``[schedules.<flow>]`` in ``terafeat.toml`` or ``[tool.terafeat.schedules.<flow>]``
    in ``pyproject.toml``; no file or no table means no schedules.  Unknown flow
    names, unknown keys, and entries without exactly one of cron / interval are
    a ValueError naming the file.
    """
    if path is None:
        path = next((Path(name) for name in CONFIG_FILES if Path(name).is_file()), None)
        if path is None:
            return {}
    path = Path(path)
    with path.open("rb") as handle:
        config = tomllib.load(handle)
    if path.name == "pyproject.toml":
        config = config.get("tool", {}).get("terafeat", {})
    schedules = config.get("schedules", {})
    for name, entry in schedules.items():
        if name not in FLOWS:
            raise ValueError(f"{path}: no flow named {name!r}; flows: {', '.join(sorted(FLOWS))}")
        unknown = set(entry) - {"cron", "interval", "parameters"}
        if unknown:
            raise ValueError(f"{path}: schedule of {name} has unknown keys {sorted(unknown)}; "
                             "use cron, interval, parameters")
        if ("cron" in entry) == ("interval" in entry):
            raise ValueError(f"{path}: schedule of {name} needs exactly one of cron or interval")
        if "interval" in entry and not float(entry["interval"]) > 0:
            raise ValueError(f"{path}: interval of {name} must be > 0 seconds")
    return schedules


def build_deployments(schedules: dict[str, dict]) -> list:
    """One deployment per flow, named after it, scheduled where ``schedules`` says.

    Scheduled parameters are validated against the flow's model here, so a bad
    config fails at ``terafeat serve``, not at 3 a.m.
    """
    deployments = []
    for name, entry in FLOWS.items():
        flow_function, model = entry.load()
        schedule = schedules.get(name, {})
        parameters = None
        if "parameters" in schedule:
            parameters = {"params": model.model_validate(schedule["parameters"]).model_dump(mode="json")}
        deployments.append(flow_function.to_deployment(
            name=name, cron=schedule.get("cron"), interval=schedule.get("interval"),
            parameters=parameters, description=(flow_function.description or "").strip(),
            tags=["terafeat"]))
    return deployments


def serve(config: Path | None = None) -> None:
    """Serve every flow as a deployment until interrupted (Prefect's ``serve``)."""
    from prefect import serve as prefect_serve
    prefect_serve(*build_deployments(read_schedules(config)))
