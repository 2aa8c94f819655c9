"""Stages: k-means vocabulary of descriptors, bag-of-words histograms per clip."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from prefect import task
from sklearn.cluster import MiniBatchKMeans

from tasks.logs import cached, stage_logger
from terafeat.atomic_files import load_array, save_array
from terafeat.encoding.pooled_layer import bag_of_words


def vocabulary(descriptors: list[np.ndarray], size: int, max_descriptors: int,
               seed: int) -> np.ndarray:
    """MiniBatchKMeans centroids (size, f) float32 of at most ``max_descriptors`` of the
    clips' descriptors (a list of (n_i, f) arrays), the same share drawn (seeded) from each."""
    rng = np.random.default_rng(seed)
    keep = min(1.0, max_descriptors / max(sum(len(d) for d in descriptors), 1))
    sample = np.concatenate([np.asarray(d[rng.choice(len(d), size=max(1, round(len(d) * keep)),
                                                     replace=False)])
                             for d in descriptors if len(d)])
    kmeans = MiniBatchKMeans(size, random_state=seed, n_init=3,
                             batch_size=min(4096, len(sample))).fit(sample)
    stage_logger().info("vocabulary of %d words from %d descriptors (inertia %.4g)", size,
                        len(sample), kmeans.inertia_)
    return kmeans.cluster_centers_.astype(np.float32)


@task(name="build-vocabulary")
def build_vocabulary(*, shards: list[str], run_dir: str, size: int, max_descriptors: int,
                     seed: int, cache_root: str | None = None) -> str:
    """MiniBatchKMeans centroids of descriptors drawn (seeded) from all clips.

    At most ``max_descriptors`` descriptors, the same share from every clip.
    Writes ``vocabulary.npy`` (size, descriptor length); returns its path.
    Through the stage cache with ``cache_root``.
    """
    def compute(out: Path) -> str:
        return str(save_array(out / "vocabulary.npy", vocabulary(
            [load_array(path, mmap=True) for path in shards], size, max_descriptors, seed)))

    params = {"size": size, "max_descriptors": max_descriptors, "seed": seed}
    inputs = {f"shard-{i:06d}": path for i, path in enumerate(shards)}
    return cached(cache_root, "build-vocabulary", params, inputs, run_dir, compute)


@task(name="histograms")
def clip_histograms(*, shards: list[str], vocabulary_path: str, run_dir: str) -> str:
    """L1-normalised word histogram per clip: writes ``histograms.npy`` (n_clips, size)."""
    centroids = load_array(vocabulary_path)
    histograms = np.stack([bag_of_words(load_array(path), centroids) for path in shards])
    return str(save_array(Path(run_dir) / "histograms.npy", histograms))
