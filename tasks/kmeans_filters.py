"""Stage: k-means filters on whitened patches (the peer learner of RICA)."""
from __future__ import annotations

import time
from pathlib import Path

from prefect import task

from tasks.logs import cached, stage_logger
from terafeat.atomic_files import load_array, save_array
from terafeat.learning.kmeans import kmeans_filters
from terafeat.learning.rica import distinct_filters


@task(name="train-kmeans")
def train_kmeans_filters(*, whitened_path: str, run_dir: str, n_filters: int, seed: int,
                         cache_root: str | None = None) -> dict:
    """Writes ``kmeans-W.npy`` (n_filters, d) unit-norm centroids; returns {"W": path,
    "seconds", "distinct_filters"}."""
    def compute(out: Path) -> dict:
        started = time.perf_counter()
        W = kmeans_filters(load_array(whitened_path), n_filters, seed)
        seconds = time.perf_counter() - started
        distinct = distinct_filters(W)
        stage_logger().info("k-means: %d centroids (%d distinct) in %.1f s", n_filters, distinct,
                            seconds)
        return {"W": str(save_array(out / "kmeans-W.npy", W)), "seconds": seconds,
                "distinct_filters": distinct}

    return cached(cache_root, "train-kmeans", {"n_filters": n_filters, "seed": seed},
                  {"whitened": whitened_path}, run_dir, compute)
