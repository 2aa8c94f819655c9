"""Stage: features of every tile, batch by batch, written as .npy shards.

Layout under ``<run>/features/``: ``<set>/<split>-<batch>.npy`` (b, f) float32
per feature set, ``rows/<split>-<batch>.npy`` (b,) the tiles' rows in
``tiles.csv``.  Splits are "train", "test" and, for the invariance check,
"test-<transform>" (the test tiles rotated or flipped, learned sets only).
"""
from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from prefect import task

from tasks.logs import cached, report_progress, stage_logger
from tasks.tiles import load_tile_table, tiles_fingerprint
from tasks.whitening import load_whitener
from terafeat.atomic_files import load_array, save_array
from terafeat.datasets.tile_tables import SPLITS, iter_tile_batches
from terafeat.encoding.tile_features import (
    TRANSFORMS,
    encode_tiles,
    handcrafted_features,
    learned_encoders,
    pixel_features,
)
from terafeat.learning.whitening import Whitener
from terafeat.media.adaptations import ImageAdaptations, describe_adaptations

#: Feature set -> shard folder name.
FEATURE_SETS = {"learned pooled": "learned_pooled", "learned unpooled": "learned_unpooled",
                "PCA": "pca", "pixels": "pixels", "hand-crafted": "handcrafted"}
#: The sets encoded again on transformed test tiles.
INVARIANCE_SETS = ("learned pooled", "learned unpooled")


def load_feature_shards(features_dir: str, name: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(features (n, f), rows (n,) in tiles.csv) of one feature set and split, shards in order."""
    folder, rows = Path(features_dir), []
    shards = sorted((folder / FEATURE_SETS[name]).glob(f"{split}-[0-9]*.npy"))
    if not shards:
        raise FileNotFoundError(f"{folder / FEATURE_SETS[name]}: no {split} shards")
    base_split = split.split("-")[0]
    for shard in shards:
        rows.append(load_array(folder / "rows" / f"{base_split}-{shard.stem.split('-')[-1]}.npy"))
    return np.concatenate([load_array(shard) for shard in shards]), np.concatenate(rows)


@task(name="extract-tile-features")
def extract_tile_features(*, tiles_path: str, run_dir: str, whitener_path: str, W_path: str,
                          patches_path: str, colour_mode: str, patch_size: int, stride: int,
                          pooling: str, group_size: int, eps: float, pixel_size: int,
                          batch_size: int, simple_units: str = "abs", alpha: float = 0.0,
                          cache_root: str | None = None) -> dict:
    """Every feature set of every readable tile, ``batch_size`` tiles at a time.

    simple_units, alpha: the unpooled units' non-linearity (``histology.learned_encoders``).

    PCA keeps k / group_size components of the training patches (whitened
    like the learned layer's input), so it has the pooled features' dimension.
    Through the stage cache with ``cache_root``.  Returns {"features_dir", "dimensions":
    {set: f}, "seconds": {set: s}, "n_tiles": {split: n}, "problems": [[path, problem]],
    "adaptations": ``ImageAdaptations.summary()`` of the tiles read (sizes, modes, grey
    copied to RGB)}.
    """
    def compute(out: Path) -> dict:
        logger = stage_logger()
        table = load_tile_table(tiles_path)
        whitener, W = load_whitener(whitener_path), load_array(W_path)
        pca = Whitener(method="pca", n_components=min(W.shape[0] // group_size, W.shape[1]),
                       eps=whitener.eps, remove_dc=whitener.remove_dc)
        pca.fit(load_array(patches_path))
        encoders = learned_encoders(whitener, W, pca, group_size, eps, simple_units, alpha)

        def encode(name, tiles):
            return encode_tiles(tiles, encoders[name], colour_mode, patch_size, stride, pooling)

        extractors = {**{name: (lambda tiles, name=name: encode(name, tiles)) for name in encoders},
                      "pixels": lambda tiles: pixel_features(tiles, pixel_size),
                      "hand-crafted": handcrafted_features}
        features_dir = out / "features"
        seconds, dimensions, n_tiles, problems = defaultdict(float), {}, {}, []
        adaptations = ImageAdaptations()

        def write(name, split, batch, tiles):
            started = time.perf_counter()
            features = extractors[name](tiles)
            seconds[name] += time.perf_counter() - started
            dimensions[name] = int(features.shape[1])
            save_array(features_dir / FEATURE_SETS[name] / f"{split}-{batch:05d}.npy", features)

        for split in SPLITS:
            rows = table[table["split"] == split]
            n_tiles[split] = 0
            n_batches = -(-len(rows) // batch_size)
            for batch, (kept, tiles, batch_problems) in enumerate(
                    iter_tile_batches(rows, batch_size, adaptations)):
                report_progress(f"features ({split})", batch, n_batches)
                problems += batch_problems
                n_tiles[split] += len(kept)
                save_array(features_dir / "rows" / f"{split}-{batch:05d}.npy", rows.index[kept])
                for name in extractors:
                    write(name, split, batch, tiles)
                if split == "test":
                    for transform, apply in TRANSFORMS.items():
                        for name in INVARIANCE_SETS:
                            write(name, f"test-{transform}", batch, np.ascontiguousarray(apply(tiles)))
            report_progress(f"features ({split})", n_batches, n_batches)
            logger.info("%s: features of %d tiles (%d unreadable so far)", split, n_tiles[split],
                        len(problems))
        for name in extractors:
            logger.info("%-16s %5d dimensions, %.1f s", name, dimensions[name], seconds[name])
        logger.info("tiles read: %s", describe_adaptations(adaptations.summary()))
        return {"features_dir": str(features_dir), "dimensions": dimensions,
                "seconds": {name: round(s, 3) for name, s in seconds.items()},
                "n_tiles": n_tiles, "problems": problems,
                "adaptations": adaptations.summary()}

    params = {"colour_mode": colour_mode, "patch_size": patch_size, "stride": stride,
              "pooling": pooling, "group_size": group_size, "eps": eps,
              "pixel_size": pixel_size, "batch_size": batch_size,
              "simple_units": simple_units, "alpha": alpha,
              "data": tiles_fingerprint(tiles_path) if cache_root else None}
    inputs = {"tiles": tiles_path, "whitener": whitener_path, "W": W_path,
              "patches": patches_path}
    return cached(cache_root, "extract-tile-features", params, inputs, run_dir, compute)
