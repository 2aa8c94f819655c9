"""One entry point over the labelled image sets: list them, then read any rows of a listing.

A listing is a DataFrame with columns path, record, label, class_name, split: one row
per image, ``record`` = -1 for an image file, else the image's row inside a batch file
(the publisher's CIFAR files); a prepared listing adds ``mirror`` (bool: read the
image flipped left to right) and ``shift_y``, ``shift_x`` (int pixels: read it translated
down / right, edges replicated).  Listings are what workers get: each reads its own rows.
"""
from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
import pandas as pd

from terafeat.datasets.cifar import cifar_listing, read_cifar_batch
from terafeat.datasets.folders import read_image_folders
from terafeat.datasets.imagenet import read_ilsvrc, read_imagenette, read_tiny_imagenet
from terafeat.datasets.splits import read_class_tree, read_list_files
from terafeat.datasets.tile_listing import TILE_READER, read_listed_tiles
from terafeat.media.adaptations import ImageAdaptations
from terafeat.media.images import check_choice, read_images

IMAGE_SETS = ("folders", "class_tree", "lists", "cifar10", "cifar100", "imagenette",
              "tiny-imagenet", "ilsvrc")
COLUMNS = ["path", "record", "label", "class_name", "split"]


def list_image_set(dataset: str, root, strict: bool = False, split_train: float = 0.75,
                   random_state=0) -> pd.DataFrame:
    """The listing of ``dataset`` under ``root``.

    "folders": ``root/{train,val,test}/<class>/<image>`` (our CIFAR-10 JPEGs, ...);
    "class_tree": one ``root/<class>/<image>`` tree (Caltech-101), split per class with
    ``random_state``, ``split_train`` training images per class (a count or a fraction),
    the rest to test; "lists": ``root/train.txt`` and ``root/test.txt``
    (:mod:`terafeat.datasets.splits`); "cifar10" / "cifar100": the publisher's
    binary or python files; "imagenette", "tiny-imagenet", "ilsvrc": their layouts.
    ``attrs``: classes, class_names (label order), problems [(path, problem)] of
    files that do not fit the layout (skipped unless ``strict``), reader (CIFAR).
    """
    check_choice("dataset", dataset, IMAGE_SETS)
    if dataset in ("cifar10", "cifar100"):
        return cifar_listing(root, dataset)
    if dataset == "folders":
        frame = read_image_folders(root, splits=("train", "val", "test"), strict=strict)
    elif dataset == "class_tree":
        frame = read_class_tree(root, split_train, random_state, strict=strict)
    elif dataset == "lists":
        frame = read_list_files(root)
    else:
        reader = {"imagenette": read_imagenette, "tiny-imagenet": read_tiny_imagenet,
                  "ilsvrc": read_ilsvrc}[dataset]
        frame = reader(root, strict=strict)
    attrs = dict(frame.attrs)
    if "classes" not in attrs:  # the ImageNet readers name classes by wnid
        order = frame.drop_duplicates("label").sort_values("label")
        attrs["classes"] = list(order.get("wnid", order["class_name"]))
        attrs["class_names"] = list(order["class_name"])
    frame = frame.assign(record=-1)[COLUMNS]
    frame.attrs.update(attrs)
    return frame


@lru_cache(maxsize=2)
def _batch_images(path: str, n_classes: int, label_bytes: int, label_key: bytes) -> np.ndarray:
    return read_cifar_batch(path, n_classes, label_bytes, label_key)[0]


def read_listed_images(rows: pd.DataFrame, size: int, reader: dict | None = None,
                       adaptations: ImageAdaptations | None = None
                       ) -> tuple[np.ndarray, np.ndarray, list[tuple[str, str]]]:
    """Decode the images of listing ``rows`` as RGB, resized to size x size.

    Returns (images (n_kept, size, size, 3) float32 in [0, 1], kept (n_kept,)
    positions in ``rows``, problems [(path, problem)] of the files skipped
    (missing, corrupt, not an image).  reader: the listing's ``attrs["reader"]``,
    needed for rows inside batch files (``TILE_READER``: the rows are histology tiles,
    :func:`~terafeat.datasets.tile_listing.read_listed_tiles`).  Rows whose ``mirror`` column is True are
    flipped left to right, then rows with ``shift_y`` / ``shift_x`` are translated.
    adaptations: notes what reading did to each image of a row whose ``original``
    column is True (every row where there is no such column).
    """
    if reader == TILE_READER:
        return read_listed_tiles(rows, size, adaptations)
    records = rows["record"].to_numpy()
    paths = rows["path"].to_numpy()
    original = (rows["original"].to_numpy(bool) if "original" in rows
                else np.ones(len(rows), bool))
    out = np.empty((len(rows), size, size, 3), np.float32)
    good = np.zeros(len(rows), bool)
    problems = []
    in_files = np.flatnonzero(records < 0)
    for group, notes in ((in_files[original[in_files]], adaptations),
                         (in_files[~original[in_files]], None)):
        if len(group):
            images, kept, group_problems = read_images(paths[group], (size, size), crop=True,
                                                       adaptations=notes)
            out[group[kept]] = images
            good[group[kept]] = True
            problems += group_problems
    in_batches = np.flatnonzero(records >= 0)
    if len(in_batches):
        if reader is None:
            raise ValueError("rows inside batch files need the listing's reader options")
        for path in pd.unique(paths[in_batches]):
            positions = in_batches[paths[in_batches] == path]
            batch = _batch_images(path, **reader)[records[positions]]
            if adaptations is not None:
                for _ in range(int(original[positions].sum())):
                    adaptations.note(batch.shape[2:0:-1], "RGB", (size, size), crop=True)
            if batch.shape[1] != size:
                batch = np.stack([cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
                                  for image in batch])
            out[positions] = batch / np.float32(255)
            good[positions] = True
    if "mirror" in rows:
        mirrored = rows["mirror"].to_numpy(bool)
        out[mirrored] = out[mirrored, :, ::-1]
    if "shift_y" in rows:
        out = shift_images(out, rows["shift_y"].to_numpy(int), rows["shift_x"].to_numpy(int))
    kept = np.flatnonzero(good)
    return out[kept], kept, problems


def shift_images(images: np.ndarray, shift_y: np.ndarray, shift_x: np.ndarray) -> np.ndarray:
    """images (n, h, w, c) translated by (shift_y[i], shift_x[i]) pixels (positive: down /
    right), the uncovered border replicating the nearest edge pixel; same shape."""
    margin = int(max(np.abs(shift_y).max(initial=0), np.abs(shift_x).max(initial=0)))
    if margin == 0:
        return images
    h, w = images.shape[1:3]
    padded = np.pad(images, ((0, 0), (margin, margin), (margin, margin), (0, 0)), mode="edge")
    out = images.copy()
    for dy, dx in set(zip(shift_y.tolist(), shift_x.tolist())) - {(0, 0)}:
        rows = (shift_y == dy) & (shift_x == dx)
        out[rows] = padded[rows, margin - dy:margin - dy + h, margin - dx:margin - dx + w]
    return out


def evaluation_split(frame: pd.DataFrame) -> str:
    """The labelled split to score on: "test" when the listing has one, else "val"."""
    splits = set(frame["split"])
    for name in ("test", "val"):
        if name in splits:
            return name
    raise ValueError(f"the listing has no test or val split (splits: {sorted(splits)})")


def prepare_listing(frame: pd.DataFrame, max_train_per_class: int | None = None,
                    max_test_per_class: int | None = None, train_repeat: int = 1,
                    random_state: int = 0, mirror_train: bool = False,
                    mirror_test: bool = False, shift_train: int = 0,
                    max_shift: int = 2) -> pd.DataFrame:
    """Training rows (seeded subset per class, listed ``train_repeat`` times, each time
    also mirrored when ``mirror_train`` and listed ``shift_train`` more times shifted; shuffled
    so every shard mixes the classes), then the evaluation split's rows in listing order
    (with ``mirror_test``, each followed by its mirrored copy: test-time augmentation, scores
    averaged per image).

    A shifted copy is translated by a seeded random offset of -max_shift..max_shift pixels
    along each axis (never both 0) and, with ``mirror_train``, mirrored with probability 1/2.
    Column ``split`` becomes "train" / "test"; column ``mirror`` (bool) is True on the
    mirrored copies, ``shift_y``, ``shift_x`` (int) are the offsets, ``original`` (bool)
    is True on one unmirrored, unshifted row of each distinct image.  attrs are kept.
    """
    if train_repeat < 1:
        raise ValueError(f"train_repeat must be >= 1, got {train_repeat}")
    if shift_train and max_shift < 1:
        raise ValueError(f"shifted copies need max_shift >= 1, got {max_shift}")
    rng = np.random.default_rng(random_state)
    test_split = evaluation_split(frame)

    def limited(rows: pd.DataFrame, limit: int | None) -> pd.DataFrame:
        if limit is None:
            return rows
        chosen = [np.sort(rng.permutation(positions)[:limit])
                  for positions in rows.groupby("label").indices.values()]
        return rows.iloc[np.sort(np.concatenate(chosen))]

    train = limited(frame[frame["split"] == "train"], max_train_per_class)
    if train.empty:
        raise ValueError("the listing has no training images")
    def mirrored(rows: pd.DataFrame, also: bool) -> pd.DataFrame:
        """The rows, then (with ``also``) their mirrored copies, one index per image."""
        return pd.concat([rows.assign(mirror=mirror, shift_y=0, shift_x=0)
                          for mirror in [False, True][:1 + also]])

    def shifted(rows: pd.DataFrame) -> pd.DataFrame:
        """A copy of the rows, each shifted by a random nonzero offset."""
        side = 2 * max_shift + 1
        offsets = rng.choice(side * side - 1, len(rows))  # all offsets but (0, 0)
        offsets += offsets >= side * side // 2
        return rows.assign(mirror=mirror_train & (rng.random(len(rows)) < 0.5),
                           shift_y=offsets // side - max_shift, shift_x=offsets % side - max_shift)

    train = pd.concat([mirrored(train, mirror_train)] * train_repeat
                      + [shifted(train) for _ in range(shift_train * train_repeat)])
    train = train.iloc[rng.permutation(len(train))].assign(split="train")
    test = limited(frame[frame["split"] == test_split], max_test_per_class).assign(split="test")
    test = mirrored(test, mirror_test).sort_index(kind="stable")
    prepared = pd.concat([train, test], ignore_index=True)
    original = ~(prepared["mirror"] | (prepared["shift_y"] != 0) | (prepared["shift_x"] != 0))
    original[original] = ~prepared[original].duplicated(["path", "record"])
    prepared["original"] = original
    prepared.attrs.update(frame.attrs)
    return prepared
