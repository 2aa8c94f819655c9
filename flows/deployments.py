"""The deployments that ``terafeat serve`` puts on a Prefect server: one per flow, all
under one deployment name, with the schedules a small config file declares.

A schedule carries its own parameters (Prefect 3 schedules do): a scheduled run gets
them, while the deployment keeps the flow's defaults, so a manual run from the UI or
``prefect deployment run FLOW/NAME -p max_iter=50`` starts from the defaults.  The
deployment name defaults to the working folder's name, so ``serve`` run from two folders
registers two sets of deployments and stopping one leaves the other's alone.
"""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

from flows.registry import FLOWS, load_flow

#: Looked for in the working folder, in this order, when no config is named.
CONFIG_FILES = ("terafeat.toml", "pyproject.toml")
SCHEDULE_KEYS = {"cron", "interval", "parameters", "timezone"}


def _config(path: Path | None) -> tuple[Path | None, dict]:
    if path is None:
        path = next((Path(name) for name in CONFIG_FILES if Path(name).is_file()), None)
        if path is None:
            return None, {}
    path = Path(path)
    with path.open("rb") as handle:
        config = tomllib.load(handle)
    if path.name == "pyproject.toml":
        config = config.get("tool", {}).get("terafeat", {})
    return path, config


def read_schedules(path: Path | None = None) -> dict[str, list[dict]]:
    """Flow name -> its schedules, each ``{"cron": str}`` or ``{"interval": seconds}``,
    with optional ``"timezone"`` and ``"parameters"`` (values for that schedule's runs).

    From ``[schedules.<flow>]`` (one schedule) or ``[[schedules.<flow>]]`` (several) in
    ``terafeat.toml``, or ``[tool.terafeat.schedules.<flow>]`` in ``pyproject.toml``; no
    file or no table means no schedules.  Unknown flows or keys, entries without exactly
    one of cron / interval, and parameters the flow refuses are a ValueError naming the
    file, so a bad config fails at ``terafeat serve``, not at 3 a.m.
    """
    path, config = _config(path)
    schedules = {}
    for name, entries in config.get("schedules", {}).items():
        if name not in FLOWS:
            raise ValueError(f"{path}: no flow named {name!r}; flows: {', '.join(sorted(FLOWS))}")
        entries = [entries] if isinstance(entries, dict) else list(entries)
        for entry in entries:
            unknown = set(entry) - SCHEDULE_KEYS
            if unknown:
                raise ValueError(f"{path}: schedule of {name} has unknown keys {sorted(unknown)}; "
                                 f"use {', '.join(sorted(SCHEDULE_KEYS))}")
            if ("cron" in entry) == ("interval" in entry):
                raise ValueError(f"{path}: schedule of {name} needs exactly one of cron or "
                                 "interval")
            if "interval" in entry and not float(entry["interval"]) > 0:
                raise ValueError(f"{path}: interval of {name} must be > 0 seconds")
            if "parameters" in entry:
                _check_parameters(path, name, entry["parameters"])
        schedules[name] = entries
    return schedules


def _check_parameters(path: Path, name: str, parameters: dict) -> None:
    from pydantic import ValidationError

    from flows.parameters import validation_message
    _, plan = load_flow(name)
    try:
        plan.validate(parameters)
    except ValidationError as error:
        raise ValueError(f"{path}: parameters of the {name} schedule: "
                         f"{validation_message(error, plan.model)}") from None


def deployment_name(path: Path | None = None, name: str | None = None) -> str:
    """``name``, else ``[serve] name`` of the config file, else the working folder's name
    (characters other than letters, digits, ``-``, ``_`` and ``.`` become ``-``)."""
    if name is None:
        name = _config(path)[1].get("serve", {}).get("name") or Path.cwd().resolve().name
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", str(name)).strip("-")
    if not name:
        raise ValueError("deployment name is empty: pass --name")
    return name


def build_deployments(schedules: dict[str, list[dict]], name: str) -> list:
    """One deployment per flow, all called ``name``, with the flow's defaults as its
    parameters and each configured schedule carrying its own parameters."""
    from prefect.schedules import Cron, Interval

    deployments = []
    for flow_name in FLOWS:
        flow_function, _ = load_flow(flow_name)
        flow_schedules = [
            Cron(entry["cron"], timezone=entry.get("timezone"),
                 parameters=entry.get("parameters") or {})
            if "cron" in entry else
            Interval(float(entry["interval"]), timezone=entry.get("timezone"),
                     parameters=entry.get("parameters") or {})
            for entry in schedules.get(flow_name, [])]
        deployments.append(flow_function.to_deployment(
            name=name, schedules=flow_schedules,
            description=(flow_function.description or "").splitlines()[0], tags=["terafeat"]))
    return deployments


def serve(config: Path | None = None, name: str | None = None) -> None:
    """Serve every flow as a deployment until interrupted (Prefect's ``serve``)."""
    from prefect import serve as prefect_serve
    name = deployment_name(config, name)
    print(f"serving {len(FLOWS)} flows as deployments FLOW/{name}", flush=True)
    prefect_serve(*build_deployments(read_schedules(config), name))
