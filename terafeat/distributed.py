"""RICA over a Dask cluster: shards on workers, exact distributed L-BFGS, Downpour SGD.

Data never travel through the scheduler.  Patches are written once as
``.npy`` shards (:func:`write_shards`); :class:`ShardedData` has the workers
load them (:func:`load_shard`) and keeps the loaded arrays pinned where they
are, so an evaluation of the objective sends out only W (k, d) and brings back
only a (k, d) gradient per worker thread.

* :class:`DistributedRICA`: scipy's L-BFGS on the client over
  :class:`DistributedRicaLoss`, the exact objective of :class:`terafeat.rica.RICA`
  on the concatenated shards (``C = sum_s X_s^T X_s / m`` reduced once, in
  float64; per evaluation the per-shard sparsity sums).  Checkpoints, resumes,
  and survives the loss of workers.
* :class:`DownpourRICA`: Downpour SGD (Dean et al. 2012): a
  :class:`ParameterServer` actor holding V and Adagrad accumulators, one
  asynchronous minibatch replica per worker on that worker's shards.
* :func:`get_client`: a local cluster sized to the machine, or an existing
  scheduler (``dask_address`` or ``TERAFEAT_DASK_ADDRESS``).
* :func:`train_rica_layer`: the one entry point a pipeline task calls.

No Prefect here: everything runs from a notebook with a ``distributed.Client``.
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import CancelledError
from pathlib import Path

import numpy as np
from dask.sizeof import sizeof
from distributed import Client, KilledWorker, LocalCluster, default_client, wait
from threadpoolctl import threadpool_limits

from terafeat.rica import (RICA, SparsityKernel, data_basis, minimize_rica, reconstruction_terms,
                           span_gradient, span_weights, sparsity_terms)
from terafeat.storage import atomic_write
from terafeat.validation import check_array, check_dtype, check_random_state

__all__ = [
    "DASK_ADDRESS_ENV",
    "DistributedRICA",
    "DistributedRicaLoss",
    "DownpourRICA",
    "ParameterServer",
    "ShardError",
    "ShardedData",
    "WorkerLostError",
    "get_client",
    "load_shard",
    "train_rica_layer",
    "worker_transfer_bytes",
    "write_shards",
]

logger = logging.getLogger("terafeat.distributed")

#: Environment variable naming an existing Dask scheduler (``tcp://host:port``).
DASK_ADDRESS_ENV = "TERAFEAT_DASK_ADDRESS"
#: Environment of every worker process of a local cluster: one BLAS thread each.
BLAS_ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
#: Largest shard :func:`train_rica_layer` writes.
MAX_SHARD_BYTES = 256 << 20
#: Errors meaning "a worker went away", as opposed to errors in the science.
_WORKER_FAILURES = (KilledWorker, CancelledError, OSError, TimeoutError)


# ----------------------------------------------------------------------------- shards

class ShardError(RuntimeError):
    """A shard file that is missing, unreadable or malformed; the message names it."""


def write_shards(X, folder, rows_per_shard: int, prefix: str = "shard") -> list[Path]:
    """Write X (m, d) as ``ceil(m / rows_per_shard)`` files ``folder/<prefix>-00000.npy`` ...

    Each file is written atomically (temporary file, then rename), in X's
    float dtype (integers become float32).  Returns the paths in row order.
    """
    X = np.asarray(X)
    X = check_array(X, dtype=X.dtype if X.dtype == np.float64 else np.float32, name="X")
    rows_per_shard = int(rows_per_shard)
    if rows_per_shard < 1:
        raise ValueError(f"rows_per_shard must be >= 1, got {rows_per_shard}")
    folder = Path(folder)
    paths = []
    for index, start in enumerate(range(0, X.shape[0], rows_per_shard)):
        path = folder / f"{prefix}-{index:05d}.npy"
        atomic_write(path, lambda file, block=X[start:start + rows_per_shard]: np.save(file, block))
        paths.append(path)
    return paths


def load_shard(path, dtype=np.float32, mapped: bool = False) -> np.ndarray:
    """The (m_s, d) array of one shard file, as C-contiguous ``dtype``; runs on workers.
    mapped: memory-mapped read-only as stored instead (no copy, no dtype conversion, no
    NaN check: for repeated passes over shards already checked once).

    Raises ShardError naming the file when it is missing, unreadable, not a
    2-D numeric array, or holds NaN / infinite values.
    """
    try:
        X = np.load(path, mmap_mode="r" if mapped else None, allow_pickle=False)
    except FileNotFoundError:
        raise ShardError(f"shard file {path} does not exist") from None
    except (OSError, ValueError, EOFError) as error:
        raise ShardError(f"shard file {path} is unreadable or corrupt: {error}") from None
    if mapped:
        if X.ndim != 2:
            raise ShardError(f"shard file {path} must be 2-D (n_samples, n_features), got "
                             f"shape {X.shape}")
        return X
    try:
        return check_array(X, dtype=dtype, name=f"shard file {path}")
    except ValueError as error:
        raise ShardError(str(error)) from None


class _Shard:
    """A shard loaded on a worker: X (m_s, d) and the sparsity kernel over it.

    The kernel (``rica.SparsityKernel``: block buffers of (b, k) and (k, d))
    is kept across evaluations; rebuilding it per call costs 6-12% of the
    evaluation in a Dask worker, whose ``MALLOC_TRIM_THRESHOLD_`` makes every
    large allocation a fresh mmap.  One evaluation at a time per shard.
    """

    def __init__(self, X: np.ndarray):
        self.X = X
        self._kernel = self._k = self._pool = None

    def sparsity_terms(self, W: np.ndarray, eps: float, pool) -> tuple[float, np.ndarray]:
        """``rica.sparsity_terms(W, X, eps, pool)`` with the cached kernel."""
        same_pool = (pool is None and self._pool is None) or (
            pool is not None and self._pool is not None and np.array_equal(pool, self._pool))
        if self._k != W.shape[0] or not same_pool:
            self._kernel = SparsityKernel(self.X, W.shape[0], pool)
            self._k, self._pool = W.shape[0], pool
        return self._kernel(W, eps)


sizeof.register(_Shard)(lambda shard: shard.X.nbytes)


def _load(path, dtype) -> _Shard:
    return _Shard(load_shard(path, dtype))


def _shape(shard: _Shard) -> tuple[int, int]:
    return shard.X.shape


def _gram(shard: _Shard) -> tuple[np.ndarray, int]:
    """(X^T X in float64 (d, d), m_s) of one shard."""
    X64 = shard.X.astype(np.float64, copy=False)
    return X64.T @ X64, len(X64)


def _sparsity(shard: _Shard, W: np.ndarray, eps: float, pool) -> tuple[float, np.ndarray, int]:
    """(penalty sum, its gradient (k, d), m_s) of one shard: ``rica.sparsity_terms``."""
    return (*shard.sparsity_terms(W, eps, pool), len(shard.X))


def _map_sum(func: Callable, args: tuple, *shards: _Shard) -> tuple:
    """Sum of ``func(shard, *args)`` over the shards held by one worker thread."""
    return _sum_partials(*(func(shard, *args) for shard in shards))


def _sum_partials(*partials: tuple) -> tuple:
    """Element-wise sum of tuples of numbers and arrays: one node of the reduction tree."""
    return tuple(sum(items[1:], start=items[0]) for items in zip(*partials))


def _objective(reconstruction: tuple[float, np.ndarray], penalty_sum: float,
               penalty_grad: np.ndarray, m: int) -> tuple[float, np.ndarray]:
    """J and dJ/dW (k, d) from the reconstruction term and the penalty sums over m rows.

    The same arithmetic as ``RicaLoss.__call__``, so a sharded evaluation is
    bit-for-bit the single-process one up to the order of the sums.
    """
    value, grad = reconstruction
    grad += penalty_grad * grad.dtype.type(1.0 / m)
    return value + penalty_sum / m, grad


# ----------------------------------------------------------------------------- cluster

def available_cores() -> int:
    """CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@contextlib.contextmanager
def get_client(dask_address: str | None = None, n_workers: int | None = None,
               connect_timeout: float = 10.0, **cluster_kwargs) -> Iterator[Client]:
    """A ``distributed.Client``, closed (with any cluster it started) on exit.

    dask_address: scheduler to connect to (``tcp://host:port``); None reads
    ``TERAFEAT_DASK_ADDRESS``, and if that is unset too starts a
    ``LocalCluster`` of ``n_workers`` (default: the usable cores) processes
    with one thread and one BLAS thread each (``cluster_kwargs`` go to
    LocalCluster, e.g. ``dashboard_address=":0"``).  An unreachable scheduler
    raises ConnectionError naming the address after ``connect_timeout``
    seconds.  The dashboard link is logged.

    An external cluster (what ``tests/test_distributed.py`` starts)::

        dask scheduler --host 127.0.0.1 --port 8786 &
        dask worker tcp://127.0.0.1:8786 --nthreads 1 &      # one per core/machine
        export TERAFEAT_DASK_ADDRESS=tcp://127.0.0.1:8786     # or dask_address=...

    Workers started by ``dask worker`` also get one BLAS thread each (Dask's
    ``distributed.nanny.pre-spawn-environ``); shard files must be on storage
    every worker can read.
    """
    address = dask_address or os.environ.get(DASK_ADDRESS_ENV) or None
    if address is None:
        options = {"processes": True, "threads_per_worker": 1, "env": dict(BLAS_ONE_THREAD),
                   **cluster_kwargs}
        with LocalCluster(n_workers=n_workers or available_cores(), **options) as cluster, \
                Client(cluster) as client:
            logger.info("local Dask cluster of %d workers; dashboard: %s",
                        len(cluster.workers), client.dashboard_link)
            yield client
        return
    if n_workers is not None or cluster_kwargs:
        raise ValueError("n_workers and cluster options apply to a local cluster, "
                         f"not to the existing scheduler at {address}")
    try:
        client = Client(address, timeout=connect_timeout)
    except (OSError, TimeoutError, ValueError) as error:
        raise ConnectionError(f"cannot reach the Dask scheduler at {address} within "
                              f"{connect_timeout:g} s: {error}") from error
    with client:
        logger.info("connected to the Dask scheduler at %s (%d workers); dashboard: %s",
                    address, len(client.scheduler_info()["workers"]), client.dashboard_link)
        yield client


def worker_transfer_bytes(client: Client) -> int:
    """Bytes the workers have served so far, to each other or to the scheduler (results
    gathered for the client); cumulative, all workers."""
    sent = client.run(lambda dask_worker: dask_worker.transfer_outgoing_bytes_total)
    return int(sum(sent.values()))


class WorkerLostError(RuntimeError):
    """Workers holding shards (``addresses``) left the cluster during a computation."""

    def __init__(self, addresses: Sequence[str]):
        super().__init__(f"lost worker(s) {', '.join(addresses)}")
        self.addresses = list(addresses)


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

    When a worker holding shards dies, Dask reloads its shards on the
    remaining (or restarted) workers from the files; ``map_reduce`` notices
    the loss (it polls the worker list every ``poll_interval`` s while
    waiting), re-submits the lost work and logs the recovery, at most
    ``max_recoveries`` times per call.

    Attributes: ``n_samples`` (m), ``n_features_in`` (d), ``locations`` (the
    worker address of each shard), ``n_recoveries``, ``bytes_out`` /
    ``bytes_in`` (bytes sent to / received from the cluster by the client,
    cumulative).
    """

    def __init__(self, client: Client, shard_paths: Sequence, dtype=np.float32,
                 fan_in: int = 8, poll_interval: float = 0.5, max_recoveries: int = 3,
                 load_timeout: float = 600.0):
        self.client = client
        self.paths = [os.fspath(path) for path in shard_paths]
        if not self.paths:
            raise ValueError("no shard files given")
        self.dtype = check_dtype(dtype)
        self.fan_in = max(2, int(fan_in))
        self.poll_interval = float(poll_interval)
        self.max_recoveries = int(max_recoveries)
        self.load_timeout = float(load_timeout)
        self.n_recoveries = 0
        self.bytes_out = self.bytes_in = 0
        workers = self.live_workers()
        if not workers:
            raise RuntimeError("the Dask cluster has no workers")
        self.futures = [self._load(path, workers[i % len(workers)])
                        for i, path in enumerate(self.paths)]
        self.locations = self._locate()
        self.threads = client.nthreads()
        shapes = self.client.gather([self.client.submit(_shape, shard, workers=[where], pure=False)
                                     for shard, where in zip(self.futures, self.locations)])
        self.n_samples = sum(rows for rows, _ in shapes)
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
        """Addresses of the workers the scheduler knows now (a fresh query)."""
        return sorted(self.client.scheduler_info(n_workers=-1)["workers"])

    def by_worker(self) -> dict[str, list]:
        """The shard futures grouped by the address of the worker holding them."""
        groups: dict[str, list] = {}
        for shard, where in zip(self.futures, self.locations):
            groups.setdefault(where, []).append(shard)
        return groups

    def _load(self, path: str, where: str):
        return self.client.submit(_load, path, self.dtype, workers=[where],
                                  allow_other_workers=True, pure=False)

    def _locate(self) -> list[str]:
        """Wait for every shard to be loaded; the address holding each."""
        try:
            wait(self.futures, timeout=self.load_timeout)
        except TimeoutError:
            raise RuntimeError(f"shards not loaded within {self.load_timeout:g} s") from None
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
                return self._map_reduce_once(func, args)
            except _WORKER_FAILURES + (WorkerLostError,) as error:
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
            level += [client.submit(_map_sum, func, args, *shards[i::n_tasks], workers=[where],
                                    pure=False) for i in range(n_tasks)]
        self.bytes_out += len(level) * sum(arg.nbytes for arg in args if isinstance(arg, np.ndarray))
        while len(level) > self.fan_in:
            level = [client.submit(_sum_partials, *level[i:i + self.fan_in], pure=False)
                     for i in range(0, len(level), self.fan_in)]
        try:
            self.wait_alive(level, set(self.locations))
            partials = client.gather(level)
        except BaseException:
            client.cancel(level)
            raise
        self.bytes_in += sum(item.nbytes if isinstance(item, np.ndarray) else 8
                             for partial in partials for item in partial)
        return _sum_partials(*partials)

    def _recover(self, error: BaseException) -> None:
        """Reload the shards of lost workers where Dask can, and learn where they are now."""
        self.n_recoveries += 1
        lost = sorted(set(self.locations).difference(self.live_workers()))
        logger.warning("evaluation failed (%s: %s); lost worker(s): %s; reloading their shards",
                       type(error).__name__, error, ", ".join(lost) or "none")
        self.client.wait_for_workers(1, timeout=self.load_timeout)
        workers = self.live_workers()
        for i, shard in enumerate(self.futures):
            # Dask recomputes lost shards by itself; re-submit only those it gave up on.
            if shard.status in ("error", "cancelled"):
                if shard.status == "error" and isinstance(shard.exception(), ShardError):
                    raise shard.exception()
                self.futures[i] = self._load(self.paths[i], workers[i % len(workers)])
        before, self.locations = self.locations, self._locate()
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
        gram, m = data.map_reduce(_gram)
        self.C = (gram / m).astype(data.dtype)
        self.bytes_per_evaluation = 0

    def __call__(self, W: np.ndarray) -> tuple[float, np.ndarray]:
        data = self.data
        before = data.bytes_out + data.bytes_in
        penalty_sum, penalty_grad, rows = data.map_reduce(
            _sparsity, W.astype(data.dtype, copy=False), self.eps, self.pool)
        self.bytes_per_evaluation = data.bytes_out + data.bytes_in - before
        if rows != data.n_samples:
            raise RuntimeError(f"evaluation covered {rows} rows instead of {data.n_samples}")
        return _objective(reconstruction_terms(W, self.C, self.lam), penalty_sum, penalty_grad,
                          data.n_samples)


# ----------------------------------------------------------------------------- L-BFGS

def _shard_paths(shards) -> list:
    if isinstance(shards, (str, os.PathLike, np.ndarray)):
        raise TypeError("fit takes a list of shard files (see write_shards), "
                        f"not {type(shards).__name__}")
    return list(shards)


class DistributedRICA(RICA):
    """RICA trained by exact distributed L-BFGS over shards held by Dask workers.

    Same hyper-parameters, seed, parametrisation (``rica.minimize_rica`` over
    the data's span) and fitted attributes as ``rica.RICA``: ``W_`` equals
    ``RICA.fit`` on the concatenated shards up to rounding.  Plus:

    client : distributed.Client (None: the default client).
    checkpoint_path : .npz file; every ``checkpoint_every`` iterations and at
        the end it is replaced atomically by V (k, r), the data basis (d, r),
        the iteration count and the objective history.  If it exists when fit
        starts (same k, d, m, lam, eps), training resumes from it:
        ``max_iter`` counts all iterations, those of the checkpoint included.
        scipy's L-BFGS memory (the last curvature pairs) cannot be saved, so a
        resumed run restarts L-BFGS from the checkpointed V with an empty
        memory: it continues the optimisation, not bit-for-bit the
        uninterrupted trajectory.  (A lost worker, by contrast, costs nothing:
        the evaluation is redone and L-BFGS never notices.)
    max_recoveries : lost-worker recoveries allowed per evaluation.

    During fit the client process runs its BLAS on one thread (its share of
    the work, the O(k d^2) reconstruction term, is small; more threads would
    compete with local workers for the cores).

    Extra fitted attributes: ``times_`` (n_iter_ + 1,) seconds since training
    started at each ``objective_`` entry; ``n_recoveries_``;
    ``bytes_per_evaluation_`` (client traffic of one evaluation);
    ``resumed_from_`` (iterations read from the checkpoint, 0 if none).
    """

    def __init__(self, n_features: int = 256, lam: float = 10.0, eps: float = 1e-2,
                 max_iter: int = 300, dtype=np.float32, random_state=None,
                 pool: np.ndarray | None = None, callback=None, client: Client | None = None,
                 checkpoint_path=None, checkpoint_every: int = 10, max_recoveries: int = 3,
                 init="random"):
        super().__init__(n_features=n_features, lam=lam, eps=eps, max_iter=max_iter,
                         dtype=dtype, random_state=random_state, pool=pool, callback=callback,
                         init=init)
        self.client = client
        self.checkpoint_path = checkpoint_path
        self.checkpoint_every = checkpoint_every
        self.max_recoveries = max_recoveries

    def fit(self, shards, y=None) -> "DistributedRICA":
        """Learn W_ from the .npy shard files ``shards`` (each (m_s, d)); y is ignored."""
        dtype = self._check_params()
        with ShardedData(self.client or default_client(), _shard_paths(shards), dtype,
                         max_recoveries=self.max_recoveries) as data, \
                threadpool_limits(1, "blas"):
            loss = DistributedRicaLoss(data, self.lam, self.eps, self.pool)
            self._minimize(loss, data.n_samples, data.n_features_in, dtype)
            self.n_recoveries_ = data.n_recoveries
            self.bytes_per_evaluation_ = loss.bytes_per_evaluation
        return self

    def _read_checkpoint(self, fingerprint: np.ndarray):
        """(V (k, r), basis (d, r) or None, objective list, times list), or None if absent."""
        if self.checkpoint_path is None or not Path(self.checkpoint_path).exists():
            return None
        with np.load(self.checkpoint_path) as checkpoint:
            if not np.array_equal(checkpoint["fingerprint"], fingerprint):
                raise ValueError(
                    f"checkpoint {self.checkpoint_path} was written for (k, d, m, lam, eps) = "
                    f"{checkpoint['fingerprint'].tolist()}, not {fingerprint.tolist()}: "
                    "delete it or choose another checkpoint_path")
            basis = checkpoint["basis"] if checkpoint["basis"].size else None
            return (checkpoint["V"], basis, list(checkpoint["objective"]),
                    list(checkpoint["times"]))

    def _write_checkpoint(self, V, basis, history, times, fingerprint) -> None:
        atomic_write(Path(self.checkpoint_path), lambda file: np.savez(
            file, V=V, basis=np.empty(0) if basis is None else basis,
            objective=np.asarray(history), times=np.asarray(times), fingerprint=fingerprint))

    def _minimize(self, loss: DistributedRicaLoss, m: int, d: int, dtype) -> None:
        fingerprint = np.array([int(self.n_features), d, m, float(self.lam), float(self.eps)])
        resumed = self._read_checkpoint(fingerprint)
        if resumed is None:
            basis = data_basis(loss.C)
            V = self.initial_weights(d, basis)
            history, times = [], [0.0]
        else:
            V, basis, history, times = resumed
            logger.info("resuming from checkpoint %s at iteration %d",
                        self.checkpoint_path, len(history) - 1)
        done = self.resumed_from_ = max(len(history) - 1, 0)
        start = time.perf_counter() - times[-1]

        def recording_loss(W: np.ndarray) -> tuple[float, np.ndarray]:
            value, grad = loss(W)
            if not history:  # the value at the starting point
                history.append(value)
            return value, grad

        def on_iteration(iteration: int, value: float, V_now: np.ndarray) -> None:
            nonlocal V
            V = V_now.copy()
            history.append(value)
            times.append(time.perf_counter() - start)
            due = (done + iteration) % int(self.checkpoint_every) == 0
            if self.checkpoint_path is not None and due:
                self._write_checkpoint(V, basis, history, times, fingerprint)
            if self.callback is not None:
                self.callback(done + iteration, value)

        if int(self.max_iter) > done:
            result = minimize_rica(recording_loss, V, basis, int(self.max_iter) - done, dtype,
                                   on_iteration)
            V, self.W_, self.optimizer_message_ = result.V, result.W, result.message
        else:
            self.W_ = span_weights(V, basis, dtype)[2]
            self.optimizer_message_ = "the checkpoint already holds max_iter iterations"
        if self.checkpoint_path is not None:
            self._write_checkpoint(V, basis, history, times, fingerprint)
        self.objective_ = np.asarray(history)
        self.times_ = np.asarray(times)
        self.n_iter_ = len(history) - 1
        self.n_features_in_ = d


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
                 batch_size: int, n_steps: int, n_fetch: int, n_push: int,
                 rng: np.random.Generator, *shards: _Shard) -> int:
    """One Downpour model replica on the shards of its worker; returns its step count.

    Each step draws ``batch_size`` rows (from one shard, chosen in proportion
    to its rows) and computes the gradient with respect to V of the minibatch
    objective: the exact reconstruction term (from the global C (d, d)) plus
    the minibatch sparsity term.  V is fetched every ``n_fetch`` steps; the
    accumulated gradient is pushed every ``n_push`` steps without waiting
    (at most one push in flight).
    """
    arrays = [shard.X for shard in shards]
    sizes = np.array([len(X) for X in arrays])
    pushing = None
    accumulated, since_push = 0.0, 0
    for step in range(n_steps):
        if step % n_fetch == 0:
            unit, norms, W = span_weights(server.fetch().result(), basis, C.dtype)
        X = arrays[rng.choice(len(arrays), p=sizes / sizes.sum())]
        batch = X[rng.integers(0, len(X), batch_size)]
        penalty_sum, penalty_grad = sparsity_terms(W, batch, eps, pool)
        _, grad = _objective(reconstruction_terms(W, C, lam), penalty_sum, penalty_grad, batch_size)
        accumulated = accumulated + span_gradient(grad, unit, norms, basis)
        since_push += 1
        if since_push == n_push or step == n_steps - 1:
            if pushing is not None:
                pushing.result()
            pushing = server.push(accumulated, since_push)
            accumulated, since_push = 0.0, 0
    if pushing is not None:
        pushing.result()
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
    error: re-run to resume from the checkpoint.

    Parameters beyond RICA's: client, learning_rate (Adagrad's gamma),
    batch_size, n_fetch, n_push, warm_start_steps, snapshot_every (pushes),
    checkpoint_path / checkpoint_every (pushes) for the server.

    Fitted attributes: W_, objective_ (exact objective at each snapshot),
    times_ (seconds since the server started, per snapshot), steps_ (total
    minibatch steps at each snapshot), n_iter_ (total minibatch steps),
    n_features_in_.
    """

    def __init__(self, n_features: int = 256, lam: float = 10.0, eps: float = 1e-2,
                 max_iter: int = 1000, dtype=np.float32, random_state=None,
                 pool: np.ndarray | None = None, callback=None, client: Client | None = None,
                 learning_rate: float = 0.1, batch_size: int = 256, n_fetch: int = 1,
                 n_push: int = 1, warm_start_steps: int = 100, snapshot_every: int = 20,
                 checkpoint_path=None, checkpoint_every: int = 100, init="random"):
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

    def fit(self, shards, y=None) -> "DownpourRICA":
        """Learn W_ from the .npy shard files ``shards`` (each (m_s, d)); y is ignored."""
        dtype = self._check_params()
        client = self.client or default_client()
        with ShardedData(client, _shard_paths(shards), dtype) as data, \
                threadpool_limits(1, "blas"):
            d = data.n_features_in
            loss = DistributedRicaLoss(data, self.lam, self.eps, self.pool)
            basis = data_basis(loss.C)
            groups = data.by_worker()
            server_worker = next(iter(groups))
            server = client.submit(
                ParameterServer, self.initial_weights(d, basis), basis, self.learning_rate,
                int(self.snapshot_every), self.checkpoint_path, int(self.checkpoint_every),
                actor=True, workers=[server_worker]).result()
            basis = server.get_basis().result()  # a resumed server's own
            rngs = check_random_state(self.random_state).spawn(len(groups) + 1)

            def replicas(workers, n_steps, rngs):
                return {where: client.submit(
                    _run_replica, server, loss.C, basis, self.lam, self.eps, self.pool,
                    int(self.batch_size), n_steps, int(self.n_fetch), int(self.n_push), rng,
                    *groups[where], workers=[where], pure=False)
                    for where, rng in zip(workers, rngs)}

            if server.total_steps().result() == 0 and int(self.warm_start_steps) > 0:
                self._wait(data, replicas([server_worker], int(self.warm_start_steps), rngs[-1:]),
                           server_worker)
            self._wait(data, replicas(list(groups), int(self.max_iter), rngs), server_worker)
            server.snapshot().result()
            history = server.snapshots().result()
            if self.checkpoint_path is not None:
                server.checkpoint().result()
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

        Losing the server's worker loses the actor: that is a RuntimeError
        pointing at the checkpoint to resume from.
        """
        while replicas:
            try:
                data.wait_alive(list(replicas.values()), {server_worker, *replicas})
                data.client.gather(list(replicas.values()))
                return
            except WorkerLostError as error:
                if server_worker in error.addresses:
                    raise RuntimeError(
                        f"the parameter server was lost with worker {server_worker}; re-run to "
                        f"resume from checkpoint {self.checkpoint_path}") from error
                logger.warning("Downpour replica(s) lost with worker(s) %s; the others go on",
                               ", ".join(error.addresses))
                data.client.cancel([replicas.pop(where) for where in error.addresses])


# ----------------------------------------------------------------------------- entry point

def _rows_per_shard(X: np.ndarray, n_threads: int) -> int:
    """At least one shard per worker thread, none above MAX_SHARD_BYTES."""
    most = max(1, MAX_SHARD_BYTES // (X.shape[1] * X.dtype.itemsize))
    return max(1, min(math.ceil(X.shape[0] / n_threads), most))


def train_rica_layer(X_or_shard_paths, params: Mapping, backend: str = "local",
                     dask_address: str | None = None, checkpoint_path=None, callback=None,
                     solver: str = "lbfgs", shard_folder=None) -> RICA:
    """Fit one RICA layer; the entry point of the pipeline's training task.

    X_or_shard_paths: patches (m, d) or a list of .npy shard files.
    params: estimator parameters (``n_features``, ``lam``, ``eps``,
    ``max_iter``, ``dtype``, ``random_state``, ``pool``; for
    ``solver="downpour"`` also DownpourRICA's).
    backend: ``"local"`` trains ``RICA`` in this process (shards are
    concatenated; no checkpointing); ``"dask"`` trains on the cluster of
    :func:`get_client` (``dask_address``, else ``TERAFEAT_DASK_ADDRESS``, else a
    local cluster) with ``DistributedRICA`` (``solver="lbfgs"``) or
    ``DownpourRICA`` (``solver="downpour"``).  An array is first written as
    shards to ``shard_folder`` (default: a temporary folder, removed after
    training; remote workers need a shared folder).
    callback: ``callback(iteration, objective)``.
    Returns the fitted estimator (with ``client`` reset to None).
    """
    if backend == "local":
        if checkpoint_path is not None:
            raise ValueError("checkpoint_path needs backend='dask'")
        if solver != "lbfgs":
            raise ValueError(f"backend='local' trains with L-BFGS only, not solver={solver!r}")
        X = X_or_shard_paths
        if not isinstance(X, np.ndarray):
            dtype = check_dtype(params.get("dtype", np.float32))
            X = np.concatenate([load_shard(path, dtype) for path in X])
        return RICA(**params, callback=callback).fit(X)
    if backend != "dask":
        raise ValueError(f"backend must be 'local' or 'dask', got {backend!r}")
    estimators = {"lbfgs": DistributedRICA, "downpour": DownpourRICA}
    if solver not in estimators:
        raise ValueError(f"solver must be one of {sorted(estimators)}, got {solver!r}")
    with get_client(dask_address) as client, contextlib.ExitStack() as stack:
        shard_paths = X_or_shard_paths
        if isinstance(shard_paths, np.ndarray):
            folder = shard_folder or stack.enter_context(
                tempfile.TemporaryDirectory(prefix="shards-"))
            n_threads = max(1, sum(client.nthreads().values()))
            shard_paths = write_shards(shard_paths, folder, _rows_per_shard(shard_paths, n_threads))
        estimator = estimators[solver](**params, callback=callback, client=client,
                                       checkpoint_path=checkpoint_path)
        estimator.fit(shard_paths)
    estimator.client = None
    return estimator
