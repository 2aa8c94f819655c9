"""Where benchmark numbers live: each benchmark writes ``bench/results/<name>.json`` with
its measured values beside the peer's, the command that produced them, the commit, the
date and the machine.  The docs quote these files; no number is typed by hand: a quote
is written ``<!--bench NAME:KEY-->value<!--/bench-->`` in README.md or docs/ (KEY a
dotted path into the file's ``values``), and ``record`` rewrites every quote of the
file it writes (``python bench/results.py`` rewrites all of them).
"""
from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from terafeat.atomic_files import save_json

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


def _commit() -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO,
                                capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=REPO, capture_output=True, text=True).stdout.strip()
        return commit + ("+uncommitted" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> dict:
    """The machine the numbers were measured on (noisy and shared: compare ratios)."""
    return {"platform": platform.platform(), "python": platform.python_version(),
            "cores": os.cpu_count(), "processor": platform.processor() or platform.machine(),
            "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS")}


def record(name: str, values: dict, *, peer: str, notes: str = "") -> Path:
    """Write ``bench/results/<name>.json``: ``values`` (ours and the peer's, measured in the
    same run), what the peer is, the command line, commit, UTC date and machine."""
    command = "python " + " ".join([os.path.relpath(sys.argv[0], REPO), *sys.argv[1:]])
    path = save_json(RESULTS / f"{name}.json", {
        "benchmark": name, "values": values, "peer": peer, "notes": notes,
        "command": command, "commit": _commit(),
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": machine()})
    print(f"results: {path}")
    quote_results(only=name)
    return path


#: ``<!--bench NAME:KEY-->value<!--/bench-->``: a number quoted from a results file, or
#: ``<!--bench NAME:KEY|.2f-->`` formatted by a format spec (not after a backtick: in
#: code it is an example of the syntax).
QUOTE = re.compile(r"(?<!`)<!--bench (?P<name>[\w-]+):(?P<key>[\w.]+)(?:\|(?P<format>[^>]+?))?-->"
                   r"(?P<value>.*?)<!--/bench-->")


def quoted_value(name: str, key: str, spec: str | None = None) -> str:
    """``values[key]`` (a dotted path) of ``bench/results/<name>.json``, as text (formatted
    by ``spec``, e.g. ".2f", when given)."""
    value = json.loads((RESULTS / f"{name}.json").read_text())["values"]
    for part in key.split("."):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return str(value) if spec is None else format(value, spec)


def quoting_documents() -> list[Path]:
    """README.md and every page under docs/."""
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def quote_results(only: str | None = None) -> None:
    """Rewrite the quotes of every results file (or of ``only``) with its current values."""
    def current(match: re.Match) -> str:
        if only is not None and match["name"] != only:
            return match[0]
        value = quoted_value(match["name"], match["key"], match["format"])
        spec = "" if match["format"] is None else f"|{match['format']}"
        return f"<!--bench {match['name']}:{match['key']}{spec}-->{value}<!--/bench-->"

    for document in quoting_documents():
        text = document.read_text()
        quoted = QUOTE.sub(current, text)
        if quoted != text:
            document.write_text(quoted)


if __name__ == "__main__":
    quote_results()
