"""Histology tiles (issue #5): Kather 2016 colorectal textures and PatchCamelyon.

Kather, Weis, Bianconi et al. (Sci. Rep. 2016): 5000 tiles of 150x150 pixels,
``Kather_texture_2016_image_tiles_5000/<NN_CLASS>/*.tif``, 8 tissue classes
of 625 (no official split: use cross-validation).

PatchCamelyon (Veeling et al., MICCAI 2018): 96x96 RGB tiles from lymph node
sections, label 1 when the central 32x32 region holds metastatic tissue.
Either as JPEG folders ``{train,valid,test}/{0,1}/*.jpg`` (our re-encode), or
as the original HDF5 files ``camelyonpatch_level_2_split_<split>_{x,y}.h5``
(dataset ``x``: (n, 96, 96, 3) uint8, ``y``: (n, 1, 1, 1)), read lazily.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from terafeat.datasets.folders import check_folder, read_image_folders

KATHER_FOLDER = "Kather_texture_2016_image_tiles_5000"
PCAM_SPLITS = ("train", "valid", "test")
PCAM_CLASS_NAMES = {"0": "normal", "1": "metastatic"}
PCAM_COLUMNS = ["path", "index", "label", "split"]


def kather_class_name(folder: str) -> str:
    """The tissue class of a Kather 2016 folder: "01_TUMOR" -> "tumor"."""
    return re.sub(r"^\d+_", "", folder).lower()


def read_kather2016(root, strict: bool = True) -> pd.DataFrame:
    """Kather 2016 tiles in ``root/<NN_CLASS>/*.tif`` (or under ``root/Kather_texture_2016_...``).

    Returns a DataFrame with columns path, label (int, folder order: 01_TUMOR
    is 0), class_name ("tumor", "stroma", ...) and split ("all"); see
    :func:`~terafeat.datasets.folders.read_image_folders`.
    """
    root = check_folder(root)
    if (root / KATHER_FOLDER).is_dir():
        root = root / KATHER_FOLDER
    frame = read_image_folders(root, strict=strict)
    frame["class_name"] = frame["class_name"].map(kather_class_name)
    frame.attrs["class_names"] = [kather_class_name(name) for name in frame.attrs["classes"]]
    return frame


def read_pcam_folders(root, strict: bool = True) -> pd.DataFrame:
    """PatchCamelyon JPEG tiles in ``root/{train,valid,test}/{0,1}/*.jpg``.

    Returns a DataFrame with columns path, label (1: metastatic), class_name
    ("normal" / "metastatic") and split, for the split folders present.
    """
    return read_image_folders(root, splits=PCAM_SPLITS, classes=list(PCAM_CLASS_NAMES),
                              class_names=PCAM_CLASS_NAMES, strict=strict)


def pcam_h5_path(root, split: str, part: str) -> Path:
    """Path of the ``part`` ("x" tiles or "y" labels) file of ``split`` under ``root``."""
    return Path(root) / f"camelyonpatch_level_2_split_{split}_{part}.h5"


def _gzipped(path: Path) -> Path:
    """Where the download of ``path`` lies before decompression: ``<path>.gz``."""
    return path.with_name(path.name + ".gz")


def _open_h5(path):
    """``path`` opened with h5py; FileNotFoundError naming it (and a .gz beside it)."""
    try:
        import h5py
    except ImportError as error:
        raise ImportError("reading PatchCamelyon HDF5 files needs h5py (pip install h5py)") \
            from error
    path = Path(path)
    if not path.is_file():
        hint = (f"; {_gzipped(path).name} is there: decompress it with "
                "terafeat.datasets.download.extract" if _gzipped(path).is_file() else "")
        raise FileNotFoundError(f"{path}: PatchCamelyon file not found{hint}")
    return h5py.File(path, "r")


def _tiles_dataset(file):
    """The ``x`` dataset of an open PCam file, checked to be (n, h, w, 3) uint8."""
    if "x" not in file:
        raise ValueError(f"{file.filename}: no dataset 'x' (PatchCamelyon tiles)")
    tiles = file["x"]
    if tiles.ndim != 4 or tiles.shape[3] != 3 or tiles.dtype != np.uint8:
        raise ValueError(f"{file.filename}: dataset 'x' is {tiles.shape} {tiles.dtype}, "
                         "expected (n, h, w, 3) uint8")
    return tiles


def read_pcam_h5(root, splits=PCAM_SPLITS) -> pd.DataFrame:
    """Index of the PatchCamelyon HDF5 tiles under ``root``, without reading a tile.

    Returns a DataFrame with columns path (the ``_x.h5`` file), index (row
    in it), label (int, from ``_y.h5``, which is read whole: n bytes) and
    split, for each of ``splits`` whose ``_x.h5`` (or ``.h5.gz``) exists.
    Read the tiles with :func:`iter_pcam_batches`. Raises FileNotFoundError when no split
    is present or a ``_y.h5`` is missing, ValueError naming a malformed file.
    """
    root = check_folder(root)
    frames = []
    for split in splits:
        x_path, y_path = pcam_h5_path(root, split, "x"), pcam_h5_path(root, split, "y")
        if not (x_path.is_file() or _gzipped(x_path).is_file()):
            continue
        with _open_h5(x_path) as file:
            n_tiles = len(_tiles_dataset(file))
        with _open_h5(y_path) as file:
            if "y" not in file:
                raise ValueError(f"{y_path}: no dataset 'y' (PatchCamelyon labels)")
            labels = np.asarray(file["y"]).reshape(-1).astype(np.int64)
        if len(labels) != n_tiles:
            raise ValueError(f"{y_path}: {len(labels)} labels for the {n_tiles} tiles "
                             f"of {x_path.name}")
        frames.append(pd.DataFrame({"path": str(x_path), "index": np.arange(n_tiles),
                                    "label": labels, "split": split}, columns=PCAM_COLUMNS))
    if not frames:
        names = [pcam_h5_path(root, split, "x").name for split in splits]
        raise FileNotFoundError(f"{root}: none of {names} found")
    return pd.concat(frames, ignore_index=True)


def iter_pcam_batches(path, batch_size: int = 1024,
                      indices=None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Tiles of a PatchCamelyon ``_x.h5`` file, ``batch_size`` at a time, never the whole file.

    indices: rows to read (any order; read once each, in increasing order),
    default all. Yields (indices (b,) int64, tiles (b, h, w, 3) uint8).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    with _open_h5(path) as file:
        tiles = _tiles_dataset(file)
        if indices is None:
            for start in range(0, len(tiles), batch_size):
                stop = min(start + batch_size, len(tiles))
                yield np.arange(start, stop, dtype=np.int64), tiles[start:stop]
            return
        indices = np.unique(np.asarray(indices, dtype=np.int64))
        if len(indices) and (indices[0] < 0 or indices[-1] >= len(tiles)):
            raise IndexError(f"{path}: indices must lie in [0, {len(tiles)}), got "
                             f"{indices[0]} .. {indices[-1]}")
        for start in range(0, len(indices), batch_size):
            batch = indices[start:start + batch_size]
            yield batch, tiles[batch]
