"""A file cache of pipeline stages, keyed by what determines their outputs.

An entry is a folder ``<cache root>/<stage>/<key>/`` holding the stage's output
files and ``summary.json`` (its return value, paths made relative).  The key
hashes the stage's name, its parameters, the content of its input files and
the code of ``terafeat`` and ``tasks`` (the code version): a re-run with
nothing changed finds every entry; a changed parameter or input misses for
that stage and those downstream of it (their inputs change).  Entries are
written to a temporary folder and renamed into place, so a killed stage
leaves no entry (an interrupted one removes its scratch folder; a killed one
leaves a ``.tmp`` folder that the next attempt ignores).
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from terafeat.atomic_files import load_json, save_json

#: Stands for the run folder in a cached summary.
RUN_DIR = "{run_dir}"


def file_digest(path, chunk: int = 1 << 22) -> str:
    """SHA-256 of a file's content, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@lru_cache(maxsize=1)
def code_version() -> str:
    """Digest of every ``.py`` file of the ``terafeat`` and ``tasks`` packages."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for package in ("terafeat", "tasks"):
        for path in sorted((root / package).rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def stage_key(stage: str, params: dict, inputs: dict[str, str]) -> str:
    """Hex key of a stage run: name, parameters (JSON), input contents, code version."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"stage": stage, "params": params, "code": code_version()},
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


def run_cached(cache_root, stage: str, params: dict, inputs: dict[str, str], run_dir,
               compute: Callable[[Path], object], resumable: bool = False) -> tuple[object, bool]:
    """The result of ``compute(folder)`` for this stage, from the cache when present.

    compute writes its files into ``folder`` and returns a JSON-able summary
    (paths inside ``folder``).  The entry's files (and folders, recursively) are
    linked (or copied) into ``run_dir`` and the summary's paths point there.
    resumable: compute in a folder kept when it is interrupted (``.<key>.partial``),
    so that a re-run finds the files already written (compute must skip them).
    Returns (summary, hit).
    """
    entry = Path(cache_root) / stage / stage_key(stage, params, inputs)
    hit = (entry / "summary.json").is_file()
    if not hit:
        if resumable:
            scratch = entry.with_name(f".{entry.name}.partial")
        else:
            scratch = entry.with_name(f".{entry.name}.{os.getpid()}.tmp")
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
    run_dir = Path(run_dir)
    for path in entry.iterdir():
        if path.name != "summary.json":
            _link_or_copy(path, run_dir / path.name)
    return _replace_paths(load_json(entry / "summary.json"), RUN_DIR, str(run_dir)), hit
