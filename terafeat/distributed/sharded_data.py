"""Shards pinned on the workers that loaded them, and map-reduce over them that survives
the loss of workers (their shards are reloaded on the survivors)."""
from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError

import numpy as np
from distributed import Client, KilledWorker, wait

from terafeat.distributed.cluster import WorkerLostError
from terafeat.distributed.shards import (
    ShardError,
    load_pinned_shard,
    map_sum,
    objective_from_terms,
    shard_gram,
    shard_shape,
    shard_sparsity,
    sum_partials,
)
from terafeat.learning.rica_objective import reconstruction_terms
from terafeat.validation import check_dtype, check_mean_square

logger = logging.getLogger(__name__)
#: Errors meaning "a worker went away", as opposed to errors in the science.
WORKER_FAILURES = (KilledWorker, CancelledError, OSError, TimeoutError)

# ----------------------------------------------------------------------------- sharded data

class ShardedData:
    """Shards loaded into the memory of Dask workers and kept there.

    ``ShardedData(client, shard_paths, dtype)`` has each worker load its
    share of the .npy files (round robin; file paths must be readable from
    the workers).  :meth:`map_reduce` then runs a function over the shards
    where they lie, one task per worker thread over its share of that
    worker's shards (hard worker restrictions: work stealing cannot move a
    shard), with the small arguments (W) inside the task, and sums the
    results: in a tree of fan-in ``fan_in`` when there are many tasks, the
    last level on the client.  Each loaded shard keeps its sparsity kernel
    (block buffers) across evaluations.

    When a worker holding shards dies, ``map_reduce`` notices the loss (it
    polls the worker list every ``poll_interval`` s while waiting), reloads
    the lost shards from their files on the live workers (the least loaded
    first), re-submits the lost work and logs the recovery, at most
    ``max_recoveries`` times per call.  If no worker is left, it waits up to
    ``recovery_timeout`` s for one to join (a nanny's restart), then raises
    WorkerLostError naming the lost workers.  For ``recovery_timeout`` s
    after a recovery, each call first rebalances the shards over the live
    workers (a restarted worker gets its share back).

    Attributes: ``n_samples`` (m), ``shard_rows`` (m_s of each shard),
    ``n_features_in`` (d), ``locations`` (the worker address of each shard),
    ``n_recoveries``, ``bytes_out`` / ``bytes_in`` (bytes sent to / received
    from the cluster by the client, cumulative).
    """

    def __init__(self, client: Client, shard_paths: Sequence, dtype=np.float32,
                 fan_in: int = 8, poll_interval: float = 0.5, max_recoveries: int = 3,
                 load_timeout: float = 600.0, recovery_timeout: float = 30.0):
        self.client = client
        self.paths = [os.fspath(path) for path in shard_paths]
        if not self.paths:
            raise ValueError("no shard files given")
        self.dtype = check_dtype(dtype)
        self.fan_in = max(2, int(fan_in))
        self.poll_interval = float(poll_interval)
        self.max_recoveries = int(max_recoveries)
        self.load_timeout = float(load_timeout)
        self.recovery_timeout = float(recovery_timeout)
        self._rebalance_until = 0.0  # time.monotonic() until which calls rebalance first
        self.n_recoveries = 0
        self.bytes_out = self.bytes_in = 0
        try:  # a cluster still starting, or restarting a worker, gets recovery_timeout s
            client.wait_for_workers(1, timeout=self.recovery_timeout)
            workers = self.live_workers()
        except TimeoutError:
            workers = []
        if not workers:
            raise RuntimeError(f"the Dask cluster has no workers "
                               f"(none joined within {self.recovery_timeout:g} s)")
        self.futures = [self._load(path, workers[i % len(workers)])
                        for i, path in enumerate(self.paths)]
        self.locations = self._locate(self.load_timeout)
        self.threads = client.nthreads()
        shapes = self.client.gather([self.client.submit(shard_shape, shard, workers=[where], pure=False)
                                     for shard, where in zip(self.futures, self.locations)])
        self.shard_rows = [rows for rows, _ in shapes]
        self.n_samples = sum(self.shard_rows)
        self.n_features_in = shapes[0][1]
        for path, (_, d) in zip(self.paths, shapes):
            if d != self.n_features_in:
                raise ShardError(f"shard file {path} has {d} columns, "
                                 f"shard file {self.paths[0]} has {self.n_features_in}")

    def __enter__(self) -> "ShardedData":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        """Release the shards from the workers' memory."""
        self.client.cancel(self.futures)
        self.futures = []

    def live_workers(self) -> list[str]:
        """Addresses of the workers the scheduler knows now (a fresh query of the scheduler's
        identity, not ``client.scheduler_info()``: that returns the client's cached identity,
        which the client's periodic refresh replaces with one without workers, so a poll
        landing between the two saw every worker lost)."""
        return sorted(self.client.sync(self.client.scheduler.identity, n_workers=-1)["workers"])

    def by_worker(self) -> dict[str, list]:
        """The shard futures grouped by the address of the worker holding them."""
        groups: dict[str, list] = {}
        for shard, where in zip(self.futures, self.locations):
            groups.setdefault(where, []).append(shard)
        return groups

    def _load(self, path: str, where: str):
        return self.client.submit(load_pinned_shard, path, self.dtype, workers=[where],
                                  allow_other_workers=True, pure=False)

    def _locate(self, timeout: float) -> list[str]:
        """Wait up to ``timeout`` s for every shard to be loaded; the address holding each."""
        try:
            wait(self.futures, timeout=timeout)
        except TimeoutError:
            waiting = [path for path, shard in zip(self.paths, self.futures)
                       if shard.status != "finished"]
            raise RuntimeError(f"{len(waiting)} shard(s) not loaded within {timeout:g} s "
                               f"(first: {waiting[0]})") from None
        for shard in self.futures:
            if shard.status == "error":
                shard.result()  # raises the worker's ShardError, which names the file
        holders = self.client.who_has(self.futures)
        if not all(holders[shard.key] for shard in self.futures):
            raise WorkerLostError([])
        return [sorted(holders[shard.key])[0] for shard in self.futures]

    def wait_alive(self, futures: Sequence, needed: set[str]) -> None:
        """Wait for ``futures``; raise WorkerLostError if a worker in ``needed`` leaves."""
        while True:
            try:
                wait(futures, timeout=self.poll_interval)
                return
            except TimeoutError:
                lost = needed.difference(self.live_workers())
                if lost:
                    raise WorkerLostError(sorted(lost)) from None

    def map_reduce(self, func: Callable, *args) -> tuple:
        """``sum over shards of func(shard, *args)`` (``shard.X``: its (m_s, d) array),
        element-wise over the returned tuples."""
        for attempt in range(self.max_recoveries + 1):
            try:
                if time.monotonic() < self._rebalance_until:
                    self._rebalance()
                return self._map_reduce_once(func, args)
            except WORKER_FAILURES + (WorkerLostError,) as error:
                if attempt == self.max_recoveries:
                    raise RuntimeError(
                        f"gave up after {attempt} recoveries from lost workers") from error
                self._recover(error)

    def _map_reduce_once(self, func: Callable, args: tuple) -> tuple:
        # One task per worker thread, over that thread's share of the worker's
        # shards, with the (small) arguments inside the task: a single hop of
        # latency, and Dask can rerun a task whose worker died.
        client = self.client
        level = []
        for where, shards in self.by_worker().items():
            n_tasks = min(len(shards), self.threads.get(where, 1))
            level += [client.submit(map_sum, func, args, *shards[i::n_tasks], workers=[where],
                                    pure=False) for i in range(n_tasks)]
        self.bytes_out += len(level) * sum(arg.nbytes for arg in args if isinstance(arg, np.ndarray))
        while len(level) > self.fan_in:
            level = [client.submit(sum_partials, *level[i:i + self.fan_in], pure=False)
                     for i in range(0, len(level), self.fan_in)]
        try:
            self.wait_alive(level, set(self.locations))
            partials = client.gather(level)
        except BaseException:
            client.cancel(level)
            raise
        self.bytes_in += sum(item.nbytes if isinstance(item, np.ndarray) else 8
                             for partial in partials for item in partial)
        return sum_partials(*partials)

    def _recover(self, error: BaseException) -> None:
        """Reload the shards of lost workers on the live ones, and learn where they are now."""
        self.n_recoveries += 1
        lost = sorted(set(self.locations).difference(self.live_workers()))
        logger.warning("evaluation failed (%s: %s); lost worker(s): %s; reloading their shards",
                       type(error).__name__, error, ", ".join(lost) or "none")
        self._reload_lost(lost, error)

    def _reload_lost(self, lost: list[str], error: BaseException | None = None) -> None:
        """Wait for a live worker, load there every shard no live worker holds, rebalance
        for ``recovery_timeout`` s."""
        try:
            self.client.wait_for_workers(1, timeout=self.recovery_timeout)
        except TimeoutError:
            raise WorkerLostError(lost, f"no worker joined within {self.recovery_timeout:g} s"
                                  ) from error
        holders = self.client.who_has(self.futures)
        live = self.live_workers()
        load = Counter(where for where in self.locations if where in live)
        for i, shard in enumerate(self.futures):
            if shard.status == "error" and isinstance(shard.exception(), ShardError):
                raise shard.exception()
            if not set(holders.get(shard.key, ())).intersection(live):
                # a fresh task: Dask's own recomputation can stay tied to dead addresses
                target = min(live, key=lambda where: (load[where], where))
                load[target] += 1
                self._move(i, target)
        self._settle(self.recovery_timeout)
        self._rebalance_until = time.monotonic() + self.recovery_timeout

    def _rebalance(self) -> None:
        """Move shards from the most to the least loaded live workers until their counts
        differ by at most one."""
        live = self.live_workers()
        if not live:
            raise WorkerLostError(sorted(set(self.locations)))
        load = Counter({where: 0 for where in live})
        load.update(where for where in self.locations if where in live)
        moved = False
        for i, where in enumerate(self.locations):
            least = min(live, key=lambda address: (load[address], address))
            if where in load and load[where] > load[least] + 1:
                load[where] -= 1
                load[least] += 1
                self._move(i, least)
                moved = True
        if moved:
            self._settle(self.recovery_timeout)

    def _move(self, index: int, where: str) -> None:
        """Load shard ``index`` anew on worker ``where``, releasing its old copy."""
        old = self.futures[index]
        self.futures[index] = self._load(self.paths[index], where)
        old.release()

    def _settle(self, timeout: float) -> None:
        before, self.locations = self.locations, self._locate(timeout)
        self.threads = self.client.nthreads()
        for path, old, new in zip(self.paths, before, self.locations):
            if old != new:
                logger.info("shard %s reloaded on worker %s (was on %s)", path, new, old)


class DistributedRicaLoss:
    """The RICA objective and gradient over sharded data: ``loss(W) -> (J, dJ/dW)``.

    Equals ``rica.RicaLoss`` on the concatenated shards.  Construction reduces
    ``C = sum_s X_s^T X_s / m`` (d, d) once, in float64, then casts it to the
    data dtype; each call sends W (k, d) to the cluster once, sums the per-shard
    sparsity terms there (only (k, d) partials come back) and adds the
    reconstruction term, computed on the client from C.  pool: optional (p, k)
    ISA/TICA pooling matrix, passed to ``sparsity_terms``.

    ``bytes_per_evaluation``: bytes the client sent and received in the last
    call; it depends on k, d and the number of workers, not on m.
    """

    def __init__(self, data: ShardedData, lam: float, eps: float, pool: np.ndarray | None = None):
        self.data = data
        self.lam = float(lam)
        self.eps = float(eps)
        self.pool = pool
        gram, m = data.map_reduce(shard_gram)
        check_mean_square(float(np.trace(gram)) / m, data.dtype, "the sharded data")
        self.C = (gram / m).astype(data.dtype)
        self.bytes_per_evaluation = 0

    def __call__(self, W: np.ndarray) -> tuple[float, np.ndarray]:
        data = self.data
        before = data.bytes_out + data.bytes_in
        penalty_sum, penalty_grad, rows = data.map_reduce(
            shard_sparsity, W.astype(data.dtype, copy=False), self.eps, self.pool)
        self.bytes_per_evaluation = data.bytes_out + data.bytes_in - before
        if rows != data.n_samples:
            raise RuntimeError(f"evaluation covered {rows} rows instead of {data.n_samples}")
        return objective_from_terms(reconstruction_terms(W, self.C, self.lam), penalty_sum, penalty_grad,
                          data.n_samples)


