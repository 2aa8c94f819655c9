"""A file cache of pipeline stages, keyed by what determines their outputs.

An entry is a folder ``<cache root>/<stage>/<key>/`` holding the stage's output
files and ``summary.json`` (its return value, paths made relative).  The key
hashes the stage's name, its parameters, the content of its input files and
the code the stage runs: the module defining its compute function and the
project modules that module imports, transitively (:func:`code_version`).  A
re-run with nothing changed finds every entry; a changed parameter, input or
imported module misses for that stage and those downstream of it (their
inputs change); an edit elsewhere (a report page) misses nothing.  Entries are
written to a scratch folder and renamed into place, so a killed stage
leaves no entry (an interrupted one removes its scratch folder; a killed one
leaves a ``.<key>.<host>.<pid>.tmp`` folder, which the next computation of that
stage on the same host, or :func:`prune`, removes once that process has ended).
:func:`prune` renames an entry away before deleting its files, so a reader never
finds a half-removed one.
"""
from __future__ import annotations

import ast
import hashlib
import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import psutil

from terafeat.atomic_files import load_json, save_json

#: Stands for the run folder in a cached summary.
RUN_DIR = "{run_dir}"
#: This machine's name, in scratch folders' names: the cache may be shared by several machines.
HOST = socket.gethostname()


def file_digest(path, chunk: int = 1 << 22) -> str:
    """SHA-256 of a file's content, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


#: The project's packages: a stage's code version follows imports into these only
#: (anything else is the environment: numpy, Prefect).
PROJECT_PACKAGES = ("terafeat", "tasks", "flows", "reporting", "runs")
#: The folder holding the project's packages.
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _module_file(module: str, root: Path) -> Path | None:
    """The source file of ``module`` under ``root`` (``a/b.py`` or ``a/b/__init__.py``)."""
    base = root.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imported_names(path: Path, module: str) -> set[str]:
    """Absolute names of the modules ``path`` (the source of ``module``) imports, in any
    statement, at any depth (a function's lazy import too); ``from a import b`` names
    both ``a`` and ``a.b`` (``b`` may be a submodule)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_bytes(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x, from ..a import b
                parent = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1])
                base = f"{parent}.{base}".strip(".")
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _with_parents(name: str) -> list[str]:
    """``a.b.c`` -> ``a``, ``a.b``, ``a.b.c``: importing a module runs its packages too."""
    parts = name.split(".")
    return [".".join(parts[:end]) for end in range(1, len(parts) + 1)]


@cache
def module_closure(module: str, root: Path = PROJECT_ROOT) -> tuple[Path, ...]:
    """Source files of ``module`` and of the project modules it imports, transitively
    (with their packages' ``__init__.py``), read from the files under ``root``; sorted.
    A module outside the project (a test's) is found through ``sys.modules``."""
    first = _module_file(module, root)
    if first is None:
        first = getattr(sys.modules.get(module), "__file__", None)
        if first is None:
            raise ValueError(f"no source file for module {module!r}")
        first = Path(first)
    found = {module: first}
    queue = [module, *_with_parents(module)[:-1]]
    while queue:
        name = queue.pop()
        if name not in found:
            if name.partition(".")[0] not in PROJECT_PACKAGES or (
                    path := _module_file(name, root)) is None:
                continue  # outside the project, or a name imported from a module
            found[name] = path
        for imported in _imported_names(found[name], name):
            queue.extend(part for part in _with_parents(imported) if part not in found)
    return tuple(sorted(set(found.values())))


@cache
def code_version(module: str, root: Path = PROJECT_ROOT) -> str:
    """Digest of the files of :func:`module_closure` (their paths and contents): the
    version of the code a stage computed by ``module`` runs.  Computed once a process."""
    digest = hashlib.sha256()
    for path in module_closure(module, root):
        name = path.relative_to(root) if path.is_relative_to(root) else path.name
        digest.update(f"{name}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def stage_key(stage: str, params: dict, inputs: dict[str, str], code: str) -> str:
    """Hex key of a stage run: name, parameters (JSON), input contents, code version."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"stage": stage, "params": params, "code": code},
                             sort_keys=True, default=str).encode())
    for name in sorted(inputs):
        digest.update(f"{name}:{file_digest(inputs[name])}".encode())
    return digest.hexdigest()[:24]


def _replace_paths(value, old: str, new: str):
    if isinstance(value, str):
        return value.replace(old, new)
    if isinstance(value, dict):
        return {k: _replace_paths(v, old, new) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_replace_paths(v, old, new) for v in value]
    return value


def files_fingerprint(paths) -> str:
    """Hex digest of files' paths, sizes and modification times (not their
    content): the fingerprint of a data set too large to hash, e.g. every
    listed tile or clip.  A missing file counts as such, not as an error."""
    digest = hashlib.sha256()
    for path in sorted({str(path) for path in paths}):
        try:
            info = os.stat(path)
            digest.update(f"{path}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
        except OSError:
            digest.update(f"{path}\0missing\n".encode())
    return digest.hexdigest()[:24]


def folder_fingerprint(root) -> str:
    """``files_fingerprint`` of every file under ``root`` (recursively)."""
    return files_fingerprint(path for path in Path(root).rglob("*") if path.is_file())


def _link_or_copy(source: Path, target: Path) -> None:
    """Hard-link (else copy) a file, or every file of a folder tree, to ``target``."""
    if source.is_dir():
        target.mkdir(exist_ok=True)
        for child in source.iterdir():
            _link_or_copy(child, target / child.name)
        return
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:  # another file system, or links not allowed
        shutil.copy2(source, target)


def cache_entry(cache_root, stage: str, params: dict, inputs: dict[str, str],
                module: str) -> Path:
    """The entry folder of a stage run whose code is ``module`` (and what it imports)."""
    return Path(cache_root) / stage / stage_key(stage, params, inputs, code_version(module))


def run_cached(cache_root, stage: str, params: dict, inputs: dict[str, str], run_dir,
               compute: Callable[[Path], object], resumable: bool = False) -> tuple[object, bool]:
    """:func:`run_entry` of this stage's entry, its code that of compute's module."""
    entry = cache_entry(cache_root, stage, params, inputs, compute.__module__)
    return run_entry(entry, run_dir, compute, resumable)


def run_entry(entry: Path, run_dir, compute: Callable[[Path], object],
              resumable: bool = False) -> tuple[object, bool]:
    """The result of ``compute(folder)`` for a stage, from its cache ``entry`` when present.

    compute writes its files into ``folder`` and returns a JSON-able summary
    (paths inside ``folder``).  The entry's files (and folders, recursively) are
    linked (or copied) into ``run_dir`` and the summary's paths point there.
    resumable: compute in a folder kept when it is interrupted (``.<key>.partial``),
    so that a re-run finds the files already written (compute must skip them).
    An entry pruned while it is being read is computed again.  Returns (summary, hit).
    """
    if (entry / "summary.json").is_file():
        try:
            return _deliver(entry, Path(run_dir)), True
        except FileNotFoundError:  # pruned meanwhile
            pass
    remove_dead_scratch(entry.parent)
    if resumable:
        scratch = entry.with_name(f".{entry.name}.partial")
    else:
        scratch = entry.with_name(f".{entry.name}.{HOST}.{os.getpid()}.tmp")
        shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        summary = compute(scratch)
        save_json(scratch / "summary.json", _replace_paths(summary, str(scratch), RUN_DIR))
    except BaseException:  # an error or Ctrl-C: no half-computed files stay behind
        if not resumable:  # (a resumable stage's files are whole: the re-run keeps them)
            shutil.rmtree(scratch, ignore_errors=True)
        raise
    try:
        scratch.rename(entry)
    except OSError:  # a concurrent run stored the same entry first
        shutil.rmtree(scratch, ignore_errors=True)
    return _deliver(entry, Path(run_dir)), False


def _scratch_owner(folder: Path) -> tuple[str, int] | None:
    """(host, pid) of a scratch folder ``.<key>.<host>.<pid>.tmp``; None for other names."""
    if not (folder.name.startswith(".") and folder.name.endswith(".tmp")):
        return None
    key_and_host, _, pid = folder.name[1:-len(".tmp")].rpartition(".")
    _, _, host = key_and_host.partition(".")
    return (host, int(pid)) if host and pid.isdigit() else None


def remove_dead_scratch(stage_folder: Path) -> None:
    """Delete the scratch folders in ``stage_folder`` of this host's processes that have
    ended (a killed run's); those of other hosts and of live processes stay."""
    for folder in Path(stage_folder).glob(".*.tmp"):
        if (owner := _scratch_owner(folder)) and owner[0] == HOST and not psutil.pid_exists(
                owner[1]):
            shutil.rmtree(folder, ignore_errors=True)


def _deliver(entry: Path, run_dir: Path):
    """Link the entry's files into ``run_dir``, mark it used now; its summary there."""
    for path in entry.iterdir():
        if path.name != "summary.json":
            _link_or_copy(path, run_dir / path.name)
    summary = load_json(entry / "summary.json")
    try:
        os.utime(entry)  # the folder's modification time: when the entry was last used
    except OSError:  # a read-only cache
        pass
    return _replace_paths(summary, RUN_DIR, str(run_dir))


@dataclass(frozen=True)
class CacheEntry:
    """One entry: its folder, total file size (bytes), when it was stored and last used
    (seconds since the epoch: ``summary.json``'s and the folder's modification times)."""

    path: Path
    size: int
    stored: float
    used: float

    @property
    def stage(self) -> str:
        return self.path.parent.name

    @property
    def key(self) -> str:
        return self.path.name


def list_entries(cache_root) -> list[CacheEntry]:
    """The complete entries under ``cache_root`` (scratch folders left out), by stage and
    then least recently used first."""
    entries = []
    for summary in Path(cache_root).glob("*/*/summary.json"):
        folder = summary.parent
        if folder.name.startswith("."):
            continue
        try:
            size = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
            entries.append(CacheEntry(folder, size, summary.stat().st_mtime,
                                      folder.stat().st_mtime))
        except FileNotFoundError:  # pruned meanwhile
            continue
    return sorted(entries, key=lambda entry: (entry.stage, entry.used))


def remove_entry(folder: Path) -> None:
    """Delete an entry: first renamed away (one atomic step: readers find it whole or
    not at all), then its files."""
    doomed = folder.with_name(f".{folder.name}.{os.getpid()}.removing")
    folder.rename(doomed)
    shutil.rmtree(doomed)


def prune(cache_root, older_than_days: float | None = None, max_size: int | None = None,
          now: float | None = None) -> list[CacheEntry]:
    """Remove the entries not used for ``older_than_days``, then the least recently used
    ones until the rest total at most ``max_size`` bytes; also what an interrupted prune
    left (``.removing`` folders) and killed runs' scratch folders
    (:func:`remove_dead_scratch`).  Returns the entries removed."""
    now = time.time() if now is None else now
    for leftover in Path(cache_root).glob("*/.*.removing"):
        shutil.rmtree(leftover, ignore_errors=True)
    for stage_folder in Path(cache_root).glob("*/"):
        remove_dead_scratch(stage_folder)
    kept = sorted(list_entries(cache_root), key=lambda entry: entry.used)
    removed = []
    if older_than_days is not None:
        removed = [e for e in kept if now - e.used > older_than_days * 86400]
        kept = kept[len(removed):]
    if max_size is not None:
        total = sum(entry.size for entry in kept)
        while kept and total > max_size:
            total -= kept[0].size
            removed.append(kept.pop(0))
    for entry in removed:
        try:
            remove_entry(entry.path)
        except FileNotFoundError:  # another prune took it
            pass
    return removed


#: Size units of :func:`parse_size`: decimal (kB, MB, GB, TB) and binary (KiB ... TiB).
_UNITS = {"": 1, "B": 1, "K": 10**3, "KB": 10**3, "M": 10**6, "MB": 10**6, "G": 10**9,
          "GB": 10**9, "T": 10**12, "TB": 10**12, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30,
          "TIB": 2**40}


def parse_size(text: str) -> int:
    """Bytes of a size such as ``2GB`` (10**9 bytes each), ``1.5GiB``, ``500M``, ``1024``."""
    number = text.strip().upper().rstrip("BIKMGT")
    unit = text.strip().upper()[len(number):]
    try:
        return int(float(number) * _UNITS[unit.strip()])
    except (ValueError, KeyError):
        raise ValueError(f"not a size: {text!r} (e.g. 2GB, 500MB, 1.5GiB)") from None


def format_size(size: float) -> str:
    """``1234567`` -> ``1.2 MB`` (decimal units)."""
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


def format_age(seconds: float) -> str:
    """``90061`` -> ``1d 1h``: the two largest units of a duration."""
    seconds = max(0, int(seconds))
    parts = [(seconds // 86400, "d"), (seconds % 86400 // 3600, "h"),
             (seconds % 3600 // 60, "m"), (seconds % 60, "s")]
    first = next((i for i, (value, _) in enumerate(parts) if value), len(parts) - 1)
    return " ".join(f"{value}{unit}" for value, unit in parts[first:first + 2] if value) or "0s"


def format_entries(entries: list[CacheEntry], now: float | None = None) -> str:
    """A table of entries: stage, key prefix, size, age (since stored), last used (ago)."""
    now = time.time() if now is None else now
    rows = [("stage", "key", "size", "age", "last used")]
    rows += [(entry.stage, entry.key[:12], format_size(entry.size),
              format_age(now - entry.stored), f"{format_age(now - entry.used)} ago")
             for entry in entries]
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
             for row in rows]
    total = sum(entry.size for entry in entries)
    return "\n".join(lines + [f"{len(entries)} entries, {format_size(total)}"])
