"""Exact distributed L-BFGS for RICA: scipy's L-BFGS on the client, the objective and
gradient map-reduced over the shards (only W goes out, a (k, d) gradient comes back)."""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import numpy as np
from distributed import Client, default_client
from threadpoolctl import threadpool_limits

from terafeat.atomic_files import atomic_write
from terafeat.distributed.sandblaster import SandblasterData
from terafeat.distributed.sharded_data import DistributedRicaLoss, ShardedData
from terafeat.learning.rica import RICA, data_basis, minimize_rica, span_weights

logger = logging.getLogger(__name__)

# ----------------------------------------------------------------------------- L-BFGS

def shard_paths(shards) -> list:
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
    recovery_timeout : seconds a recovery waits for a worker when none is
        left, and for the lost shards to be reloaded (``ShardedData``).
    portions_per_shard : above 1, each evaluation runs Sandblaster-style
        (``sandblaster.SandblasterData``): every shard's rows in this many
        portions, handed out as workers free up, summed in a fixed order.
    backup_tasks : Sandblaster with a second copy of each shard on another
        worker, whose idle workers run backup copies of the last unfinished
        portions (first result kept): a slow worker stops setting the pace.
        Either way every portion is counted once: the objective history is
        the same bits with or without slow workers, and W is the static
        path's up to the order of the sums.

    During fit the client process runs its BLAS on one thread (its share of
    the work, the O(k d^2) reconstruction term, is small; more threads would
    compete with local workers for the cores).

    Extra fitted attributes: ``times_`` (n_iter_ + 1,) seconds since training
    started at each ``objective_`` entry; ``n_recoveries_``;
    ``bytes_per_evaluation_`` (client traffic of one evaluation);
    ``resumed_from_`` (iterations read from the checkpoint, 0 if none);
    ``n_backup_tasks_`` (backup copies started), ``n_backups_won_`` (portions
    whose kept result came from a backup), ``portions_by_worker_`` (worker
    address -> portions whose kept result it computed); empty without
    Sandblaster.
    """

    def __init__(self, *, n_features: int = 256, lam: float = 10.0, eps: float = 1e-2,
                 max_iter: int = 300, dtype=np.float32, random_state=None,
                 pool: np.ndarray | None = None, callback=None, client: Client | None = None,
                 checkpoint_path=None, checkpoint_every: int = 10, max_recoveries: int = 3,
                 recovery_timeout: float = 30.0, init="random", portions_per_shard: int = 1,
                 backup_tasks: bool = False):
        super().__init__(n_features=n_features, lam=lam, eps=eps, max_iter=max_iter,
                         dtype=dtype, random_state=random_state, pool=pool, callback=callback,
                         init=init)
        self.client = client
        self.checkpoint_path = checkpoint_path
        self.checkpoint_every = checkpoint_every
        self.max_recoveries = max_recoveries
        self.recovery_timeout = recovery_timeout
        self.portions_per_shard = portions_per_shard
        self.backup_tasks = backup_tasks

    def fit(self, shards, y=None) -> "DistributedRICA":
        """Learn W_ from the .npy shard files ``shards`` (each (m_s, d)); y is ignored."""
        dtype = self._check_params()
        options = {"max_recoveries": self.max_recoveries,
                   "recovery_timeout": self.recovery_timeout}
        sandblaster = self.backup_tasks or self.portions_per_shard != 1
        if sandblaster:
            options.update(portions_per_shard=self.portions_per_shard,
                           backup_tasks=self.backup_tasks)
        sharded = SandblasterData if sandblaster else ShardedData
        with sharded(self.client or default_client(), shard_paths(shards), dtype,
                     **options) as data, threadpool_limits(1, "blas"):
            loss = DistributedRicaLoss(data, self.lam, self.eps, self.pool)
            self._minimize(loss, data.n_samples, data.n_features_in, dtype)
            self.n_recoveries_ = data.n_recoveries
            self.bytes_per_evaluation_ = loss.bytes_per_evaluation
            self.n_backup_tasks_ = getattr(data, "n_backup_tasks", 0)
            self.n_backups_won_ = getattr(data, "n_backups_won", 0)
            self.portions_by_worker_ = dict(getattr(data, "portions_by_worker", {}))
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
            self._warn_if_stopped(done + result.n_iter)
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


