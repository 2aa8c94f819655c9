"""``terafeat serve`` against a real Prefect server, triggered as the UI does."""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import datetime, timedelta, timezone

import pytest

from flows.deployments import deployment_name, read_schedules
from flows.registry import FLOWS


def test_schedules_come_from_the_config_file(tmp_path):
    config = tmp_path / "terafeat.toml"
    config.write_text('[schedules.quickstart]\ncron = "0 3 * * *"\n'
                      '[schedules.quickstart.parameters]\nmax_iter = 50\n'
                      '[[schedules.histology]]\ninterval = 86400\n'
                      '[[schedules.histology]]\ncron = "0 4 * * 0"\ntimezone = "Europe/Paris"\n')
    schedules = read_schedules(config)
    assert schedules["quickstart"] == [{"cron": "0 3 * * *", "parameters": {"max_iter": 50}}]
    assert schedules["histology"] == [{"interval": 86400},
                                      {"cron": "0 4 * * 0", "timezone": "Europe/Paris"}]
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[tool.terafeat.schedules.quickstart]\ninterval = 60\n')
    assert read_schedules(pyproject) == {"quickstart": [{"interval": 60}]}


@pytest.mark.parametrize("text, message", [
    ('[schedules.imagenet9]\ncron = "0 3 * * *"\n', "no flow named 'imagenet9'"),
    ('[schedules.quickstart]\ncron = "0 3 * * *"\ninterval = 5\n', "exactly one"),
    ('[schedules.quickstart]\nevery = 5\n', "unknown keys"),
    ('[schedules.quickstart]\ninterval = 60\nparameters = {max_iter = 0}\n',
     "parameters of the quickstart schedule: max_iter=0: Input should be greater than or equal to 1"),
    ('[schedules.quickstart]\ninterval = 60\nparameters = {maxiter = 5}\n',
     "unknown parameter 'maxiter'"),
])
def test_bad_schedules_are_named(tmp_path, text, message):
    config = tmp_path / "terafeat.toml"
    config.write_text(text)
    with pytest.raises(ValueError, match=f"{config}: .*{message}"):
        read_schedules(config)


def test_deployment_name_comes_from_the_option_the_config_or_the_folder(tmp_path, monkeypatch):
    folder = tmp_path / "my lab"
    folder.mkdir()
    monkeypatch.chdir(folder)
    assert deployment_name() == "my-lab"
    config = folder / "terafeat.toml"
    config.write_text('[serve]\nname = "nightly"\n')
    assert deployment_name(config) == "nightly"
    assert deployment_name(config, "adhoc") == "adhoc"


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
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_API_URL": url,
           "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2"}
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


def _serve(tmp_path, env, config, name):
    log = tmp_path / f"serve-{name}.log"
    return subprocess.Popen([sys.executable, "-m", "flows.cli", "serve", "--config", str(config),
                             "--name", name], env=env, cwd=tmp_path, stdout=open(log, "wb"),
                            stderr=subprocess.STDOUT)


def _stop(process):
    process.terminate()
    process.wait(timeout=60)


def test_deployments_keep_defaults_schedules_carry_parameters_and_cli_runs_override(
        real_server, tmp_path):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.settings import PREFECT_API_URL, temporary_settings
    from prefect.states import Scheduled

    url, env = real_server
    config = tmp_path / "terafeat.toml"
    config.write_text('[schedules.quickstart]\ncron = "0 3 * * *"\n'
                      '[schedules.quickstart.parameters]\nmax_iter = 7\nn_folds = 3\n')
    served = _serve(tmp_path, env, config, "probe")
    try:
        with temporary_settings(updates={PREFECT_API_URL: url}), \
                get_client(sync_client=True) as client:
            _wait(lambda: len(client.read_deployments()) == len(FLOWS), 120, "deployments",
                  [served])
            deployment = client.read_deployment_by_name("quickstart/probe")
            # the deployment keeps the flow's defaults; the schedule holds its own values
            assert deployment.parameters == {}
            assert [(s.schedule.cron, s.parameters) for s in deployment.schedules] == \
                [("0 3 * * *", {"max_iter": 7, "n_folds": 3})]
            assert set(deployment.parameter_openapi_schema["properties"]) >= {
                "max_iter", "n_features", "seed", "backend"}
            assert client.read_deployment_by_name("histology/probe").schedules == []
            # the runs the server's scheduler creates get the schedule's parameters ...
            _wait(lambda: client.read_flow_runs(deployment_filter=DeploymentFilter(
                id=DeploymentFilterId(any_=[deployment.id]))), 120, "scheduled runs", [served])
            scheduled = client.read_flow_runs(deployment_filter=DeploymentFilter(
                id=DeploymentFilterId(any_=[deployment.id])))
            assert {run.auto_scheduled for run in scheduled} == {True}
            assert all(run.parameters == {"max_iter": 7, "n_folds": 3} for run in scheduled)
            # ... and a manual run (the UI's "Run", left pending here) the flow's defaults
            manual = client.create_flow_run_from_deployment(
                deployment.id, state=Scheduled(scheduled_time=datetime.now(timezone.utc)
                                               + timedelta(days=30)))
            assert manual.parameters == {}

            # serve from a second folder registers its own deployments; stopping it
            # leaves ours running (Prefect pauses the stopped runner's own, in its own time)
            other = _serve(tmp_path, env, config, "other")
            try:
                _wait(lambda: len(client.read_deployments()) == 2 * len(FLOWS), 120,
                      "second deployments", [other, served])
                # stopped only once serving (the runner pauses its deployments on SIGTERM)
                _wait(lambda: "trigger your deployments" in (
                    tmp_path / "serve-other.log").read_text(errors="replace"), 120,
                      "second serve ready", [other])
            finally:
                _stop(other)
            assert not client.read_deployment_by_name("quickstart/probe").paused

        # the CLI a user types: each -p is one flow parameter
        reports = tmp_path / "reports"
        started = subprocess.run(
            [sys.executable, "-m", "prefect", "deployment", "run", "quickstart/probe",
             "-p", "max_iter=5", "-p", "n_patches=2000", "-p", "n_features=32", "-p",
             "n_folds=2", "-p", 'images=["camera", "brick"]', "-p", f"output_root={reports}",
             "--watch", "--watch-timeout", "600"], env=env, capture_output=True, text=True,
            timeout=660)
        assert started.returncode == 0, started.stdout + started.stderr
        results = json.loads(next((reports / "quickstart").glob("*/results.json")).read_text())
        assert results["parameters"]["max_iter"] == 5 and results["training"]["n_iter"] == 5
        assert results["parameters"]["n_features"] == 32
        assert results["parameters"]["lam"] == 10.0  # not given: the flow's default
        with temporary_settings(updates={PREFECT_API_URL: url}), \
                get_client(sync_client=True) as client:
            artifacts = {a.key: a for a in client.read_artifacts() if a.key}
        assert results["run_dir"] in artifacts["quickstart-report"].data
    finally:
        _stop(served)
    assert "quickstart/probe" in (tmp_path / "serve-probe.log").read_text(errors="replace")
