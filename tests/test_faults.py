"""Faults, exposure and re-runs, on real LocalClusters (separate processes)."""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import dask
import numpy as np
import psutil
import pytest
from threadpoolctl import threadpool_info

from terafeat.distributed.cluster import WorkerLostError, get_client
from terafeat.distributed.downpour import DownpourRICA
from terafeat.distributed.lbfgs import DistributedRICA
from terafeat.distributed.sharded_data import DistributedRicaLoss, ShardedData
from terafeat.learning.rica_objective import RicaLoss

from ica_data import (  # noqa: F401 (fixtures, used by name)
    PARAMS,
    free_port,
    one_blas_thread,
    patches,
    reference,
    relative_difference,
    shards,
)


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


# ----------------------------------------------------------------------------- fault injection
# Each test kills worker processes of a real cluster (SIGKILL, no goodbye) and must end, one
# way or the other, within FAULT_BUDGET seconds.

FAULT_BUDGET = 60.0


@pytest.fixture(scope="module")
def cluster():
    """Two nanny-supervised workers: a killed one is restarted (under a new address).

    A LocalCluster closes a worker's nanny for good when, ``lost-worker-timeout``
    after one loss, no worker of that name is registered: a second kill of the same
    worker inside that window (these tests kill in quick succession) would then cost
    the cluster a worker.  The window is made longer than the module.
    """
    with dask.config.set({"distributed.deploy.lost-worker-timeout": "1h"}), \
            get_client(n_workers=2, dashboard_address="127.0.0.1:0") as client:
        yield client


@pytest.fixture
def client(cluster):
    yield cluster
    # restarted, for the next test: two workers that answer (a killed one can stay listed
    # until the scheduler notices, and wait_for_workers counts it)
    deadline = time.monotonic() + FAULT_BUDGET
    while True:
        cluster.wait_for_workers(2, timeout=FAULT_BUDGET)
        try:
            if len(cluster.run(os.getpid)) == 2:
                return
        except OSError:
            pass
        assert time.monotonic() < deadline, "the cluster did not get back its two workers"
        time.sleep(0.5)


def _kill(client, addresses) -> None:
    pids = client.run(os.getpid, workers=list(addresses))
    for pid in pids.values():
        os.kill(pid, signal.SIGKILL)


def _kill_at(iteration: int, client, choose):
    """An L-BFGS callback that kills the workers ``choose(addresses)`` at ``iteration``."""
    def callback(at, objective):
        if at == iteration:
            _kill(client, choose(sorted(client.scheduler_info()["workers"])))
    return callback


@pytest.mark.parametrize("choose, sandblaster", [
    (lambda workers: workers[1:], {}), (lambda workers: workers, {}),
    (lambda workers: workers[1:], {"portions_per_shard": 3, "backup_tasks": True})],
    ids=["one-worker", "every-shard-holder", "one-worker-backup-tasks"])
def test_lbfgs_survives_killed_workers_with_the_undisturbed_result(client, shards, reference,
                                                                   choose, sandblaster, caplog):
    caplog.set_level(logging.INFO, logger="terafeat.distributed")
    start = time.monotonic()
    model = DistributedRICA(**PARAMS, max_iter=60, dtype=np.float64, client=client,
                            callback=_kill_at(3, client, choose), **sandblaster).fit(shards)
    assert time.monotonic() - start < FAULT_BUDGET
    assert model.n_recoveries_ >= 1 and "reloaded on worker" in caplog.text
    assert model.n_iter_ == 60
    # L-BFGS went on from the current W with its memory intact: the run is the uninterrupted one.
    assert relative_difference(model.W_, reference.W_) < 1e-4


def test_shards_are_rebalanced_over_the_workers_after_a_recovery(client, shards, patches):
    W = np.random.default_rng(3).standard_normal((32, 16))
    expected = RicaLoss(patches, 32, PARAMS["lam"], PARAMS["eps"])(W)[0]
    with ShardedData(client, shards, np.float64) as data:
        loss = DistributedRicaLoss(data, PARAMS["lam"], PARAMS["eps"])
        assert sorted(map(len, data.by_worker().values())) == [2, 2]
        _kill(client, sorted(data.by_worker())[:1])
        assert loss(W)[0] == pytest.approx(expected, rel=1e-12)  # on the survivor
        client.wait_for_workers(2, timeout=FAULT_BUDGET)
        assert loss(W)[0] == pytest.approx(expected, rel=1e-12)
        assert sorted(map(len, data.by_worker().values())) == [2, 2]
        assert set(data.by_worker()) == set(client.scheduler_info()["workers"])


def test_losing_every_worker_for_good_fails_in_seconds_naming_them(shards, tmp_path):
    """Workers without a nanny (nothing restarts them) on an external scheduler."""
    address = f"tcp://127.0.0.1:{free_port()}"
    dask = str(Path(sys.executable).with_name("dask"))
    scheduler = subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port",
                                  address.rsplit(":", 1)[1], "--no-dashboard"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers = [subprocess.Popen([dask, "worker", address, "--nthreads", "1", "--no-nanny",
                                 "--no-dashboard", "--host", "127.0.0.1"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for _ in range(2)]
    try:
        with get_client(address, connect_timeout=30) as external:
            external.wait_for_workers(2, timeout=FAULT_BUDGET)
            lost = sorted(external.scheduler_info()["workers"])
            start = time.monotonic()
            with pytest.raises(WorkerLostError) as failure:
                DistributedRICA(**PARAMS, max_iter=60, dtype=np.float64, client=external,
                                recovery_timeout=5, callback=_kill_at(3, external, list)
                                ).fit(shards)
            assert time.monotonic() - start < 5 + 15
        assert set(failure.value.addresses) == set(lost)
        assert all(address in str(failure.value) for address in lost)
        assert "no worker" in str(failure.value)
    finally:
        for process in [*workers, scheduler]:
            process.kill()
            process.wait()


def _actor_worker(client) -> str:
    [where] = [address for address, actors in client.run(
        lambda dask_worker: list(dask_worker.state.actors)).items() if actors]
    return where


def test_parameter_server_loss_fails_fast_and_the_rerun_on_the_same_cluster_resumes(
        client, shards, tmp_path):
    checkpoint = tmp_path / "server.npz"
    params = dict(**PARAMS, max_iter=3000, dtype=np.float64, client=client, batch_size=64,
                  warm_start_steps=0, checkpoint_path=checkpoint, checkpoint_every=20,
                  actor_timeout=5)
    killer = threading.Thread(target=lambda: (
        _wait_until(checkpoint.exists), _kill(client, [_actor_worker(client)])))
    start = time.monotonic()
    killer.start()
    with pytest.raises(RuntimeError, match="parameter server was lost"):
        DownpourRICA(**params).fit(shards)
    killer.join()
    assert time.monotonic() - start < FAULT_BUDGET
    with np.load(checkpoint) as saved:
        steps_saved = int(saved["steps"])
    assert 0 < steps_saved < 2 * 3000

    # the replicas have let go of their threads: the re-run gets the cluster and resumes
    client.wait_for_workers(2, timeout=FAULT_BUDGET)
    start = time.monotonic()
    resumed = DownpourRICA(**params).fit(shards)
    assert time.monotonic() - start < FAULT_BUDGET
    assert resumed.steps_[0] == steps_saved and resumed.n_iter_ == 2 * 3000
    assert not client.processing() or not any(client.processing().values())


def test_a_finished_fit_rerun_changes_nothing(client, shards, tmp_path):
    for estimator, extra in [(DistributedRICA, {"max_iter": 20}),
                             (DownpourRICA, {"max_iter": 100, "batch_size": 64,
                                             "warm_start_steps": 10})]:
        checkpoint = tmp_path / f"{estimator.__name__}.npz"
        params = dict(**PARAMS, **extra, dtype=np.float64, client=client,
                      checkpoint_path=checkpoint)
        first = estimator(**params).fit(shards)
        again = estimator(**params).fit(shards)
        np.testing.assert_array_equal(again.W_, first.W_)
        assert again.n_iter_ == first.n_iter_, estimator.__name__


def _wait_until(predicate, timeout: float = FAULT_BUDGET) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
