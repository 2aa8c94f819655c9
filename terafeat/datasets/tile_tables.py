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
from terafeat.datasets.tiles import (
    PCAM_CLASS_NAMES,
    iter_pcam_batches,
    read_kather2016,
    read_pcam_folders,
    read_pcam_h5,
)
from terafeat.media.images import iter_image_batches
from terafeat.validation import check_random_state

DATASETS = ("pcam_folders", "pcam_h5", "class_folders", "kather2016")
#: The data sets that ``download_tiles`` fetches: name in ``download.DATASETS``.
DOWNLOADS = {"pcam_h5": "pcam", "kather2016": "kather2016"}
SPLITS = ("train", "test")

def read_tile_table(dataset: str, root, test_fraction: float = 0.25, random_state=None
                    ) -> tuple[pd.DataFrame, list[str], list[tuple[str, str]]]:
    """The train and test tiles of a data set: (table, class names in label order,
    layout problems [(path, problem)]).

    dataset: "pcam_folders" (``root/{train,test}/{0,1}/*.jpg``, or under
    ``root/pcam-subset``), "pcam_h5" (``camelyonpatch_level_2_split_*_{x,y}.h5``)
    "class_folders" (``root/{train,test}/<class>/*``, or ``root/<class>/*``
    split at random, stratified, ``test_fraction`` to test) or "kather2016"
    (``root/[Kather_texture_2016_image_tiles_5000/]<NN_CLASS>/*.tif``, split
    the same way; class names "tumor", "stroma", ...).
    """
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    if dataset == "pcam_h5":
        table = read_pcam_h5(root, splits=SPLITS)
    elif dataset == "kather2016":
        table = read_kather2016(root, strict=False)
    elif dataset == "pcam_folders":
        nested = Path(root) / "pcam-subset"
        table = read_pcam_folders(nested if nested.is_dir() else root, strict=False)
    else:
        has_splits = all((Path(root) / split).is_dir() for split in SPLITS)
        table = read_image_folders(root, splits=SPLITS if has_splits else None, strict=False)
    if (table["split"] == "all").all():  # one folder per class: split here
        table["split"] = stratified_split(table["label"].to_numpy(), test_fraction, random_state)
    problems = list(table.attrs.get("problems", []))
    class_names = list(table.attrs.get("class_names", PCAM_CLASS_NAMES.values()))
    if "index" not in table:
        table["index"] = -1
    table = table[table["split"].isin(SPLITS)][["path", "index", "label", "split"]]
    for split in SPLITS:
        if not (table["split"] == split).any():
            raise ValueError(f"{root}: no {split} tiles found for dataset {dataset!r}")
    return table.reset_index(drop=True), class_names, problems


def download_tiles(dataset: str, root, progress=None) -> Path:
    """Download ``dataset`` ("pcam_h5" or "kather2016") from its official address into
    ``root/<name>`` (``download.fetch``: resumed, checked where a digest is known,
    unpacked once); returns the folder to pass to :func:`read_tile_table`."""
    if dataset not in DOWNLOADS:
        raise ValueError(f"dataset {dataset!r} has no download; downloadable: {tuple(DOWNLOADS)}")
    return fetch(DOWNLOADS[dataset], root, progress)


def stratified_split(labels: np.ndarray, test_fraction: float, random_state=None) -> np.ndarray:
    """"train" / "test" per item (n,), about ``test_fraction`` of every class to test."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    rng = check_random_state(random_state)
    split = np.full(len(labels), "train", dtype=object)
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        split[members[:int(round(test_fraction * len(members)))]] = "test"
    return split


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


def iter_tile_batches(table: pd.DataFrame, batch_size: int
                      ) -> Iterator[tuple[np.ndarray, np.ndarray, list[tuple[str, str]]]]:
    """Tiles of ``table`` in its row order, ``batch_size`` at a time.

    Yields (rows (b,) int64 positions in ``table`` of the tiles read, tiles
    (b, h, w, 3) float32 in [0, 1], problems [(path, problem)] of the files
    skipped).  HDF5 rows (index >= 0) are read from their file in batches.
    """
    table = table.reset_index(drop=True)
    for start in range(0, len(table), batch_size):
        block = table.iloc[start:start + batch_size]
        in_h5 = block["index"].to_numpy() >= 0
        if not in_h5.any():
            kept, tiles, problems = next(iter_image_batches(block["path"].tolist(), len(block)))
            yield kept + start, tiles, problems
            continue
        rows, parts = [], []
        for path, group in block.groupby("path", sort=False):
            order = {index: row for row, index in zip(group.index, group["index"])}
            for indices, tiles in iter_pcam_batches(path, batch_size, group["index"].to_numpy()):
                rows.append([order[i] for i in indices])
                parts.append(tiles)
        rows = np.concatenate(rows)
        order = np.argsort(rows)
        yield rows[order], np.concatenate(parts)[order].astype(np.float32) / np.float32(255), []


