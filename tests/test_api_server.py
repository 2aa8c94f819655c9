"""The run's temporary API server: Prefect's command, in a session of its own."""
import subprocess
import sys

from prefect.server.api.server import SubprocessASGIServer

from flows.api_server import RunBoundServer


def test_the_run_bound_server_runs_prefects_command_in_a_session_of_its_own(monkeypatch):
    launched = []
    monkeypatch.setattr(subprocess, "Popen", lambda **kwargs: launched.append(kwargs))
    for server_class in (SubprocessASGIServer, RunBoundServer):
        server = object.__new__(server_class)  # not registered as Prefect's default server
        server.port = 8123
        server._run_uvicorn_command()
    prefects, ours = launched
    assert {key: value for key, value in ours.items()
            if key not in ("start_new_session", "preexec_fn")} == prefects
    assert ours["start_new_session"]
    assert (ours["preexec_fn"] is not None) == sys.platform.startswith("linux")
