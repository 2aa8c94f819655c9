"""Run folders: ``<root>/<flow>/<UTC time>-<run name>/``, one per run, never reused."""
from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path


def new_run_dir(root, flow: str, run_name: str | None = None) -> Path:
    """Create ``root/<flow>/<run>/``, a folder no other run uses.

    The run folder is named ``<UTC time>-<run_name>``; if it exists (two runs
    in the same second with the same name) a counter is appended, so a run
    never overwrites another's outputs.
    """
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", run_name or "run").strip("-") or "run"
    parent = Path(root) / flow
    parent.mkdir(parents=True, exist_ok=True)
    for attempt in range(1000):
        candidate = parent / (f"{stamp}-{slug}" + (f"-{attempt}" if attempt else ""))
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise FileExistsError(f"could not create a new run folder under {parent}")
