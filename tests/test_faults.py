"""Faults, exposure and re-runs, on real LocalClusters (separate processes)."""
from __future__ import annotations

import psutil
from threadpoolctl import threadpool_info

from terafeat.distributed.cluster import get_client


def _listening_addresses(processes) -> set[str]:
    addresses = set()
    for process in processes:
        for connection in process.net_connections(kind="inet"):
            if connection.status == psutil.CONN_LISTEN:
                addresses.add(connection.laddr.ip)
    return addresses


def _worker_blas_threads() -> list[int]:
    return [info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"]


def test_local_cluster_listens_on_loopback_only_and_workers_use_one_blas_thread(monkeypatch):
    # a parent's thread setting must not reach the workers (it used to, over Dask's default)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "2")
    with get_client(n_workers=2) as client:
        processes = [psutil.Process(), *psutil.Process().children(recursive=True)]
        addresses = _listening_addresses(processes)
        blas = client.run(_worker_blas_threads)
    assert len(processes) >= 3  # this process (scheduler, dashboard), nannies, workers
    assert addresses and addresses <= {"127.0.0.1"}, addresses
    assert len(blas) == 2 and all(threads == [1] * len(threads) for threads in blas.values()), blas
