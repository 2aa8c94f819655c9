"""The RICA evaluation by actor RPC: one Dask actor per worker holding that worker's shards,
called once per evaluation, beside ``ShardedData``'s map-reduce (one task per worker thread
per evaluation).  Used by ``bench/stragglers.py`` (map-reduce vs RPC) and
``bench/scale_out.py`` (latency of a round).

An actor has no resilience: if its worker dies its shards are gone and a call to it never
answers by itself, so every call here waits at most ``timeout`` s (TimeoutError).
"""
from __future__ import annotations

import statistics
import time

import numpy as np
from distributed import Client

from terafeat.distributed.shards import load_pinned_shard, map_sum, objective_from_terms, shard_sparsity
from terafeat.learning.rica_objective import reconstruction_terms


class ShardHolder:
    """Dask actor: the shards read from ``paths`` (.npy, each (m_s, d)) on its worker."""

    def __init__(self, paths: list[str], dtype):
        self.shards = [load_pinned_shard(path, dtype) for path in paths]

    def sparsity(self, W: np.ndarray, eps: float, pool) -> tuple[float, np.ndarray, int]:
        """(penalty sum, its gradient (k, d), rows) over this holder's shards."""
        return map_sum(shard_sparsity, (W, eps, pool), *self.shards)

    def nothing(self) -> None:
        """A call that does no work: its round trip is the RPC's latency."""


class ActorRicaLoss:
    """``DistributedRicaLoss`` by RPC: ``loss(W) -> (J, dJ/dW)``, W (k, d).

    One :class:`ShardHolder` per worker (the workers in address order, shard i
    on worker i mod n, as ``ShardedData`` places them); each call sends W to
    every holder and sums their partials in worker order; C (d, d) is the
    data's second moment (``DistributedRicaLoss.C``).  ``bytes_per_evaluation``
    counts the arrays sent and received as ``DistributedRicaLoss`` does.
    """

    def __init__(self, client: Client, paths, dtype, C: np.ndarray, lam: float, eps: float,
                 timeout: float = 60.0):
        workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
        self.timeout = float(timeout)
        self.futures = [client.submit(ShardHolder, [str(path) for path in paths[i::len(workers)]],
                                      dtype, actor=True, workers=[where], pure=False)
                        for i, where in enumerate(workers) if paths[i::len(workers)]]
        self.holders = [future.result(self.timeout) for future in self.futures]
        self.client, self.C, self.lam, self.eps = client, C, float(lam), float(eps)
        self.dtype = np.dtype(dtype)
        self.bytes_per_evaluation = 0

    def __call__(self, W: np.ndarray) -> tuple[float, np.ndarray]:
        W = W.astype(self.dtype, copy=False)
        calls = [holder.sparsity(W, self.eps, None) for holder in self.holders]
        partials = [call.result(self.timeout) for call in calls]
        penalty_sum = sum(partial[0] for partial in partials)
        penalty_grad = sum(partial[1] for partial in partials)
        rows = sum(partial[2] for partial in partials)
        self.bytes_per_evaluation = len(calls) * W.nbytes + sum(
            partial[1].nbytes + 16 for partial in partials)
        return objective_from_terms(reconstruction_terms(W, self.C, self.lam), penalty_sum,
                                    penalty_grad, rows)

    def round_trip_seconds(self, repeats: int) -> float:
        """Median wall time of one call to every holder that does nothing."""
        return actor_round_trip_seconds(self.holders, repeats, self.timeout)

    def close(self) -> None:
        self.client.cancel(self.futures)


def actor_round_trip_seconds(holders: list, repeats: int, timeout: float = 60.0) -> float:
    """Median wall time of one call that does nothing to each ``ShardHolder`` actor."""
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        for call in [holder.nothing() for holder in holders]:
            call.result(timeout)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def task_round_trip_seconds(client: Client, repeats: int) -> float:
    """Median wall time of one task per worker that does nothing, submitted and gathered."""
    workers = sorted(client.scheduler_info(n_workers=-1)["workers"])
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        client.gather([client.submit(int, 0, workers=[where], pure=False) for where in workers])
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)
