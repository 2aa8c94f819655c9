"""Ctrl-C during ``terafeat run``: no half-written file anywhere, and the next run
resumes from the stages that had finished (the stage cache)."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from flows.quickstart import quickstart

# training long enough (3000 iterations, tens of seconds) to be interrupted in the middle
SLOW = dict(n_patches=10000, n_features=128, max_iter=3000, group_size=4, n_folds=2,
            images=("camera", "grass"))


def _wait_for(predicate, timeout: float, process) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert process.poll() is None, f"the run ended early:\n{process.communicate()[1][-3000:]}"
        assert time.monotonic() < deadline, "training did not start in time"
        time.sleep(0.05)


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
    settings = [f"--set={key}={json.dumps(value)}" for key, value in SLOW.items()]
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(),
           "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": os.getcwd()}
    process = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "run", "quickstart", *settings,
         f"--set=cache_root={json.dumps(str(cache))}", "--output-root", str(reports)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        # as from a terminal: a test session started in the background (`cmd &` in a script)
        # passes SIGINT on as ignored, and Python then never raises KeyboardInterrupt
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        # training has started when its scratch folder exists in the cache
        _wait_for(lambda: any((cache / "train-rica").glob(".*.tmp")), 240, process)
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
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
                              "train-rica": "computed", "evaluate-faces": "computed"}
    assert Path(again["report"]).is_file()
