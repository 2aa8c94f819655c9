"""Stage: train one RICA layer."""
from __future__ import annotations

import time
from pathlib import Path

from prefect import task

from tasks.logs import cached, report_progress, stage_logger
from terafeat.atomic_files import load_array, save_array
from terafeat.distributed.training import fit_rica_layer
from terafeat.learning.pooling import subspace_pooling
from terafeat.learning.rica import distinct_filters, sampled_filters

LOG_EVERY = 25
#: Starting filters: seeded Gaussian rows, or seeded patches drawn from the data.
INITS = ("random", "samples")


@task(name="train-rica")
def train_rica_layer(whitened_path: str, run_dir: str, n_features: int, lam: float, eps: float,
                     max_iter: int, dtype: str, seed: int, group_size: int = 1,
                     prefix: str = "", backend: str = "local", dask_address: str | None = None,
                     solver: str = "lbfgs", cache_root: str | None = None,
                     init: str = "random") -> dict:
    """RICA on whitened patches (m, d); group_size > 1 trains with ISA pooling;
    ``init`` "random" (Gaussian filters) or "samples" (``rica.sampled_filters``:
    seeded patches drawn from the data).

    backend "local" trains in this process (through the stage cache when
    ``cache_root`` is given); "dask" on a Dask cluster (``dask_address``,
    else ``TERAFEAT_DASK_ADDRESS``, else a local cluster), with shards under
    the run folder and ``solver`` "lbfgs" (exact) or "downpour" (asynchronous
    SGD); its checkpoint lives in the fit's own (partial) cache entry, keyed by
    the data and every parameter: a killed fit's re-run resumes it and says
    so, a finished fit's re-run is a cache hit, and the checkpoint is deleted
    when the fit ends.
    Writes ``<prefix>W.npy`` (k, d) and ``<prefix>objective.npy``; returns
    their paths and the fit's summary numbers (with "dask", "peak_rss": the workers'
    largest peak resident memory, bytes).
    """
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    logger = stage_logger()
    run = Path(run_dir)

    def compute(out: Path) -> dict:
        X = load_array(whitened_path)
        pool = subspace_pooling(n_features, group_size) if group_size > 1 else None
        start = sampled_filters(X, n_features, seed) if init == "samples" else init
        started = time.perf_counter()

        def report(iteration: int, value: float):
            report_progress(f"train {prefix.rstrip('-') or 'RICA'}", iteration, max_iter)
            if iteration % LOG_EVERY == 0 or iteration == max_iter:
                logger.info("iteration %d: objective %.6g (%.1f s)", iteration, value,
                            time.perf_counter() - started)

        options = {}
        if backend == "dask":
            checkpoint = out / f"{prefix}checkpoint.npz"
            if checkpoint.exists():
                logger.info("resuming the unfinished fit checkpointed in %s", checkpoint)
            options = {"dask_address": dask_address, "solver": solver,
                       "checkpoint_path": checkpoint, "shard_folder": run / f"{prefix}shards"}
        layer = fit_rica_layer(
            X, {"n_features": n_features, "lam": lam, "eps": eps, "max_iter": max_iter,
                "dtype": dtype, "random_state": seed, "pool": pool, "init": start},
            backend=backend, callback=report, **options)
        seconds = time.perf_counter() - started
        if backend == "dask":  # the fit is done: its result, not its checkpoint, is kept
            options["checkpoint_path"].unlink(missing_ok=True)
        distinct = distinct_filters(layer.W_)
        logger.info("RICA %d -> %d features (%d distinct): %d iterations in %.1f s, objective "
                    "%.6g -> %.6g (%s)", X.shape[1], n_features, distinct, layer.n_iter_, seconds,
                    layer.objective_[0], layer.objective_[-1], layer.optimizer_message_)
        return {"W": str(save_array(out / f"{prefix}W.npy", layer.W_)),
                "objective": str(save_array(out / f"{prefix}objective.npy", layer.objective_)),
                "n_iter": layer.n_iter_, "seconds": seconds, "distinct_filters": distinct,
                "initial_objective": float(layer.objective_[0]),
                "final_objective": float(layer.objective_[-1]),
                "optimizer_message": layer.optimizer_message_,
                "resumed_from": int(getattr(layer, "resumed_from_", 0) or 0),
                **({"peak_rss": layer.workers_peak_rss_} if backend == "dask" else {})}

    params = {"n_features": n_features, "lam": lam, "eps": eps, "max_iter": max_iter,
              "dtype": dtype, "seed": seed, "group_size": group_size, "prefix": prefix,
              "init": init}
    if backend == "dask":
        params.update(backend=backend, solver=solver)
    return cached(cache_root, "train-rica", params, {"whitened": whitened_path}, run, compute,
                  resumable=backend == "dask")
