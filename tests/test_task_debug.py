"""``terafeat task``: one stage alone, on a past run's inputs, with no Prefect server."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from prefect.settings import PREFECT_API_URL

from flows.quickstart import PLAN
from flows.stages import replay_stage
from terafeat.atomic_files import save_array, save_json
from terafeat.media.patches import sample_patches


@pytest.fixture
def past_run(tmp_path):
    """A quickstart run folder as a finished run leaves it (the files the stages read)."""
    run = tmp_path / "reports" / "quickstart" / "20260101-000000-old-run"
    run.mkdir(parents=True)
    rng = np.random.default_rng(0)
    save_array(run / "patches.npy", sample_patches([rng.random((64, 64))], 2000, 8, random_state=0))
    params = PLAN.model(n_features=32, max_iter=5, n_patches=2000)
    save_json(run / "results.json", {"flow": "quickstart", "parameters": params.model_dump(mode="json"),
                                     "run_dir": str(run), "patches": str(run / "patches.npy"),
                                     "whitening": [str(run / "whitener.npz"),
                                                   str(run / "whitened.npy")]})
    return run


def _terafeat(*args, cwd, api_url="http://127.0.0.1:9/api"):
    # by default an API address where nothing listens: any attempt to reach a server would fail
    env = {**os.environ, "PREFECT_API_URL": api_url}
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=300)


def test_stages_run_alone_without_a_server_and_leave_the_run_untouched(past_run, tmp_path):
    before = sorted(p.name for p in past_run.iterdir())
    done = _terafeat("task", "whiten", "--run", str(past_run), "--set", "whitening_eps=0.01",
                     "--output-root", str(tmp_path / "debug"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert str(past_run / "patches.npy") in done.stdout
    whitened_dir = next((tmp_path / "debug" / "tasks" / "whiten").iterdir())
    assert {p.name for p in whitened_dir.iterdir()} == {"whitened.npy", "whitener.npz"}
    with np.load(whitened_dir / "whitener.npz") as whitener:
        assert float(whitener["eps"]) == 0.01  # the override, not the run's 1e-4
    # the next stage on the output of the first: it needs results.json there too
    (whitened_dir / "results.json").write_text((past_run / "results.json").read_text())
    done = _terafeat("task", "train-rica", "--run", str(whitened_dir), "--output-root",
                     str(tmp_path / "debug"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    trained = next((tmp_path / "debug" / "tasks" / "train-rica").iterdir())
    assert np.load(trained / "W.npy").shape == (32, 64)
    summary = json.loads(done.stdout[done.stdout.index("{"):])
    assert summary["n_iter"] == 5
    assert sorted(p.name for p in past_run.iterdir()) == before


def test_bad_requests_name_the_problem(past_run, tmp_path):
    with pytest.raises(ValueError, match="has no stage 'whitten'; stages: sample-patches, whiten"):
        replay_stage(PLAN, "whitten", past_run, {}, tmp_path)
    with pytest.raises(ValueError, match="whitened.npy"):
        replay_stage(PLAN, "train-rica", past_run, {}, tmp_path)
    with pytest.raises(ValueError, match="max_iter"):
        replay_stage(PLAN, "whiten", past_run, {"max_iter": -1}, tmp_path)
    done = _terafeat("task", "whiten", "--run", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 2 and "results.json" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_a_stage_logs_to_the_terminal_alone_where_a_server_is_configured(prefect_server, past_run,
                                                                          tmp_path):
    done = _terafeat("task", "whiten", "--run", str(past_run), "--output-root",
                     str(tmp_path / "debug"), cwd=tmp_path, api_url=PREFECT_API_URL.value())
    assert done.returncode == 0, done.stderr
    assert "zca whitening, eps=0.0001" in done.stderr
    assert "Warning" not in done.stderr, done.stderr
