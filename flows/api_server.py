"""Prefect's temporary API server for a run without PREFECT_API_URL, ending with the run.

Prefect's own (``SubprocessASGIServer``) runs in the run's process group, so a signal
to the group (Ctrl-C in a terminal, ``kill -TERM -PGID``) stops the server before the
run has reported its end, and the run then retries its API calls to a server that is
gone; and a killed run (``kill -9``) leaves it serving.  This one starts in a session
of its own, out of the group's reach, and on Linux gets SIGTERM when the run's process
ends, however it ends (the parent-death signal, prctl(2)).
"""
from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys

import prefect
from prefect.server.api.server import SubprocessASGIServer
from prefect.settings import PREFECT_API_URL, get_current_settings

#: prctl(2)'s option: the signal this process gets when the thread that started it ends.
PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def _end_with_parent(parent: int) -> None:
    """In the server's process, before it runs uvicorn: SIGTERM when ``parent`` ends."""
    if _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
    if os.getppid() != parent:  # the parent ended before the signal was armed
        os._exit(1)


class RunBoundServer(SubprocessASGIServer):
    """Prefect's ephemeral server, its process in a new session and tied to this one."""

    def _run_uvicorn_command(self) -> subprocess.Popen:
        # Prefect's command and environment (prefect.server.api.server, 3.9)
        parent = os.getpid()
        return subprocess.Popen(
            args=[sys.executable, "-m", "uvicorn", "--app-dir",
                  str(prefect.__module_path__.parent), "--factory",
                  "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port",
                  str(self.port), "--log-level", "error", "--lifespan", "on"],
            env={**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1",
                 "PREFECT__SERVER_FINAL": "1",
                 **get_current_settings().to_environment_variables(exclude_unset=True)},
            start_new_session=True,
            preexec_fn=(lambda: _end_with_parent(parent)) if _LIBC is not None else None)


def start_run_bound_server() -> RunBoundServer | None:
    """Start the run's temporary API server (Prefect's calls find this one), unless
    PREFECT_API_URL names a server.  Call it from the main thread: the parent-death
    signal follows the thread that started the process.  Prefect stops the server when
    this process exits (atexit)."""
    if PREFECT_API_URL.value():
        return None
    server = RunBoundServer()  # registered as the default instance: SubprocessASGIServer()
    server.start()
    return server
