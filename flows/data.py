"""``terafeat data list|fetch|verify``: the data sets, as text on the terminal."""
from __future__ import annotations

import sys
from pathlib import Path

from flows.progress import ProgressLine
from terafeat.datasets import catalog
from terafeat.datasets.download import ArchiveError, ChecksumError, DownloadError, fetch


def _size(size: int | None) -> str:
    if size is None:
        return "?"
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000


def data_command(action: str, names: list[str], root: Path, remote: bool = False) -> int:
    """Run one ``terafeat data`` action; returns the exit status (2: bad name, 1: a failed
    download or check)."""
    unknown = [name for name in names if name not in catalog.known()]
    if unknown:
        print(f"terafeat: unknown data set {', '.join(map(repr, unknown))}; known: "
              f"{', '.join(catalog.known())}", file=sys.stderr)
        return 2
    if action == "list":
        print(f"{'name':<14} {'size':>9}  {'present (under ' + str(root) + ')':<34} official URL")
        for name in names or catalog.known():
            row = catalog.describe(name, root, remote)
            more = f" (+{row['files'] - 1} more files)" if (row["files"] or 0) > 1 else ""
            print(f"{row['name']:<14} {_size(row['size']):>9}  {row['present']:<34} "
                  f"{row['url']}{more}")
        return 0
    if not names:
        print(f"terafeat: data {action} needs a data set name; known: "
              f"{', '.join(catalog.known())}", file=sys.stderr)
        return 2
    manual = [name for name in names if name in catalog.MANUAL]
    if manual:
        for name in manual:
            print(f"terafeat: {name} is fetched by hand from {catalog.MANUAL[name]}, "
                  f"unpacked into {root / name}", file=sys.stderr)
        return 2
    status = 0
    for name in names:
        if action == "fetch":
            line = ProgressLine() if sys.stdout.isatty() else None
            try:
                folder = fetch(name, root, progress=None if line is None else
                               lambda done, total: line(f"download {name}", done, total))
            except (DownloadError, ChecksumError, ArchiveError) as error:
                print(f"terafeat: {name}: {error}", file=sys.stderr)
                status = 1
                continue
            print(f"{name}: downloaded, checked and unpacked into {folder}")
        rows = catalog.verify(name, root)
        for row in rows:
            print(f"{row['status']:<40} {row['file']}")
        if not catalog.verified(rows):
            status = 1
    return status
