"""terafeat.distributed on a real two-process LocalCluster (one, shared by the module).

Data: m=4000 ICA-like patches (Laplace sources, random rotation, DC removed,
so RICA works in the data's 15-dimensional span), d=16, k=32, in four shards
of 1000 rows.
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from terafeat.distributed.cluster import DASK_ADDRESS_ENV, get_client, worker_transfer_bytes
from terafeat.distributed.downpour import DownpourRICA
from terafeat.distributed.lbfgs import DistributedRICA
from terafeat.distributed.sharded_data import DistributedRicaLoss, ShardedData
from terafeat.distributed.shards import ShardError, load_shard, write_shards
from terafeat.distributed.training import fit_rica_layer
from terafeat.learning.pooling import subspace_pooling
from terafeat.learning.rica import RICA, sampled_filters
from terafeat.learning.rica_objective import RicaLoss
from terafeat.process_memory import peak_rss_bytes

from ica_data import (  # noqa: F401 (fixtures, used by name)
    PARAMS,
    free_port,
    make_patches,
    one_blas_thread,
    patches,
    reference,
    relative_difference,
    shards,
)

@pytest.fixture(scope="module")
def client():
    with get_client(n_workers=2, dashboard_address="127.0.0.1:0") as client:
        yield client


def test_write_shards_round_trip(tmp_path):
    X = make_patches(2500, 8)
    paths = write_shards(X, tmp_path, rows_per_shard=1000)
    assert [path.name for path in paths] == ["shard-00000.npy", "shard-00001.npy", "shard-00002.npy"]
    assert sorted(tmp_path.iterdir()) == paths  # no temporary files left
    np.testing.assert_array_equal(np.concatenate([load_shard(path, np.float64) for path in paths]), X)
    assert load_shard(paths[2]).dtype == np.float32 and load_shard(paths[2]).shape == (500, 8)
    with pytest.raises(ValueError, match="rows_per_shard"):
        write_shards(X, tmp_path, rows_per_shard=0)


def test_load_shard_names_missing_and_corrupt_files(tmp_path):
    with pytest.raises(ShardError, match="absent.npy does not exist"):
        load_shard(tmp_path / "absent.npy")
    (tmp_path / "garbage.npy").write_bytes(b"not a numpy file")
    with pytest.raises(ShardError, match="garbage.npy is unreadable or corrupt"):
        load_shard(tmp_path / "garbage.npy")
    np.save(tmp_path / "flat.npy", np.ones(5))
    with pytest.raises(ShardError, match="flat.npy must be 2-D"):
        load_shard(tmp_path / "flat.npy")
    np.save(tmp_path / "nan.npy", np.full((2, 3), np.nan))
    with pytest.raises(ShardError, match="nan.npy contains NaN"):
        load_shard(tmp_path / "nan.npy")


def test_workers_name_a_missing_or_corrupt_shard(client, shards, tmp_path):
    with pytest.raises(ShardError, match="gone.npy does not exist"):
        ShardedData(client, [*shards, tmp_path / "gone.npy"])
    truncated = tmp_path / "truncated.npy"
    truncated.write_bytes(shards[0].read_bytes()[:200])
    with pytest.raises(ShardError, match="truncated.npy is unreadable or corrupt"):
        ShardedData(client, [*shards, truncated])
    np.save(tmp_path / "narrow.npy", np.ones((10, 3)))
    with pytest.raises(ShardError, match="narrow.npy has 3 columns"):
        ShardedData(client, [*shards, tmp_path / "narrow.npy"])


def test_local_cluster_is_one_process_one_thread_one_blas_thread_per_worker(client):
    assert list(client.nthreads().values()) == [1, 1]
    for libraries in client.run(threadpool_info).values():
        assert {library["num_threads"] for library in libraries if library["user_api"] == "blas"} == {1}


def test_unreachable_scheduler_fails_fast_naming_the_address():
    address = f"tcp://127.0.0.1:{free_port()}"
    start = time.perf_counter()
    with pytest.raises(ConnectionError, match=f"Dask scheduler at {address} within 2 s"):
        with get_client(address, connect_timeout=2):
            pass
    assert time.perf_counter() - start < 10


def test_distributed_loss_is_the_single_process_loss_and_traffic_scales_with_k_d(
        client, patches, shards):
    W = np.random.default_rng(1).standard_normal((32, 16))
    with ShardedData(client, shards, np.float64) as data:
        assert (data.n_samples, data.n_features_in) == (4000, 16)
        loss = DistributedRicaLoss(data, PARAMS["lam"], PARAMS["eps"])
        value, grad = loss(W)
        expected_value, expected_grad = RicaLoss(patches, 32, PARAMS["lam"], PARAMS["eps"])(W)
        assert value == pytest.approx(expected_value, rel=1e-12)
        np.testing.assert_allclose(grad, expected_grad, rtol=1e-10, atol=1e-12)
        pool = subspace_pooling(32, 4, np.float64)  # ISA pooling; the shards' kernels rebuild
        pooled_value, pooled_grad = DistributedRicaLoss(data, PARAMS["lam"], PARAMS["eps"], pool)(W)
        expected = RicaLoss(patches, 32, PARAMS["lam"], PARAMS["eps"], pool)(W)
        assert pooled_value == pytest.approx(expected[0], rel=1e-12)
        np.testing.assert_allclose(pooled_grad, expected[1], rtol=1e-10, atol=1e-12)
        moved_before = worker_transfer_bytes(client)
        for _ in range(3):
            loss(W)
        # Workers sent only the three evaluations' partial gradients, no shard (128 kB).
        assert worker_transfer_bytes(client) - moved_before < 3 * 2 * 2 * W.nbytes
        full_traffic = loss.bytes_per_evaluation
    with ShardedData(client, shards[:2], np.float64) as half:
        half_loss = DistributedRicaLoss(half, PARAMS["lam"], PARAMS["eps"])
        half_loss(W)
    # One W (k, d) out and one gradient (k, d) back per worker: m does not enter.
    assert full_traffic == half_loss.bytes_per_evaluation
    assert full_traffic < 2 * 2 * (W.nbytes + 64)


def test_sharded_data_whose_second_moments_overflow_float32_is_refused(client, tmp_path):
    # each value fits float32, the mean squared row norm (the Gram matrix's trace / m) not
    huge = np.full((20, 4), 3e19, np.float32)
    np.save(tmp_path / "huge.npy", huge)
    with pytest.raises(ValueError, match="overflows float32 .* rescale the data or use "
                                         "dtype=float64"):
        DistributedRICA(**PARAMS, max_iter=2, dtype=np.float32, client=client).fit(
            [tmp_path / "huge.npy"])


def test_distributed_lbfgs_equals_single_process_lbfgs(client, shards, reference):
    model = DistributedRICA(**PARAMS, max_iter=60, dtype=np.float64, client=client).fit(shards)
    assert model.n_iter_ == reference.n_iter_ == 60
    assert relative_difference(model.W_, reference.W_) < 1e-4
    np.testing.assert_allclose(model.objective_, reference.objective_, rtol=1e-8)
    assert model.times_.shape == model.objective_.shape and np.all(np.diff(model.times_) >= 0)
    assert model.n_recoveries_ == 0
    np.testing.assert_allclose(model.transform(make_patches(5)), make_patches(5) @ model.W_.T)


def test_distributed_lbfgs_equals_single_process_lbfgs_on_whitened_data(client, patches, tmp_path):
    eigenvalues, eigenvectors = np.linalg.eigh(patches.T @ patches / len(patches))
    span = eigenvectors[:, 1:]  # the DC direction has eigenvalue 0
    whitened = patches @ span @ np.diag(eigenvalues[1:] ** -0.5) @ span.T
    reference = RICA(**PARAMS, max_iter=10, dtype=np.float64).fit(whitened)
    model = DistributedRICA(**PARAMS, max_iter=10, dtype=np.float64, client=client)
    model.fit(write_shards(whitened, tmp_path, rows_per_shard=1000))
    assert relative_difference(model.W_, reference.W_) < 1e-4


def test_resumed_training_continues_from_the_checkpoint(client, shards, tmp_path):
    checkpoint = tmp_path / "rica.npz"
    first = DistributedRICA(**PARAMS, max_iter=10, client=client, checkpoint_path=checkpoint,
                            checkpoint_every=5).fit(shards)
    assert first.n_iter_ == 10 and checkpoint.exists()
    iterations = []
    second = DistributedRICA(**PARAMS, max_iter=20, client=client, checkpoint_path=checkpoint,
                             callback=lambda iteration, objective: iterations.append(iteration))
    second.fit(shards)
    assert second.resumed_from_ == 10
    assert iterations == list(range(11, 21))  # ten more iterations, numbered on from the checkpoint
    assert second.n_iter_ == 20 and len(second.objective_) == 21
    np.testing.assert_array_equal(second.objective_[:11], first.objective_)
    assert second.objective_[-1] < second.objective_[10]
    with pytest.raises(ValueError, match="was written for"):
        DistributedRICA(**{**PARAMS, "lam": 1.0}, max_iter=20, client=client,
                        checkpoint_path=checkpoint).fit(shards)


def test_live_workers_do_not_read_the_clients_cached_identity(client, shards, monkeypatch):
    """The client's periodic refresh caches an identity without workers; a liveness poll that
    read the cache after it had seen every worker lost (a spurious recovery)."""
    with ShardedData(client, shards) as data:
        async def refresh_without_workers(n_workers=0):
            client._scheduler_identity = {"workers": {}}

        monkeypatch.setattr(client, "_update_scheduler_info", refresh_without_workers)
        assert client.scheduler_info(n_workers=-1)["workers"] == {}  # what the old poll read
        assert data.live_workers() == sorted(client.nthreads())


def test_downpour_sgd_comes_within_ten_percent_of_lbfgs(client, shards, reference, tmp_path):
    checkpoint = tmp_path / "server.npz"
    model = DownpourRICA(**PARAMS, max_iter=300, dtype=np.float64, client=client, batch_size=128,
                         warm_start_steps=50, snapshot_every=25,
                         checkpoint_path=checkpoint).fit(shards)
    assert model.n_iter_ == 50 + 2 * 300
    assert model.objective_[-1] <= 1.1 * reference.objective_[-1]
    assert model.objective_[0] == pytest.approx(reference.objective_[0], rel=1e-10)  # same start
    assert np.all(np.diff(model.times_) > 0) and np.all(np.diff(model.steps_) >= 0)
    # max_iter counts every step of a replica, those in the checkpoint included
    longer = DownpourRICA(**PARAMS, max_iter=320, dtype=np.float64, client=client, batch_size=128,
                          warm_start_steps=50, checkpoint_path=checkpoint).fit(shards)
    assert longer.steps_[0] == model.n_iter_ and longer.n_iter_ == 50 + 2 * 320


def test_downpour_prefetching_trains_as_far(client, shards, reference):
    model = DownpourRICA(**PARAMS, max_iter=300, dtype=np.float64, client=client, batch_size=128,
                         warm_start_steps=50, snapshot_every=25, prefetch=True).fit(shards)
    assert model.n_iter_ == 50 + 2 * 300
    descent = model.objective_[0] - model.objective_[-1]
    assert descent > 0.8 * (reference.objective_[0] - reference.objective_[-1])
    assert model.objective_[-1] <= 1.1 * reference.objective_[-1]


def test_one_downpour_replica_is_deterministic_with_and_without_prefetching(shards):
    """One replica has no race: the same seed gives the same W, prefetching or not, and
    prefetching (fetches one push staler) gives another W."""
    params = {**PARAMS, "max_iter": 60, "dtype": np.float64, "batch_size": 64,
              "warm_start_steps": 20, "snapshot_every": 10}
    with get_client(n_workers=1, dashboard_address="127.0.0.1:0") as alone:
        fits = {prefetch: [DownpourRICA(**params, client=alone, prefetch=prefetch).fit(shards)
                           for _ in range(2)] for prefetch in (False, True)}
    for first, second in fits.values():
        np.testing.assert_array_equal(first.W_, second.W_)
        np.testing.assert_array_equal(first.objective_, second.objective_)
        assert first.objective_[-1] < first.objective_[0]
    assert not np.array_equal(fits[False][0].W_, fits[True][0].W_)
    with pytest.raises(ValueError, match="prefetch"):
        DownpourRICA(**params, client=alone, prefetch="yes").fit(shards)


def test_train_rica_layer_on_an_array(client, patches, tmp_path):
    start = sampled_filters(patches, PARAMS["n_features"], random_state=0)
    params = {**PARAMS, "max_iter": 15, "dtype": np.float64, "init": start}
    local = fit_rica_layer(patches, params)
    loss = RicaLoss(patches.astype(np.float64), len(start), PARAMS["lam"], PARAMS["eps"])
    assert local.objective_[0] == pytest.approx(loss(start)[0])  # it started from ``start``
    distributed = fit_rica_layer(patches, params, backend="dask",
                                   dask_address=client.scheduler.address,
                                   shard_folder=tmp_path)
    assert type(local) is RICA and type(distributed) is DistributedRICA
    assert distributed.client is None and len(list(tmp_path.glob("*.npy"))) == 2
    assert relative_difference(distributed.W_, local.W_) < 1e-4
    # the workers' peak memory, asked of the workers themselves (not this process's)
    assert 0 < distributed.workers_peak_rss_ <= max(client.run(peak_rss_bytes).values())
    assert not hasattr(local, "workers_peak_rss_")
    with pytest.raises(ValueError, match="checkpoint_path needs backend='dask'"):
        fit_rica_layer(patches, params, checkpoint_path=tmp_path / "x.npz")


def test_external_scheduler_and_worker_processes(patches, shards, monkeypatch):
    """``dask scheduler`` and a three-thread ``dask worker`` as separate processes, found
    through TERAFEAT_DASK_ADDRESS; three tasks per evaluation and fan_in=2 take the tree."""
    address = f"tcp://127.0.0.1:{free_port()}"
    dask = str(Path(sys.executable).with_name("dask"))  # the CLI of this environment
    processes = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port",
                                   address.rsplit(":", 1)[1], "--no-dashboard"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        processes.append(subprocess.Popen([dask, "worker", address, "--nthreads", "3",
                                           "--no-dashboard"],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        monkeypatch.setenv(DASK_ADDRESS_ENV, address)
        with get_client(connect_timeout=30) as external:
            external.wait_for_workers(1, timeout=60)
            assert external.scheduler.address == address
            W = np.random.default_rng(2).standard_normal((32, 16))
            with ShardedData(external, shards, np.float64, fan_in=2) as data:
                value, grad = DistributedRicaLoss(data, PARAMS["lam"], PARAMS["eps"])(W)
            expected_value, expected_grad = RicaLoss(patches, 32, PARAMS["lam"], PARAMS["eps"])(W)
            assert value == pytest.approx(expected_value, rel=1e-12)
            np.testing.assert_allclose(grad, expected_grad, rtol=1e-10, atol=1e-12)
        params = {**PARAMS, "max_iter": 15, "dtype": np.float64}
        model = fit_rica_layer(shards, params, backend="dask")
        assert relative_difference(model.W_, fit_rica_layer(shards, params).W_) < 1e-4
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
