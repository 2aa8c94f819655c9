"""``terafeat serve`` against a real Prefect server, triggered as the UI does."""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from flows.deployments import read_schedules
from flows.registry import FLOWS


def test_schedules_come_from_the_config_file(tmp_path):
    config = tmp_path / "terafeat.toml"
    config.write_text('[schedules.quickstart]\ncron = "0 3 * * *"\n'
                      '[schedules.quickstart.parameters]\nmax_iter = 50\n'
                      '[schedules.histology]\ninterval = 86400\n')
    schedules = read_schedules(config)
    assert schedules["quickstart"]["cron"] == "0 3 * * *"
    assert schedules["quickstart"]["parameters"] == {"max_iter": 50}
    assert schedules["histology"]["interval"] == 86400
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[tool.terafeat.schedules.quickstart]\ninterval = 60\n')
    assert read_schedules(pyproject) == {"quickstart": {"interval": 60}}


@pytest.mark.parametrize("text, message", [
    ('[schedules.imagenet9]\ncron = "0 3 * * *"\n', "no flow named 'imagenet9'"),
    ('[schedules.quickstart]\ncron = "0 3 * * *"\ninterval = 5\n', "exactly one"),
    ('[schedules.quickstart]\nevery = 5\n', "unknown keys"),
])
def test_bad_schedules_are_named(tmp_path, text, message):
    config = tmp_path / "terafeat.toml"
    config.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_schedules(config)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait(condition, timeout: float, what: str, processes=()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for process in processes:
            if process.poll() is not None:
                raise RuntimeError(f"{what}: process exited early with {process.returncode}")
        try:
            if condition():
                return
        except OSError:
            pass
        time.sleep(1)
    raise TimeoutError(f"{what}: not ready after {timeout} s")


@pytest.fixture
def real_server(tmp_path):
    """``prefect server start`` on a free port of 127.0.0.1, its own PREFECT_HOME."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-home"),
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_API_URL": url}
    server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host",
                               "127.0.0.1", "--port", str(port)], env=env,
                              stdout=open(tmp_path / "server.log", "wb"), stderr=subprocess.STDOUT)
    try:
        _wait(lambda: urllib.request.urlopen(f"{url}/health", timeout=2).status == 200, 120,
              "prefect server", [server])
        yield url, env
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_served_deployment_runs_with_custom_parameters(real_server, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    url, env = real_server
    config = tmp_path / "terafeat.toml"
    config.write_text('[schedules.quickstart]\ncron = "0 3 * * *"\n')
    served = subprocess.Popen([sys.executable, "-m", "flows.cli", "serve", "--config", str(config)],
                              env=env, cwd=tmp_path, stdout=open(tmp_path / "serve.log", "wb"),
                              stderr=subprocess.STDOUT)
    try:
        with temporary_settings(updates={PREFECT_API_URL: url}):
            with get_client(sync_client=True) as client:
                _wait(lambda: len(client.read_deployments()) == len(FLOWS), 120, "deployments",
                      [served])
                deployment = client.read_deployment_by_name("quickstart/quickstart")
                assert [s.schedule.cron for s in deployment.schedules] == ["0 3 * * *"]
                assert "params" in deployment.parameter_openapi_schema["properties"]
                unscheduled = client.read_deployment_by_name("histology/histology")
                assert unscheduled.schedules == []
            parameters = {"params": {"n_patches": 2000, "n_features": 32, "max_iter": 5,
                                     "n_folds": 2, "images": ["camera", "brick"],
                                     "output_root": str(tmp_path / "reports")}}
            flow_run = run_deployment("quickstart/quickstart", parameters=parameters, timeout=600)
            assert flow_run.state.is_completed(), flow_run.state
            with get_client(sync_client=True) as client:
                artifacts = {a.key: a for a in client.read_artifacts() if a.key}
        results = next((tmp_path / "reports" / "quickstart").glob("*/results.json"))
        saved = json.loads(results.read_text())
        assert saved["parameters"]["n_features"] == 32 and saved["training"]["n_iter"] == 5
        assert str(results.parent) in artifacts["quickstart-report"].data
    finally:
        served.terminate()
        served.wait(timeout=30)
    log = Path(tmp_path / "serve.log").read_text(errors="replace")
    assert "quickstart" in log
