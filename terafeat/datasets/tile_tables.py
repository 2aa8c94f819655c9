"""Histology tile tables: the layouts read into one table, seeded splits and subsets,
tiles read a batch at a time.

A tile table is a DataFrame with columns path, index (row in an HDF5 file,
-1 for an image file), label and split ("train" / "test").  Tiles are read
``batch_size`` at a time as float32 RGB (b, h, w, 3) in [0, 1].
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from terafeat.datasets.download import fetch
from terafeat.datasets.folders import read_image_folders
from terafeat.datasets.splits import read_list_files, split_per_class
from terafeat.datasets.tiles import (
    PCAM_CLASS_NAMES,
    iter_pcam_batches,
    read_kather2016,
    read_pcam_folders,
    read_pcam_h5,
)
from terafeat.media.adaptations import ImageAdaptations
from terafeat.media.images import iter_image_batches

DATASETS = ("pcam_folders", "pcam_h5", "class_folders", "kather2016", "lists")
#: The data sets that ``download_tiles`` fetches: name in ``download.DATASETS``.
DOWNLOADS = {"pcam_h5": "pcam", "kather2016": "kather2016"}
SPLITS = ("train", "test")
#: The splits PatchCamelyon's layouts hold besides "train": either can be scored.
PCAM_TEST_SPLITS = ("test", "valid")


def read_tile_table(dataset: str, root, split_train: float = 0.75, random_state=None,
                    test_split: str = "test", test_root=None
                    ) -> tuple[pd.DataFrame, list[str], list[tuple[str, str]]]:
    """The train and test tiles of a data set: (table, class names in label order,
    layout problems [(path, problem)]).

    dataset: "pcam_folders" (``root/{train,valid,test}/{0,1}/*.jpg``, or under
    ``root/pcam-subset``), "pcam_h5" (``camelyonpatch_level_2_split_*_{x,y}.h5``),
    "class_folders" (``root/{train,test}/<class>/*``, or ``root/<class>/*`` split
    here), "kather2016" (``root/[Kather_texture_2016_image_tiles_5000/]<NN_CLASS>/*.tif``,
    split here; class names "tumor", "stroma", ...) or "lists" (``root/train.txt``,
    ``root/test.txt``: :mod:`terafeat.datasets.splits`). A tree split here is seeded and
    stratified, ``split_train`` training tiles per class (a count, or a fraction).
    test_split: the PCam split scored as "test" ("test" or "valid"). test_root: a folder
    of ``<class>/<tile>`` tiles (class folders named as the data set's) scored instead
    of the data set's test split. ``table.attrs["unused"]``: {split: tiles} of the
    splits found and not used.
    """
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    if test_split not in PCAM_TEST_SPLITS or (test_split != "test"
                                              and not dataset.startswith("pcam")):
        raise ValueError(f"test_split={test_split!r}: the PCam layouts score 'test' or "
                         "'valid'; the other layouts only 'test'")
    if dataset == "pcam_h5":
        table = read_pcam_h5(root, splits=("train", test_split))
    elif dataset == "kather2016":
        table = read_kather2016(root, strict=False)
    elif dataset == "pcam_folders":
        nested = Path(root) / "pcam-subset"
        table = read_pcam_folders(nested if nested.is_dir() else root, strict=False)
    elif dataset == "lists":
        table = read_list_files(root)
    else:
        has_splits = all((Path(root) / split).is_dir() for split in SPLITS)
        table = read_image_folders(root, splits=SPLITS if has_splits else None, strict=False)
    if (table["split"] == "all").all():  # one folder per class: split here
        table["split"] = split_per_class(table["label"].to_numpy(), split_train, random_state,
                                         table.attrs.get("class_names"))
    problems = list(table.attrs.get("problems", []))
    classes = list(table.attrs.get("classes", PCAM_CLASS_NAMES))
    class_names = list(table.attrs.get("class_names", PCAM_CLASS_NAMES.values()))
    if "index" not in table:
        table["index"] = -1
    scored = {"train": "train", test_split: "test"}
    unused = {split: int(n) for split, n in table["split"].value_counts().items()
              if split not in scored}
    table = table[table["split"].isin(scored)].assign(split=lambda t: t["split"].map(scored))
    if test_root is not None:
        held = read_image_folders(test_root, classes=classes, strict=False)
        problems += held.attrs["problems"]
        held = held.assign(split="test", index=-1)
        unused["test"] = int((table["split"] == "test").sum())
        table = pd.concat([table[table["split"] == "train"], held], ignore_index=True)
    table = table[["path", "index", "label", "split"]]
    for split, source in (("train", root), ("test", test_root or root)):
        if not (table["split"] == split).any():
            name = test_split if split == "test" and test_root is None else split
            raise ValueError(f"{source}: no {name} tiles found for dataset {dataset!r}")
    table = table.reset_index(drop=True)
    table.attrs["unused"] = {split: n for split, n in unused.items() if n}
    return table, class_names, problems


def download_tiles(dataset: str, root, progress=None) -> Path:
    """Download ``dataset`` ("pcam_h5" or "kather2016") from its official address into
    ``root/<name>`` (``download.fetch``: resumed, checked where a digest is known,
    unpacked once); returns the folder to pass to :func:`read_tile_table`."""
    if dataset not in DOWNLOADS:
        raise ValueError(f"dataset {dataset!r} has no download; downloadable: {tuple(DOWNLOADS)}")
    return fetch(DOWNLOADS[dataset], root, progress)


def limit_tiles(table: pd.DataFrame, max_per_split: int | None,
                random_state: int = 0) -> pd.DataFrame:
    """At most ``max_per_split`` tiles of each split: a seeded random subset, stratified by
    label (scikit-learn's ``train_test_split``); row order kept."""
    if max_per_split is None:
        return table
    kept = []
    for _, rows in table.groupby("split", sort=False):
        if len(rows) <= max_per_split:
            kept.append(rows.index.to_numpy())
        else:
            kept.append(train_test_split(rows.index.to_numpy(), train_size=max_per_split,
                                         stratify=rows["label"], random_state=random_state)[0])
    return table.loc[np.sort(np.concatenate(kept))].reset_index(drop=True)


def iter_tile_batches(table: pd.DataFrame, batch_size: int,
                      adaptations: ImageAdaptations | None = None
                      ) -> Iterator[tuple[np.ndarray, np.ndarray, list[tuple[str, str]]]]:
    """Tiles of ``table`` in its row order, ``batch_size`` at a time.

    Yields (rows (b,) int64 positions in ``table`` of the tiles read, tiles
    (b, h, w, 3) float32 in [0, 1], problems [(path, problem)] of the files
    skipped).  HDF5 rows (index >= 0) are read from their file in batches.
    adaptations: notes each tile read (stored size and mode; grey copied to RGB).
    """
    table = table.reset_index(drop=True)
    for start in range(0, len(table), batch_size):
        block = table.iloc[start:start + batch_size]
        in_h5 = block["index"].to_numpy() >= 0
        if not in_h5.any():
            kept, tiles, problems = next(iter_image_batches(block["path"].tolist(), len(block),
                                                            adaptations=adaptations))
            yield kept + start, tiles, problems
            continue
        rows, parts = [], []
        for path, group in block.groupby("path", sort=False):
            order = {index: row for row, index in zip(group.index, group["index"])}
            for indices, tiles in iter_pcam_batches(path, batch_size, group["index"].to_numpy()):
                rows.append([order[i] for i in indices])
                parts.append(tiles)
                for _ in range(len(tiles) if adaptations is not None else 0):
                    adaptations.note(tiles.shape[2:0:-1], "RGB")
        rows = np.concatenate(rows)
        order = np.argsort(rows)
        yield rows[order], np.concatenate(parts)[order].astype(np.float32) / np.float32(255), []
