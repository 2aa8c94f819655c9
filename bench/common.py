"""What the benchmarks share: the shared benchmark archives, extracted on demand, a flow
run in a fresh process, and a CPU hog for the busy-machine case."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def extracted(name: str, data_root: Path, archive: Path | None = None) -> Path:
    """``data_root/<name>``, extracted from ``archive`` (default: the shared
    ``<name>.tar`` beside the repository) if it has no ``train`` folder yet."""
    root = data_root / name
    archive = archive or SHARED_DATA / f"{name}.tar"
    if not (root / "train").is_dir():
        if not archive.is_file():
            raise SystemExit(f"{root} has no train folder and {archive} does not exist: "
                             "pass --data-root or --archive")
        from terafeat.datasets.download import extract
        print(f"extracting {archive} into {data_root} ...", flush=True)
        extract(archive, data_root)
    return root


@contextmanager
def cpu_hog(processes: int | None = None):
    """The busy-machine case: ``processes`` (default: one per core) Python processes that
    spin on the CPU for the duration of the block, stopped on exit."""
    count = (os.cpu_count() or 1) if processes is None else processes
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        time.sleep(0.5)  # let the scheduler see them before anything is timed
        yield count
    finally:
        for hog in hogs:
            hog.kill()
        for hog in hogs:
            hog.wait()


#: Runs flow argv[1] in a fresh interpreter (peak memory is a process's lifetime
#: high-water mark: two runs in one process would share it) with the JSON parameters
#: argv[2] and writes its run folder to argv[3].
CHILD = ("import json, pathlib, sys; from flows.registry import load_flow; "
         "results = load_flow(sys.argv[1])[0](**json.loads(sys.argv[2])); "
         "pathlib.Path(sys.argv[3]).write_text(results['run_dir'])")


def run_flow(flow: str, params: dict) -> tuple[dict, float]:
    """Flow ``flow``'s results.json and wall seconds, the flow run in its own process."""
    with tempfile.TemporaryDirectory() as scratch:
        where = Path(scratch) / "run_dir"
        started = time.perf_counter()
        env = {"PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",  # a busy machine
               **os.environ, "PYTHONPATH": str(REPO)}
        subprocess.run([sys.executable, "-c", CHILD, flow, json.dumps(params), str(where)],
                       cwd=REPO, check=True, env=env)
        seconds = time.perf_counter() - started
        run_dir = Path(where.read_text())
    return json.loads((run_dir / "results.json").read_text()), seconds
