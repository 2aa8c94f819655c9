"""Sandblaster evaluation and backup tasks on a real three-process LocalCluster, one worker
slowed by ``SlowWorker``; same data as tests/test_distributed.py."""
from __future__ import annotations

import time

import numpy as np
import pytest

from terafeat.distributed.cluster import get_client
from terafeat.distributed.lbfgs import DistributedRICA
from terafeat.distributed.sandblaster import SandblasterData
from terafeat.distributed.sharded_data import DistributedRicaLoss, ShardedData
from terafeat.distributed.shards import portion_bounds, write_shards
from terafeat.distributed.slow_worker import SlowWorker
from terafeat.learning.rica_objective import SparsityKernel

from ica_data import (  # noqa: F401 (fixtures, used by name)
    PARAMS,
    make_patches,
    one_blas_thread,
    patches,
    relative_difference,
    shards,
)


@pytest.fixture(scope="module")
def client():
    with get_client(n_workers=3, dashboard_address="127.0.0.1:0") as client:
        yield client


@pytest.fixture
def slowed(client):
    """The first worker (in address order) 20 times slower, for one test."""
    slow = sorted(client.scheduler_info()["workers"])[0]
    client.register_plugin(SlowWorker(slow, 20))
    yield slow
    client.unregister_worker_plugin(SlowWorker.name)


def test_portions_cover_every_row_once():
    assert portion_bounds(10, 3) == [(0, 3), (3, 6), (6, 10)]
    assert portion_bounds(2, 4) == [(0, 1), (1, 2)]
    rows = [row for start, stop in portion_bounds(1001, 7) for row in range(start, stop)]
    assert rows == list(range(1001))


def test_a_portion_is_the_same_bits_from_any_kernel_over_the_shard():
    X = make_patches(1000)
    W = np.random.default_rng(0).standard_normal((32, 16))
    kernel = SparsityKernel(X, 32, block_rows=128)
    alone = SparsityKernel(X[300:700], 32, block_rows=128)(W, 1e-2)
    total, grad = kernel(W, 1e-2, rows=(300, 700))
    assert total == alone[0]
    np.testing.assert_array_equal(grad, alone[1])
    parts = [kernel(W, 1e-2, rows) for rows in portion_bounds(1000, 3)]
    whole = kernel(W, 1e-2)
    assert sum(part[0] for part in parts) == pytest.approx(whole[0], rel=1e-12)
    np.testing.assert_allclose(sum(part[1] for part in parts), whole[1], rtol=1e-10)


def test_slow_worker_slows_only_its_worker_until_unregistered(client, slowed):
    def elapsed(where):
        start = time.perf_counter()
        client.submit(time.sleep, 0.1, workers=[where], pure=False).result()
        return time.perf_counter() - start

    fast = sorted(client.scheduler_info()["workers"])[1]
    assert elapsed(slowed) > 5 * elapsed(fast)
    client.unregister_worker_plugin(SlowWorker.name)
    assert elapsed(slowed) < 3 * elapsed(fast)
    client.register_plugin(SlowWorker(slowed, 20))  # for the fixture's teardown
    with pytest.raises(ValueError, match="factor must be >= 1"):
        SlowWorker(slowed, 0.5)


def test_sandblaster_evaluation_equals_the_static_one(client, shards):
    W = np.random.default_rng(1).standard_normal((32, 16))
    with ShardedData(client, shards, np.float64) as data:
        static = DistributedRicaLoss(data, PARAMS["lam"], PARAMS["eps"])(W)
    with SandblasterData(client, shards, np.float64, portions_per_shard=3) as data:
        assert len(data.portions) == 12
        assert all(where is not None and where != first
                   for where, first in zip(data.copy_locations, data.locations))
        value, grad = DistributedRicaLoss(data, PARAMS["lam"], PARAMS["eps"])(W)
        assert sum(data.portions_by_worker.values()) == 2 * 12  # C, then one evaluation
    assert value == pytest.approx(static[0], rel=1e-12)
    np.testing.assert_allclose(grad, static[1], rtol=1e-10, atol=1e-12)
    with pytest.raises(ValueError, match="portions_per_shard must be a positive integer, got 0"):
        DistributedRICA(**PARAMS, client=client, portions_per_shard=0).fit(shards)
    with pytest.raises(ValueError, match="backup_after must be > 0"):
        SandblasterData(client, shards, backup_after=0)


@pytest.fixture(scope="module")
def wide_shards(tmp_path_factory):
    """24,000 patches of d=64 in six shards: portions long beside a round trip of Dask."""
    return write_shards(make_patches(24000, 64), tmp_path_factory.mktemp("wide"), 4000)


def test_backup_tasks_keep_the_undisturbed_history_beside_a_slow_worker(
        client, wide_shards, slowed):
    options = dict(**{**PARAMS, "n_features": 128}, max_iter=10, dtype=np.float64,
                   client=client)
    disturbed = DistributedRICA(**options, portions_per_shard=4, backup_tasks=True).fit(wide_shards)
    client.unregister_worker_plugin(SlowWorker.name)
    undisturbed = DistributedRICA(**options, portions_per_shard=4, backup_tasks=True).fit(wide_shards)
    static = DistributedRICA(**options).fit(wide_shards)
    client.register_plugin(SlowWorker(slowed, 20))  # for the fixture's teardown
    # every portion counted once, summed in a fixed order: the same bits
    np.testing.assert_array_equal(disturbed.objective_, undisturbed.objective_)
    np.testing.assert_array_equal(disturbed.W_, undisturbed.W_)
    assert disturbed.n_iter_ == 10
    # ... while the others took the slow worker's portions
    assert disturbed.n_backups_won_ > 0
    done = disturbed.portions_by_worker_
    assert all(done[slowed] < count for where, count in done.items() if where != slowed), done
    # the static path's fit, up to the order of the sums
    np.testing.assert_allclose(disturbed.objective_, static.objective_, rtol=1e-10)
    assert relative_difference(disturbed.W_, static.W_) < 1e-8
    assert static.n_backup_tasks_ == 0 and static.portions_by_worker_ == {}
