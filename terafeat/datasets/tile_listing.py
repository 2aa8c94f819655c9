"""Histology tiles as an image listing: the rows the single-layer pipeline's stages read
(patch sampling, sharded encoding, the streamed classifier), with dihedral copies.

A tile listing has the columns of :mod:`terafeat.datasets.image_sets` listings (path,
record = the tile's row in an HDF5 file or -1 for an image file, label, split) plus
``dihedral`` (the element of :mod:`terafeat.media.dihedral` a row is read under) and
``original`` (True on one untransformed row of each tile).  Its reader options are
``TILE_READER``: :func:`terafeat.datasets.image_sets.read_listed_images` then reads the
rows with :func:`read_listed_tiles`.
"""
from __future__ import annotations

import cv2
import numpy as np
import pandas as pd

from terafeat.datasets.tile_tables import iter_tile_batches
from terafeat.media.adaptations import ImageAdaptations
from terafeat.media.dihedral import N_ELEMENTS, dihedral_rows, training_elements

#: The listing's reader options that mark its rows as tiles.
TILE_READER = {"kind": "tiles"}


def tile_listing(table: pd.DataFrame, dihedral_train: int, random_state: int) -> pd.DataFrame:
    """Listing of a tile table (columns path, index, label, split "train" / "test").

    Training tiles: ``dihedral_train`` rows each (the original and ``dihedral_train - 1``
    other elements drawn per tile, seeded), shuffled; then every test tile under all 8
    elements, the original first (test-time averaging and the invariance check read the
    same encodings).  Column ``tile`` is the tile's row in ``table``.
    """
    parts = []
    for split, copies in (("train", dihedral_train), ("test", N_ELEMENTS)):
        rows = table[table["split"] == split]
        elements = (training_elements(len(rows), copies, random_state) if split == "train"
                    else np.tile(np.arange(N_ELEMENTS), (len(rows), 1)))
        part = pd.DataFrame({"path": np.repeat(rows["path"].to_numpy(), copies),
                             "record": np.repeat(rows["index"].to_numpy(), copies),
                             "label": np.repeat(rows["label"].to_numpy(), copies),
                             "split": split, "tile": np.repeat(rows.index.to_numpy(), copies),
                             "dihedral": elements.ravel()})
        if split == "train":
            part = part.iloc[np.random.default_rng(random_state).permutation(len(part))]
        parts.append(part)
    listing = pd.concat(parts, ignore_index=True)
    listing["original"] = listing["dihedral"] == 0
    return listing


def read_listed_tiles(rows: pd.DataFrame, size: int, adaptations: ImageAdaptations | None = None
                      ) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]]]:
    """Tiles of listing ``rows`` as RGB (n_kept, size, size, 3) float32 in [0, 1], each
    under its row's dihedral element, resized (area interpolation) where its side is not
    ``size``.  Returns (tiles, kept positions in ``rows``, problems [(path, problem)]).
    adaptations: notes each tile of an ``original`` row."""
    rows = rows.reset_index(drop=True)
    table = pd.DataFrame({"path": rows["path"], "index": rows["record"]})
    original = rows["original"].to_numpy(bool) if "original" in rows else np.ones(len(rows), bool)
    out = np.empty((len(rows), size, size, 3), np.float32)
    good = np.zeros(len(rows), bool)
    problems = []
    for group, notes in ((np.flatnonzero(original), adaptations),
                         (np.flatnonzero(~original), None)):
        if not len(group):
            continue
        for kept, tiles, batch_problems in iter_tile_batches(table.iloc[group], len(group),
                                                             notes):
            problems += batch_problems
            if len(tiles) and tiles.shape[1:3] != (size, size):
                if notes is not None:
                    notes.resized += len(tiles)
                tiles = np.stack([cv2.resize(tile, (size, size), interpolation=cv2.INTER_AREA)
                                  for tile in tiles])
            out[group[kept]] = tiles
            good[group[kept]] = True
    if "dihedral" in rows:
        out = dihedral_rows(out, np.where(good, rows["dihedral"].to_numpy(), 0))
    kept = np.flatnonzero(good)
    return out[kept], kept, problems
