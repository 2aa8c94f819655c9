"""Downpour SGD (Dean et al., NIPS 2012): a parameter-server actor holding V and its Adagrad
accumulators, one asynchronous minibatch replica per worker on that worker's shards."""
from __future__ import annotations

import logging
import time
from numbers import Integral
from pathlib import Path
from typing import ClassVar

import numpy as np
from distributed import Client, default_client
from sklearn.utils._param_validation import Interval
from threadpoolctl import threadpool_limits

from terafeat.atomic_files import atomic_write
from terafeat.distributed.cluster import WorkerLostError
from terafeat.distributed.lbfgs import shard_paths
from terafeat.distributed.sharded_data import DistributedRicaLoss, ShardedData
from terafeat.distributed.shards import LoadedShard, objective_from_terms
from terafeat.learning.rica import RICA, data_basis, span_gradient, span_weights
from terafeat.learning.rica_objective import reconstruction_terms, sparsity_terms
from terafeat.validation import check_random_state

logger = logging.getLogger(__name__)

# ----------------------------------------------------------------------------- Downpour SGD

class ParameterServer:
    """Downpour parameter server, run as a Dask actor: V (k, r) float64 and Adagrad state.

    W = normalize_rows(V) basis^T as in ``rica.minimize_rica`` (basis (d, r)
    or None).  ``push(grad_sum, n_steps)`` applies one Adagrad step with the
    gradient g (k, r) accumulated over ``n_steps`` minibatch steps:
    ``G += g^2;  V -= learning_rate * g / sqrt(G + 1e-12)``; ``fetch()``
    returns V.  Every ``snapshot_every`` pushes it keeps (seconds since start,
    steps, V) for the objective-versus-time curve; every ``checkpoint_every``
    pushes it writes V, G, the basis and the step count atomically to
    ``checkpoint_path`` (actors are not resilient: a lost server is resumed
    from that file).  An existing checkpoint is loaded at construction, its
    basis included.
    """

    def __init__(self, V0: np.ndarray, basis: np.ndarray | None, learning_rate: float,
                 snapshot_every: int = 10, checkpoint_path=None, checkpoint_every: int = 100):
        self.V = np.array(V0, dtype=np.float64)
        self.G = np.zeros_like(self.V)
        self.basis = basis
        self.learning_rate = float(learning_rate)
        self.snapshot_every = int(snapshot_every)
        self.checkpoint_path = None if checkpoint_path is None else Path(checkpoint_path)
        self.checkpoint_every = int(checkpoint_every)
        self.steps = self.pushes = 0
        if self.checkpoint_path is not None and self.checkpoint_path.exists():
            with np.load(self.checkpoint_path) as checkpoint:
                if checkpoint["V"].shape[0] != self.V.shape[0]:
                    raise ValueError(f"checkpoint {self.checkpoint_path} holds V of shape "
                                     f"{checkpoint['V'].shape}, expected {self.V.shape[0]} rows")
                self.V, self.G = checkpoint["V"], checkpoint["G"]
                self.basis = checkpoint["basis"] if checkpoint["basis"].size else None
                self.steps = int(checkpoint["steps"])
        self.start = time.perf_counter()
        self.history: list[tuple[float, int, np.ndarray]] = []
        self.snapshot()

    def fetch(self) -> np.ndarray:
        return self.V

    def get_basis(self) -> np.ndarray | None:
        return self.basis

    def total_steps(self) -> int:
        return self.steps

    def push(self, grad_sum: np.ndarray, n_steps: int) -> None:
        self.G += grad_sum * grad_sum
        self.V = self.V - self.learning_rate * grad_sum / np.sqrt(self.G + 1e-12)
        self.steps += int(n_steps)
        self.pushes += 1
        if self.pushes % self.snapshot_every == 0:
            self.snapshot()
        if self.checkpoint_path is not None and self.pushes % self.checkpoint_every == 0:
            self.checkpoint()

    def snapshot(self) -> None:
        self.history.append((time.perf_counter() - self.start, self.steps, self.V))

    def snapshots(self) -> list[tuple[float, int, np.ndarray]]:
        return self.history

    def checkpoint(self) -> None:
        atomic_write(self.checkpoint_path, lambda file: np.savez(
            file, V=self.V, G=self.G, steps=self.steps,
            basis=np.empty(0) if self.basis is None else self.basis))


def _run_replica(server, C: np.ndarray, basis: np.ndarray | None, lam: float, eps: float, pool,
                 batch_size: int, n_steps: int, n_fetch: int, n_push: int, actor_timeout: float,
                 prefetch: bool, rng: np.random.Generator, *shards: LoadedShard) -> int:
    """One Downpour model replica on the shards of its worker; returns its step count.

    Each step draws ``batch_size`` rows (from one shard, chosen in proportion
    to its rows) and computes the gradient with respect to V of the minibatch
    objective: the exact reconstruction term (from the global C (d, d)) plus
    the minibatch sparsity term.  V is fetched every ``n_fetch`` steps; the
    accumulated gradient is pushed every ``n_push`` steps without waiting
    (at most one push in flight).  With ``prefetch`` the fetch a step needs
    is sent before the previous step's gradient is computed, and the next
    minibatch is drawn while it is in flight: the fetch overlaps computing,
    and the V it returns misses the replica's own last push (one push
    staler).  The minibatches are the same either way (the same draws from
    ``rng`` in the same order).  A call to the server that gets no answer
    within ``actor_timeout`` s raises TimeoutError (a lost server), which
    ends the replica and frees its worker thread.
    """
    arrays = [shard.X for shard in shards]
    sizes = np.array([len(X) for X in arrays])

    def draw_batch() -> np.ndarray:
        X = arrays[rng.choice(len(arrays), p=sizes / sizes.sum())]
        return X[rng.integers(0, len(X), batch_size)]

    pushing = fetching = None
    accumulated, since_push = 0.0, 0
    for step in range(n_steps):
        if step % n_fetch == 0:
            V = (server.fetch() if fetching is None else fetching).result(actor_timeout)
            unit, norms, W = span_weights(V, basis, C.dtype)
            fetching = None
        if prefetch and (step + 1) % n_fetch == 0 and step + 1 < n_steps:
            fetching = server.fetch()  # in flight while this step computes
        batch = draw_batch()
        penalty_sum, penalty_grad = sparsity_terms(W, batch, eps, pool)
        _, grad = objective_from_terms(reconstruction_terms(W, C, lam), penalty_sum, penalty_grad,
                                       batch_size)
        accumulated = accumulated + span_gradient(grad, unit, norms, basis)
        since_push += 1
        if since_push == n_push or step == n_steps - 1:
            if pushing is not None:
                pushing.result(actor_timeout)
            pushing = server.push(accumulated, since_push)
            accumulated, since_push = 0.0, 0
    if pushing is not None:
        pushing.result(actor_timeout)
    return n_steps


class DownpourRICA(RICA):
    """RICA trained by Downpour SGD with Adagrad (Dean et al., NIPS 2012) on Dask.

    A :class:`ParameterServer` actor holds V (the parametrisation of
    ``rica.minimize_rica``, from the same seeded start as RICA) and the
    Adagrad accumulators; one replica per worker runs ``max_iter`` minibatch
    steps on the shards that worker holds, fetching V every ``n_fetch`` steps
    and pushing its accumulated gradient every ``n_push`` steps,
    asynchronously.  A single replica runs ``warm_start_steps`` first (not on
    a server resumed from ``checkpoint_path``).  The objective reported is the
    exact full one, evaluated after training on the server's snapshots.
    Asynchrony makes runs non-deterministic even with a seed (which fixes the
    initial W and the minibatches of each replica).  A replica whose worker
    dies is dropped (the others go on); losing the server's worker is an
    error that cancels every replica (their calls to the server time out
    after ``actor_timeout`` s, freeing the worker threads): re-run to resume
    from the checkpoint.

    A fit's steps in all are ``warm_start_steps + max_iter * replicas``; one
    resumed from a checkpoint runs only the steps that total still lacks,
    shared among the replicas, so a finished fit's re-run trains nothing.

    Parameters beyond RICA's: client, learning_rate (Adagrad's gamma),
    batch_size, n_fetch, n_push, warm_start_steps, snapshot_every (pushes),
    checkpoint_path / checkpoint_every (pushes) for the server, actor_timeout
    (seconds a replica waits for the server's answer), prefetch (default
    False: each fetch is sent when its step begins; True: one step ahead,
    overlapping the previous step's gradient, see ``_run_replica``).

    Fitted attributes: W_, objective_ (exact objective at each snapshot),
    times_ (seconds since the server started, per snapshot), steps_ (total
    minibatch steps at each snapshot), n_iter_ (total minibatch steps),
    n_features_in_.
    """

    #: the replicas' generators are spawned from random_state: a RandomState cannot spawn
    _parameter_constraints: ClassVar[dict] = {**RICA._parameter_constraints,
                              "random_state": [Interval(Integral, 0, None, closed="left"),
                                               np.random.Generator, None],
                              "prefetch": ["boolean"]}

    def __init__(self, *, n_features: int = 256, lam: float = 10.0, eps: float = 1e-2,
                 max_iter: int = 1000, dtype=np.float32, random_state=None,
                 pool: np.ndarray | None = None, callback=None, client: Client | None = None,
                 learning_rate: float = 0.1, batch_size: int = 256, n_fetch: int = 1,
                 n_push: int = 1, warm_start_steps: int = 100, snapshot_every: int = 20,
                 checkpoint_path=None, checkpoint_every: int = 100, actor_timeout: float = 30.0,
                 prefetch: bool = False, init="random"):
        super().__init__(n_features=n_features, lam=lam, eps=eps, max_iter=max_iter,
                         dtype=dtype, random_state=random_state, pool=pool, callback=callback,
                         init=init)
        self.client = client
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.n_fetch = n_fetch
        self.n_push = n_push
        self.warm_start_steps = warm_start_steps
        self.snapshot_every = snapshot_every
        self.checkpoint_path = checkpoint_path
        self.checkpoint_every = checkpoint_every
        self.actor_timeout = actor_timeout
        self.prefetch = prefetch

    def fit(self, shards, y=None) -> "DownpourRICA":
        """Learn W_ from the .npy shard files ``shards`` (each (m_s, d)); y is ignored."""
        dtype = self._check_params()
        client = self.client or default_client()
        with ShardedData(client, shard_paths(shards), dtype) as data, \
                threadpool_limits(1, "blas"):
            d = data.n_features_in
            loss = DistributedRicaLoss(data, self.lam, self.eps, self.pool)
            basis = data_basis(loss.C)
            groups = data.by_worker()
            server_worker = next(iter(groups))
            server_future = client.submit(
                ParameterServer, self.initial_weights(d, basis), basis, self.learning_rate,
                int(self.snapshot_every), self.checkpoint_path, int(self.checkpoint_every),
                actor=True, workers=[server_worker])
            server = server_future.result()
            basis = server.get_basis().result(self.actor_timeout)  # a resumed server's own
            rngs = check_random_state(self.random_state).spawn(len(groups) + 1)

            def replicas(workers, steps_in_all, rngs):
                shares = np.full(len(workers), steps_in_all // len(workers))
                shares[:steps_in_all % len(workers)] += 1
                return {where: client.submit(
                    _run_replica, server, loss.C, basis, self.lam, self.eps, self.pool,
                    int(self.batch_size), int(n_steps), int(self.n_fetch), int(self.n_push),
                    float(self.actor_timeout), bool(self.prefetch), rng, *groups[where],
                    workers=[where], pure=False)
                    for where, rng, n_steps in zip(workers, rngs, shares) if n_steps > 0}

            done = server.total_steps().result(self.actor_timeout)
            warm_start_steps = int(self.warm_start_steps)
            try:
                if done == 0 and warm_start_steps > 0:
                    self._wait(data, replicas([server_worker], warm_start_steps, rngs[-1:]),
                               server_worker)
                    done = warm_start_steps
                steps_in_all = warm_start_steps + int(self.max_iter) * len(groups)
                self._wait(data, replicas(list(groups), max(steps_in_all - done, 0), rngs),
                           server_worker)
            except BaseException:
                client.cancel([server_future])
                raise
            server.snapshot().result(self.actor_timeout)
            history = server.snapshots().result(self.actor_timeout)
            if self.checkpoint_path is not None:
                server.checkpoint().result(self.actor_timeout)
            self.times_ = np.array([seconds for seconds, _, _ in history])
            self.steps_ = np.array([steps for _, steps, _ in history])
            self.objective_ = np.array([loss(span_weights(V, basis, dtype)[2])[0]
                                        for _, _, V in history])
            self.W_ = span_weights(history[-1][2], basis, dtype)[2]
        if self.callback is not None:
            for steps, objective in zip(self.steps_, self.objective_):
                self.callback(int(steps), float(objective))
        self.n_iter_ = int(self.steps_[-1])
        self.optimizer_message_ = f"Downpour SGD: {self.n_iter_} minibatch steps in all replicas"
        self.n_features_in_ = d
        return self

    def _wait(self, data: ShardedData, replicas: dict, server_worker: str) -> None:
        """Wait for the replicas ({worker: future}); drop those whose worker dies.

        Losing the server's worker loses the actor: every replica is
        cancelled, and a RuntimeError points at the checkpoint to resume from.
        """
        try:
            while replicas:
                try:
                    data.wait_alive(list(replicas.values()), {server_worker, *replicas})
                    data.client.gather(list(replicas.values()))
                    return
                except WorkerLostError as error:
                    if server_worker in error.addresses:
                        raise RuntimeError(
                            f"the parameter server was lost with worker {server_worker}; "
                            f"re-run to resume from checkpoint {self.checkpoint_path}") from error
                    logger.warning("Downpour replica(s) lost with worker(s) %s; the others go on",
                                   ", ".join(error.addresses))
                    data.client.cancel([replicas.pop(where) for where in error.addresses])
        except BaseException:
            data.client.cancel(list(replicas.values()))
            raise
