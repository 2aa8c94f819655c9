"""Stages: list the tiles of a histology data set; sample colour patches from training tiles."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from prefect import task

from runs.stage_cache import files_fingerprint
from tasks.logs import cached, report_progress, stage_logger
from terafeat.atomic_files import save_array, save_json
from terafeat.datasets.tile_tables import iter_tile_batches, limit_tiles, read_tile_table
from terafeat.media.colour import convert_tiles
from terafeat.media.patches import sample_patches

TABLE_COLUMNS = ["path", "index", "label", "split"]


def load_tile_table(path: str) -> pd.DataFrame:
    """The tile table written by :func:`list_tiles` (columns path, index, label, split)."""
    return pd.read_csv(path, dtype={"path": str, "index": np.int64, "label": np.int64,
                                    "split": str})


@task(name="list-tiles")
def list_tiles(*, dataset: str, data_root: str, run_dir: str, max_tiles_per_split: int | None,
               seed: int, split_train: float = 0.75, test_split: str = "test",
               test_root: str | None = None) -> dict:
    """Index the train / test tiles -> ``tiles.csv``; layout problems -> ``layout_problems.json``.

    split_train, test_split, test_root: see ``tile_tables.read_tile_table`` (a tree split
    here is seeded by ``seed``).  Returns {"tiles": path, "class_names": [...] in label
    order, "counts": {split: {label: n}}, "layout_problems": [[path, problem]],
    "unused_splits": {split: tiles found and not used}}.
    """
    table, class_names, problems = read_tile_table(dataset, data_root, split_train, seed,
                                                   test_split, test_root)
    unused = dict(table.attrs.get("unused", {}))
    table = limit_tiles(table, max_tiles_per_split, seed)
    run = Path(run_dir)
    path = run / "tiles.csv"
    table.to_csv(path, index=False, columns=TABLE_COLUMNS)
    save_json(run / "layout_problems.json", problems)
    counts = {split: {str(label): int(n) for label, n in rows.groupby("label").size().items()}
              for split, rows in table.groupby("split")}
    stage_logger().info("%s tiles under %s%s: %s; %d layout problems%s", dataset, data_root,
                        f" (test: {test_root})" if test_root else "", counts, len(problems),
                        "".join(f"; {split} split: {n} tiles not used" for split, n in
                                unused.items()))
    return {"tiles": str(path), "class_names": class_names, "counts": counts,
            "layout_problems": problems, "unused_splits": unused}


def tiles_fingerprint(tiles_path: str) -> str:
    """``files_fingerprint`` of the files ``tiles.csv`` lists: a cache key part that
    changes when a tile file changes (size or time), though the table does not."""
    return files_fingerprint(load_tile_table(tiles_path)["path"].unique())


@task(name="sample-tile-patches")
def sample_tile_patches(*, tiles_path: str, run_dir: str, n_patches: int, patch_size: int,
                        colour_mode: str, patch_tiles: int, batch_size: int, seed: int,
                        cache_root: str | None = None) -> dict:
    """Patches (n_patches, patch_size**2 * c) from at most ``patch_tiles`` TRAINING tiles,
    converted to ``colour_mode`` -> ``patches.npy``; through the stage cache with ``cache_root``.

    Returns {"patches": path, "n_tiles": tiles used, "problems": [[path, problem]] skipped}.
    """
    def compute(out: Path) -> dict:
        table = load_tile_table(tiles_path)
        train = table[table["split"] == "train"]
        train = train.sample(min(patch_tiles, len(train)), random_state=seed).sort_index()
        tiles, problems = [], []
        n_batches = -(-len(train) // batch_size)
        for number, (_, batch, batch_problems) in enumerate(iter_tile_batches(train, batch_size),
                                                            start=1):
            tiles.extend(convert_tiles(batch, colour_mode))
            problems += batch_problems
            report_progress("read patch tiles", number, n_batches)
        if not tiles:
            raise ValueError(f"{tiles_path}: none of the {len(train)} training tiles could be read")
        patches = sample_patches(tiles, n_patches, patch_size, random_state=seed)
        path = save_array(out / "patches.npy", patches)
        stage_logger().info("sampled %d %dx%dx%d %s patches from %d training tiles", len(patches),
                            patch_size, patch_size, patches.shape[1] // patch_size ** 2,
                            colour_mode, len(tiles))
        return {"patches": str(path), "n_tiles": len(tiles), "problems": problems}

    params = {"n_patches": n_patches, "patch_size": patch_size, "colour_mode": colour_mode,
              "patch_tiles": patch_tiles, "seed": seed,
              "data": tiles_fingerprint(tiles_path) if cache_root else None}
    return cached(cache_root, "sample-tile-patches", params, {"tiles": tiles_path}, run_dir,
                  compute)
