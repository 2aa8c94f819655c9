import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from prefect import flow, task
from prefect.runtime import flow_run
from pydantic import BaseModel

from flows.cli import main
from flows.stages import Stage
from runs import stage_cache
from runs.stage_cache import (
    code_version,
    files_fingerprint,
    folder_fingerprint,
    format_entries,
    list_entries,
    module_closure,
    parse_size,
    prune,
    remove_entry,
    run_cached,
    stage_key,
)
from tasks.logs import cached
from terafeat.atomic_files import save_array


def _stage(calls):
    def compute(out):
        calls.append(out)
        return {"W": str(save_array(out / "W.npy", np.arange(4.0))), "n": 4}
    return compute


def test_hit_miss_and_paths_point_into_each_run(tmp_path):
    source = save_array(tmp_path / "input.npy", np.ones(3))
    calls = []
    first_run, second_run = tmp_path / "run1", tmp_path / "run2"
    first_run.mkdir(), second_run.mkdir()
    first, hit = run_cached(tmp_path / "cache", "train", {"k": 4}, {"X": source}, first_run,
                            _stage(calls))
    assert not hit and first["W"] == str(first_run / "W.npy") and first["n"] == 4
    second, hit = run_cached(tmp_path / "cache", "train", {"k": 4}, {"X": source}, second_run,
                             _stage(calls))
    assert hit and len(calls) == 1 and second["W"] == str(second_run / "W.npy")
    np.testing.assert_array_equal(np.load(second["W"]), np.arange(4.0))
    _, hit = run_cached(tmp_path / "cache", "train", {"k": 5}, {"X": source}, second_run,
                        _stage(calls))
    assert not hit  # another parameter
    save_array(source, np.zeros(3))
    _, hit = run_cached(tmp_path / "cache", "train", {"k": 4}, {"X": source}, second_run,
                        _stage(calls))
    assert not hit  # the same path with other content


def test_an_interrupted_stage_leaves_no_entry(tmp_path):
    def interrupted(out):
        save_array(out / "W.npy", np.arange(4.0))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_cached(tmp_path / "cache", "train", {}, {}, tmp_path, interrupted)
    assert list((tmp_path / "cache" / "train").iterdir()) == []  # not even a scratch folder
    calls = []
    _, hit = run_cached(tmp_path / "cache", "train", {}, {}, tmp_path, _stage(calls))
    assert not hit and len(calls) == 1
    entries = [p for p in (tmp_path / "cache" / "train").iterdir() if not p.name.startswith(".")]
    assert len(entries) == 1 and (entries[0] / "summary.json").is_file()


def test_a_killed_runs_scratch_is_removed_when_its_stage_next_runs_or_on_prune(tmp_path):
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()  # a process that has ended: a killed run
    cache, host = tmp_path / "cache", stage_cache.HOST
    dead = cache / "train" / f".0a1b.{host}.{ended.pid}.tmp"
    live = cache / "train" / f".2c3d.{host}.{os.getpid()}.tmp"
    elsewhere = cache / "train" / f".4e5f.other.host.{ended.pid}.tmp"  # its pid is not ours
    dead_in_another_stage = cache / "whiten" / f".6a7b.{host}.{ended.pid}.tmp"
    for folder in (dead, live, elsewhere, dead_in_another_stage):
        folder.mkdir(parents=True)
        save_array(folder / "W.npy", np.arange(4.0))
    run_cached(cache, "train", {}, {}, tmp_path, _stage([]))
    assert not dead.exists() and live.exists() and elsewhere.exists()
    assert dead_in_another_stage.exists()  # until its own stage runs, or a prune
    prune(cache)
    assert not dead_in_another_stage.exists() and live.exists() and elsewhere.exists()


def test_data_fingerprints_follow_names_sizes_and_times(tmp_path):
    for name in ("a.jpg", "b.jpg"):
        (tmp_path / name).write_bytes(b"tile")
    files = [tmp_path / "a.jpg", tmp_path / "b.jpg"]
    before, folder = files_fingerprint(files), folder_fingerprint(tmp_path)
    assert files_fingerprint(reversed(files)) == before and folder == before
    stat = files[0].stat()
    os.utime(files[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    touched = files_fingerprint(files)
    assert touched != before
    files[1].write_bytes(b"tile!")  # another size
    assert files_fingerprint(files) not in (before, touched)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.jpg").write_bytes(b"")
    assert folder_fingerprint(tmp_path) != files_fingerprint(files)
    files[0].unlink()  # a listed file gone: a different key, not an error
    assert files_fingerprint(files) != folder_fingerprint(tmp_path)


def test_folder_outputs_are_linked_into_the_run(tmp_path):
    def compute(out):
        save_array(out / "features" / "train" / "00000.npy", np.ones(2))
        return {"features_dir": str(out / "features")}

    run1, run2 = tmp_path / "run1", tmp_path / "run2"
    run1.mkdir(), run2.mkdir()
    run_cached(tmp_path / "cache", "features", {}, {}, run1, compute)
    summary, hit = run_cached(tmp_path / "cache", "features", {}, {}, run2, compute)
    assert hit and summary["features_dir"] == str(run2 / "features")
    np.testing.assert_array_equal(np.load(run2 / "features" / "train" / "00000.npy"), np.ones(2))


def _project_copy(root):
    """The project's packages (their .py files) copied under ``root``."""
    from runs.stage_cache import PROJECT_PACKAGES, PROJECT_ROOT
    for package in PROJECT_PACKAGES:
        shutil.copytree(PROJECT_ROOT / package, root / package,
                        ignore=lambda folder, names: [n for n in names if n == "__pycache__"])
    return root


def _key(root):
    module_closure.cache_clear(), code_version.cache_clear()
    return stage_key("train-rica", {"lam": 0.1}, {}, code_version("tasks.training", root))


def test_the_key_follows_the_code_the_stage_imports_not_the_rest(tmp_path):
    root = _project_copy(tmp_path)
    files = {str(path.relative_to(root)) for path in module_closure("tasks.training", root)}
    assert {"tasks/training.py", "tasks/logs.py", "terafeat/learning/rica.py",
            "terafeat/__init__.py", "runs/stage_cache.py"} <= files
    assert not any(name.startswith(("reporting/", "flows/")) for name in files)
    before = _key(root)
    assert _key(root) == before
    page = root / "reporting" / "pages" / "quickstart.py"
    page.write_text(page.read_text() + "\n# a report page edited\n")
    assert _key(root) == before  # the report page is no code of train-rica
    rica = root / "terafeat" / "learning" / "rica.py"
    rica.write_text(rica.read_text() + "\n# RICA edited\n")
    assert _key(root) != before


def _entry(cache, stage, n_bytes, used_days_ago, now):
    """A stored entry of ``n_bytes`` of output, last used ``used_days_ago``."""
    def compute(out):
        (out / "data.bin").write_bytes(b"x" * n_bytes)
        return {"data": str(out / "data.bin")}

    run_dir = cache.parent / "runs" / f"{stage}-{n_bytes}"
    run_dir.mkdir(parents=True)
    run_cached(cache, stage, {"n": n_bytes}, {}, run_dir, compute)
    [folder] = [p for p in (cache / stage).iterdir() if (p / "data.bin").stat().st_size == n_bytes]
    stamp = now - used_days_ago * 86400
    os.utime(folder / "summary.json", (stamp - 86400, stamp - 86400))  # stored a day earlier
    os.utime(folder, (stamp, stamp))
    return folder


def test_list_shows_each_entry_with_its_size_age_and_last_use(tmp_path, capsys):
    now = float(int(time.time()))  # whole seconds: exact ages
    cache = tmp_path / "cache"
    old = _entry(cache, "train-rica", 3000, 10, now)
    _entry(cache, "whiten", 200, 0.5, now)
    entries = list_entries(cache)
    assert [(e.stage, e.key, e.size) for e in entries] == [
        ("train-rica", old.name, 3000 + (old / "summary.json").stat().st_size),
        ("whiten", entries[1].key, entries[1].size)]
    lines = format_entries(entries, now=now).splitlines()
    assert lines[0].split() == ["stage", "key", "size", "age", "last", "used"]
    assert lines[1].split()[:2] == ["train-rica", old.name[:12]]
    assert lines[1].split()[-3:] == ["11d", "10d", "ago"]
    assert "12h ago" in lines[2] and lines[3].startswith("2 entries")
    (cache / "whiten" / ".abc.123.tmp").mkdir()  # a scratch folder: no entry
    assert main(["cache", "list", "--cache-root", str(cache)]) == 0
    printed = capsys.readouterr().out
    assert old.name[:12] in printed and "2 entries" in printed and ".abc" not in printed


def test_prune_removes_the_unused_then_the_least_recently_used(tmp_path, capsys):
    now = float(int(time.time()))
    cache = tmp_path / "cache"
    stale = _entry(cache, "train-rica", 1000, 30, now)
    older = _entry(cache, "train-rica", 2000, 3, now)
    recent = _entry(cache, "whiten", 3000, 1, now)
    newest = _entry(cache, "sample-patches", 4000, 0, now)
    removed = prune(cache, older_than_days=7, now=now)
    assert [e.path for e in removed] == [stale] and not stale.exists()
    sizes = {e.path: e.size for e in list_entries(cache)}
    budget = sizes[recent] + sizes[newest]
    assert main(["cache", "prune", "--cache-root", str(cache), "--max-size", str(budget)]) == 0
    assert "removed 1 entries" in capsys.readouterr().out
    assert not older.exists() and recent.exists() and newest.exists()
    assert prune(cache, max_size=budget - 1, now=now)[0].path == recent  # LRU first
    assert [e.path for e in list_entries(cache)] == [newest]
    assert not list(cache.glob("*/.*"))  # nothing half-removed left behind


def test_a_half_removed_entry_never_reads_as_valid(tmp_path, monkeypatch):
    cache, calls = tmp_path / "cache", []
    run_cached(cache, "train", {}, {}, tmp_path, _stage(calls))
    [entry] = list((cache / "train").iterdir())
    # a prune killed after its rename: the entry is gone for readers, the next prune
    # deletes the rest
    doomed = entry.rename(entry.with_name(f".{entry.name}.1.removing"))
    assert list_entries(cache) == []
    _, hit = run_cached(cache, "train", {}, {}, tmp_path, _stage(calls))
    assert not hit and len(calls) == 2
    prune(cache, older_than_days=1)
    assert not doomed.exists() and entry.is_dir()
    # an entry pruned while a run links its files: that run computes it again
    linked, pruned = stage_cache._link_or_copy, []

    def pruned_meanwhile(source, target):
        if not pruned:
            pruned.append(remove_entry(entry))
        linked(source, target)

    monkeypatch.setattr(stage_cache, "_link_or_copy", pruned_meanwhile)
    summary, hit = run_cached(cache, "train", {}, {}, tmp_path, _stage(calls))
    assert not hit and len(calls) == 3 and summary["n"] == 4
    assert (entry / "summary.json").is_file()  # stored again, whole


def test_sizes_parse_in_decimal_and_binary_units():
    assert [parse_size(text) for text in ("2GB", "1.5GiB", "500M", "1024", "3 kB")] == [
        2 * 10**9, int(1.5 * 2**30), 5 * 10**8, 1024, 3000]
    with pytest.raises(ValueError, match="not a size"):
        parse_size("2XB")


class _ToyParams(BaseModel):
    cache_root: str | None = None


@task(name="toy-stage")
def _toy_stage(run_dir: str, cache_root: str | None = None) -> dict:
    return cached(cache_root, "toy-stage", {}, {}, run_dir, _stage([]))


TOY = Stage(_toy_stage, "toy", lambda params, outputs: {})


@flow
def _toy_flow(cache_root: str, run_dir: str):
    values = [TOY.call(_ToyParams(cache_root=cache_root), {}, Path(run_dir)) for _ in range(2)]
    return values, str(flow_run.get_id())


def test_a_hit_is_the_task_runs_state_cached_and_a_log_line(prefect_server, tmp_path, caplog):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.client.schemas.sorting import TaskRunSort

    values, run_id = _toy_flow(str(tmp_path / "cache"), str(tmp_path))
    assert values[0] == values[1] == {"W": str(tmp_path / "W.npy"), "n": 4}  # plain values
    [entry] = (tmp_path / "cache" / "toy-stage").iterdir()
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])),
            sort=TaskRunSort.EXPECTED_START_TIME_ASC)
    assert [run.state.name for run in runs] == ["Completed", "Cached"]
    assert runs[1].state.is_completed()
    assert runs[1].state.message == f"cache hit: toy-stage {entry.name}"
    # outside Prefect (a replay, a legacy flow's direct call): the log line
    with caplog.at_level(logging.INFO, logger="terafeat.tasks"):
        assert _toy_stage.fn(run_dir=str(tmp_path), cache_root=str(tmp_path / "cache"))["n"] == 4
    assert f"cache hit: toy-stage {entry.name}" in caplog.text
