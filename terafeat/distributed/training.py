"""The one entry point a pipeline task calls: fit a RICA layer here or on a Dask cluster."""
from __future__ import annotations

import contextlib
import math
import tempfile
from collections.abc import Mapping

import numpy as np

from terafeat.distributed.cluster import get_client
from terafeat.process_memory import workers_peak_rss
from terafeat.distributed.downpour import DownpourRICA
from terafeat.distributed.lbfgs import DistributedRICA
from terafeat.distributed.shards import load_shard, write_shards
from terafeat.learning.rica import RICA
from terafeat.validation import check_dtype

#: Largest shard :func:`fit_rica_layer` writes.
MAX_SHARD_BYTES = 256 << 20

# ----------------------------------------------------------------------------- entry point

def _rows_per_shard(X: np.ndarray, n_threads: int) -> int:
    """At least one shard per worker thread, none above MAX_SHARD_BYTES."""
    most = max(1, MAX_SHARD_BYTES // (X.shape[1] * X.dtype.itemsize))
    return max(1, min(math.ceil(X.shape[0] / n_threads), most))


def fit_rica_layer(X_or_shard_paths, params: Mapping, backend: str = "local",
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
    Returns the fitted estimator (with ``client`` reset to None; with ``"dask"``, its
    ``workers_peak_rss_`` is the workers' largest peak resident memory, bytes).
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
        estimator.workers_peak_rss_ = workers_peak_rss(client)
    estimator.client = None
    return estimator
