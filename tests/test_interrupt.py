"""Ctrl-C, SIGTERM or ``kill -9`` during ``terafeat run``: no half-written file
anywhere, no process left running, and the next run resumes from the stages that had
finished (the stage cache)."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil

from flows.quickstart import quickstart

# training long enough (3000 iterations, tens of seconds) to be interrupted in the middle
SLOW = dict(n_patches=10000, n_features=128, max_iter=3000, group_size=4, n_folds=2,
            images=("camera", "grass"))


def _start_quickstart(tmp_path: Path, env: dict, backend: str = "local",
                      **popen) -> subprocess.Popen:
    """``terafeat run quickstart`` (SLOW) in a subprocess, caching in tmp_path/cache and
    reporting to tmp_path/reports; its output goes to tmp_path/stdout.txt and stderr.txt
    (files, not pipes: a process left behind holding a pipe would block reading it)."""
    settings = [f"--set={key}={json.dumps(value)}"
                for key, value in dict(SLOW, backend=backend).items()]
    env = {**env, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": os.getcwd()}
    with open(tmp_path / "stdout.txt", "w") as out, open(tmp_path / "stderr.txt", "w") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "flows.cli", "run", "quickstart", *settings,
             f"--set=cache_root={json.dumps(str(tmp_path / 'cache'))}",
             "--output-root", str(tmp_path / "reports")],
            stdout=out, stderr=err, env=env, **popen)


def _ephemeral_env(tmp_path: Path) -> dict:
    """The environment of a run on Prefect's temporary server (no PREFECT_API_URL), its
    database in a PREFECT_HOME of its own."""
    env = {key: value for key, value in os.environ.items() if key != "PREFECT_API_URL"}
    return {**env, "PREFECT_HOME": str(tmp_path / "prefect-home")}


def _output(tmp_path: Path, stream: str) -> str:
    return (tmp_path / f"{stream}.txt").read_text()


def _wait_for_training(tmp_path: Path, process) -> None:
    """Until the run's training has started: its scratch folder exists in the cache."""
    deadline = time.monotonic() + 240
    while not any((tmp_path / "cache" / "train-rica").glob(".*.tmp")):
        assert process.poll() is None, f"the run ended early:\n{_output(tmp_path, 'stderr')[-3000:]}"
        assert time.monotonic() < deadline, "training did not start in time"
        time.sleep(0.05)


def _running(processes: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Those of ``processes`` still running after up to ``timeout`` seconds (a zombie,
    ended but not yet reaped, counts as ended)."""
    def alive(process):
        try:
            return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    deadline = time.monotonic() + timeout
    while (running := [p for p in processes if alive(p)]) and time.monotonic() < deadline:
        psutil.wait_procs(running, timeout=0.5)
    return running


def _check_complete_files(root: Path) -> None:
    """Every file under root is whole: no temporary files, arrays and JSON readable."""
    for path in root.rglob("*"):
        assert not path.name.endswith((".tmp", ".part")), f"left behind: {path}"
        if path.suffix == ".npy":
            np.load(path)
        elif path.suffix == ".json":
            json.loads(path.read_text())


def test_ctrl_c_during_training_leaves_whole_files_and_the_rerun_resumes(prefect_server,
                                                                         tmp_path):
    from prefect.settings import PREFECT_API_URL
    reports, cache = tmp_path / "reports", tmp_path / "cache"
    process = _start_quickstart(
        tmp_path, {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()},
        # as from a terminal: a test session started in the background (`cmd &` in a script)
        # passes SIGINT on as ignored, and Python then never raises KeyboardInterrupt
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        _wait_for_training(tmp_path, process)
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    out, err = _output(tmp_path, "stdout"), _output(tmp_path, "stderr")
    assert process.returncode == 130, err[-3000:]
    assert "interrupted" in err and "report:" not in out
    [run] = list((reports / "quickstart").iterdir())
    assert not (run / "results.json").exists() and not (run / "W.npy").exists()
    _check_complete_files(reports)
    _check_complete_files(cache)
    finished = {stage.name: [e.name for e in stage.iterdir()] for stage in cache.iterdir()}
    assert finished["train-rica"] == [] and len(finished["whiten"]) == 1
    assert len(finished["sample-patches"]) == 1

    # the next run (shorter training, to finish quickly) takes the finished stages from the cache
    again = quickstart(**dict(SLOW, max_iter=5), cache_root=str(cache),
                       output_root=str(reports))
    assert again["cache"] == {"sample-patches": "cache", "whiten": "cache",
                              "train-rica": "computed", "evaluate-faces": "computed",
                              "score-invariance": "computed"}
    assert Path(again["report"]).is_file()


def test_sigterm_to_the_runs_process_group_stops_it_within_seconds_with_whole_files(tmp_path):
    # as `kill -TERM -PGID`, `timeout` or a service manager's stop: every process of the
    # run's group gets the signal; the run (on Prefect's temporary server) stops like Ctrl-C
    process = _start_quickstart(tmp_path, _ephemeral_env(tmp_path), start_new_session=True)
    try:
        _wait_for_training(tmp_path, process)
        started = psutil.Process(process.pid).children(recursive=True)
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    err = _output(tmp_path, "stderr")
    assert process.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert "terminated" in err and "report:" not in _output(tmp_path, "stdout")
    _check_complete_files(tmp_path / "reports")
    _check_complete_files(tmp_path / "cache")
    assert not _running(started, 30)


def test_kill_9_leaves_no_process_and_the_next_run_removes_its_scratch(prefect_server,
                                                                        tmp_path):
    # on Prefect's temporary server, which the run starts as its child
    process = _start_quickstart(tmp_path, _ephemeral_env(tmp_path))
    started = []
    try:
        _wait_for_training(tmp_path, process)
        started = psutil.Process(process.pid).children(recursive=True)
        process.kill()
        process.wait(timeout=30)
        left = _running(started, 30)
    finally:
        for leftover in _running(started, 0):  # a failed test leaves nothing running either
            leftover.kill()
    assert started and not left, f"still running after the run was killed: {left}"
    [scratch] = (tmp_path / "cache" / "train-rica").glob(".*.tmp")

    again = quickstart(**dict(SLOW, max_iter=5), cache_root=str(tmp_path / "cache"),
                       output_root=str(tmp_path / "reports"))
    assert again["cache"]["train-rica"] == "computed" and not scratch.exists()
    _check_complete_files(tmp_path / "cache")


def test_kill_9_of_a_dask_run_leaves_no_worker_running(tmp_path):
    # backend=dask: the run starts a LocalCluster whose workers are its child processes
    process = _start_quickstart(tmp_path, _ephemeral_env(tmp_path), backend="dask")
    started = []
    try:
        deadline = time.monotonic() + 240
        while len(workers := [child for child in psutil.Process(process.pid).children()
                              if "multiprocessing.spawn" in " ".join(child.cmdline())]) < 2:
            assert process.poll() is None, f"the run ended early:\n{_output(tmp_path, 'stderr')[-3000:]}"
            assert time.monotonic() < deadline, "the Dask workers did not start in time"
            time.sleep(0.1)
        time.sleep(2)  # the workers hold their shards and train
        started = psutil.Process(process.pid).children(recursive=True)
        process.kill()
        process.wait(timeout=30)
        left = _running(started, 30)
    finally:
        for leftover in _running(started, 0):
            leftover.kill()
    assert workers and not left, f"still running after the run was killed: {left}"
