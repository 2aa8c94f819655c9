"""``terafeat runs``: the past runs under a reports folder, newest first, with their
headline numbers (from each run's ``results.json``)."""
from __future__ import annotations

import json
from pathlib import Path


def list_runs(root: Path, flow: str | None = None) -> list[dict]:
    """One dict per finished run folder ``<root>/<flow>/<run>/results.json``:
    flow, run, path, and ``headline`` (rows, may be empty); newest first.

    A folder without ``results.json`` (a run that did not finish) is listed
    with ``status: "unfinished"``; an unreadable one with ``status: "unreadable"``.
    """
    runs = []
    for flow_dir in sorted(Path(root).iterdir()) if Path(root).is_dir() else []:
        if not flow_dir.is_dir() or flow_dir.name.startswith(".") or flow_dir.name in ("tasks", "compare"):
            continue
        if flow is not None and flow_dir.name != flow:
            continue
        for run_dir in flow_dir.iterdir():
            if not run_dir.is_dir() or run_dir.name.startswith("."):
                continue
            entry = {"flow": flow_dir.name, "run": run_dir.name, "path": str(run_dir),
                     "status": "finished", "headline": []}
            results = run_dir / "results.json"
            if not results.is_file():
                entry["status"] = "unfinished"
            else:
                try:
                    entry["headline"] = json.loads(results.read_text()).get("headline", [])
                except (OSError, ValueError):
                    entry["status"] = "unreadable"
            runs.append(entry)
    return sorted(runs, key=lambda entry: entry["run"], reverse=True)


def format_runs(runs: list[dict]) -> str:
    """Text lines: one per run, then its headline rows indented."""
    lines = []
    for entry in runs:
        lines.append(f"{entry['flow']:<20} {entry['run']}  ({entry['status']})")
        for row in entry["headline"]:
            lines.append("    " + "  ".join(f"{key}={_short(value)}" for key, value in row.items()))
    return "\n".join(lines) if lines else "no runs"


def _short(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
