"""Stage: list the tiles of a histology data set, as a tile table and as the image listing
the single-layer pipeline's stages read (with dihedral copies)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from prefect import task

from tasks.logs import stage_logger
from terafeat.atomic_files import atomic_write, save_json
from terafeat.datasets.tile_listing import TILE_READER, tile_listing
from terafeat.datasets.tile_tables import limit_tiles, read_tile_table

TABLE_COLUMNS = ["path", "index", "label", "split"]


def load_tile_table(path: str) -> pd.DataFrame:
    """The tile table written by :func:`list_tiles` (columns path, index, label, split)."""
    return pd.read_csv(path, dtype={"path": str, "index": np.int64, "label": np.int64,
                                    "split": str})


@task(name="list-tiles")
def list_tiles(*, dataset: str, data_root: str, run_dir: str, max_tiles_per_split: int | None,
               seed: int, split_train: float = 0.75, test_split: str = "test",
               test_root: str | None = None, dihedral_train: int = 1) -> dict:
    """Index the train / test tiles -> ``tiles.csv``; layout problems -> ``layout_problems.json``;
    the listing (``tile_listing.tile_listing``: ``dihedral_train`` rows per training tile,
    8 per test tile) -> ``listing.csv``, its original training rows -> ``train_images.csv``.

    split_train, test_split, test_root: see ``tile_tables.read_tile_table`` (a tree split
    here is seeded by ``seed``).  Returns {"tiles": path, "class_names": [...] in label
    order, "counts": {split: {label: n}}, "layout_problems": [[path, problem]],
    "unused_splits": {split: tiles found and not used}} and the keys of the ``list-images``
    stage the pipeline's stages read ("listing", "train_images", "classes", "reader",
    "n_train" rows, "n_test" tiles).
    """
    table, class_names, problems = read_tile_table(dataset, data_root, split_train, seed,
                                                   test_split, test_root)
    unused = dict(table.attrs.get("unused", {}))
    table = limit_tiles(table, max_tiles_per_split, seed)
    run = Path(run_dir)
    path = run / "tiles.csv"
    table.to_csv(path, index=False, columns=TABLE_COLUMNS)
    save_json(run / "layout_problems.json", problems)
    listing = tile_listing(table, dihedral_train, seed)
    paths = {"listing": run / "listing.csv", "train_images": run / "train_images.csv"}
    for name, rows in (("listing", listing),
                       ("train_images", listing[(listing["split"] == "train")
                                                & listing["original"]].sort_values("tile"))):
        atomic_write(paths[name], lambda file, rows=rows: file.write(
            rows.to_csv(index=False).encode()))
    counts = {split: {str(label): int(n) for label, n in rows.groupby("label").size().items()}
              for split, rows in table.groupby("split")}
    stage_logger().info("%s tiles under %s%s: %s; %d layout problems%s", dataset, data_root,
                        f" (test: {test_root})" if test_root else "", counts, len(problems),
                        "".join(f"; {split} split: {n} tiles not used" for split, n in
                                unused.items()))
    return {"tiles": str(path), "class_names": class_names, "counts": counts,
            "layout_problems": problems, "unused_splits": unused,
            "listing": str(paths["listing"]), "train_images": str(paths["train_images"]),
            "classes": list(range(len(class_names))), "reader": TILE_READER,
            "n_train": int((listing["split"] == "train").sum()),
            "n_test": int((table["split"] == "test").sum())}
