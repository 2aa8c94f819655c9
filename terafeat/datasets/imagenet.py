"""The ImageNet family (issue #6): ILSVRC-2012, Tiny ImageNet, Imagenette.

Classes are WordNet ids (wnids, ``n01440764``), numbered in sorted order
(label 0 is the smallest wnid, as in torchvision's ImageFolder); the class
name is the first synonym of the wnid's WordNet entry ("tench"; not always
unique: ILSVRC has two "crane"s, so use the label or wnid as the key). Readers
return DataFrames with columns path, label (int), wnid, class_name and split;
problems are handled as in :mod:`terafeat.datasets.folders`. Unlabelled
test images are not read. Other class-folder sets (Caltech-101, our CIFAR-10
JPEGs) need no module: use :func:`~terafeat.datasets.folders.read_image_folders`.
"""
from __future__ import annotations

import csv
import re
from pathlib import Path

import pandas as pd

from terafeat.datasets.folders import (
    check_folder,
    class_folders,
    image_folder_rows,
    layout_frame,
    list_videos,
    read_image_folders,
)
from terafeat.media.images import IMAGE_EXTENSIONS

COLUMNS = ["path", "label", "wnid", "class_name", "split"]
SYNSET_FILE = "LOC_synset_mapping.txt"
VAL_SOLUTION_FILE = "LOC_val_solution.csv"
_WNID = re.compile(r"n\d{8}")

#: The ten Imagenette classes (they ship without a names file).
IMAGENETTE_CLASSES = {
    "n01440764": "tench", "n02102040": "English springer", "n02979186": "cassette player",
    "n03000684": "chain saw", "n03028079": "church", "n03394916": "French horn",
    "n03417042": "garbage truck", "n03425413": "gas pump", "n03445777": "golf ball",
    "n03888257": "parachute",
}


def read_synsets(path) -> dict[str, str]:
    """wnid -> class name (first synonym) from ``words.txt`` or ``LOC_synset_mapping.txt``.

    Lines are ``<wnid><tab or space><synonym>, <synonym>, ...``. Raises
    ValueError naming the file and line of one that does not start with a wnid.
    """
    names = {}
    with open(path, encoding="utf-8") as file:
        for number, line in enumerate(file, start=1):
            if not line.strip():
                continue
            wnid, _, synonyms = line.strip().partition("\t" if "\t" in line else " ")
            if not _WNID.fullmatch(wnid):
                raise ValueError(f"{path}:{number}: {wnid!r} is not a WordNet id (nNNNNNNNN)")
            names[wnid] = synonyms.split(",")[0].strip()
    return names


def read_val_solution(path) -> dict[str, str]:
    """ImageId -> wnid from ILSVRC's ``LOC_val_solution.csv``.

    Columns ImageId and PredictionString, whose first token is the wnid
    (the rest are boxes). Raises ValueError naming the file and the problem.
    """
    with open(path, newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        if not {"ImageId", "PredictionString"} <= set(reader.fieldnames or ()):
            raise ValueError(f"{path}: expected columns ImageId, PredictionString, "
                             f"got {reader.fieldnames}")
        wnid_of = {}
        for row in reader:
            tokens = row["PredictionString"].split()
            if not tokens or not _WNID.fullmatch(tokens[0]):
                raise ValueError(f"{path}:{reader.line_num}: no wnid at the start of "
                                 f"{row['PredictionString']!r}")
            wnid_of[row["ImageId"]] = tokens[0]
    return wnid_of


def read_val_annotations(path) -> dict[str, str]:
    """File stem -> wnid from Tiny ImageNet's ``val_annotations.txt``.

    Tab-separated lines ``<file>\t<wnid>\t<x0>\t<y0>\t<x1>\t<y1>``; raises
    ValueError naming the file and line of one without a wnid second.
    """
    wnid_of = {}
    with open(path, encoding="utf-8") as file:
        for number, line in enumerate(file, start=1):
            fields = line.rstrip("\n").split("\t")
            if not line.strip():
                continue
            if len(fields) < 2 or not _WNID.fullmatch(fields[1]):
                raise ValueError(f"{path}:{number}: expected <file>\\t<wnid>\\t<box>, "
                                 f"got {line.strip()!r}")
            wnid_of[Path(fields[0]).stem] = fields[1]
    return wnid_of


def find_nearby(root, name: str, levels: int = 3) -> Path | None:
    """File ``name`` in ``root`` or one of its ``levels`` parents (Kaggle puts the
    ILSVRC lists three levels above ``ILSVRC/Data/CLS-LOC``), if there is one."""
    root = Path(root).resolve()
    for folder in [root, *root.parents][:levels + 1]:
        if (folder / name).is_file():
            return folder / name
    return None


def _listed_rows(folder, split: str, wnid_of: dict[str, str], classes: list[str],
                 names: dict[str, str], list_file) -> tuple[list[dict], list[tuple[str, str]]]:
    """Rows and problems for the images directly in ``folder``, labelled by ``wnid_of``
    (file stem -> wnid, read from ``list_file``); images missing from the list,
    listed but absent, or of a wnid not in ``classes`` are problems."""
    label_of = {wnid: label for label, wnid in enumerate(classes)}
    rows, problems, seen = [], [], set()
    for path in list_videos(folder, recursive=True, extensions=IMAGE_EXTENSIONS):
        wnid = wnid_of.get(path.stem)
        seen.add(path.stem)
        if path.parent != Path(folder):
            problems.append((str(path), f"not directly in {folder}"))
        elif wnid is None:
            problems.append((str(path), f"not listed in {list_file}"))
        elif wnid not in label_of:
            problems.append((str(path), f"{wnid} (from {list_file}) is not one of the "
                                        f"{len(classes)} classes"))
        else:
            rows.append({"path": str(path), "label": label_of[wnid], "wnid": wnid,
                         "class_name": names.get(wnid, wnid), "split": split})
    problems += [(str(Path(folder) / stem), f"listed in {list_file} but absent")
                 for stem in sorted(set(wnid_of) - seen)]
    return rows, problems


def _with_wnids(rows: list[dict], classes: list[str]) -> list[dict]:
    """Rows of :func:`image_folder_rows` (wnid folders), with their wnid added."""
    return [{**row, "wnid": classes[row["label"]]} for row in rows]


def read_ilsvrc(root, synsets=None, val_solution=None, strict: bool = True) -> pd.DataFrame:
    """ILSVRC-2012 classification: ``root/train/<wnid>/*.JPEG`` and ``root/val/``.

    The validation images are either in wnid folders or flat (``val/*.JPEG``)
    and labelled by ``val_solution`` (LOC_val_solution.csv). synsets
    (LOC_synset_mapping.txt) gives the classes and names; without it the
    classes are the train folders and named by their wnid. Both files
    are looked for in ``root`` and up to 3 folders above it when not given.
    """
    root = check_folder(root)
    synsets = synsets or find_nearby(root, SYNSET_FILE)
    names = read_synsets(synsets) if synsets else {}
    if names:
        classes = sorted(names)
    elif (root / "train").is_dir():
        classes = class_folders(root / "train")
    else:
        raise FileNotFoundError(f"{root}: neither train/ nor {SYNSET_FILE} found, "
                                "which give the classes")
    rows, problems = [], []
    for split in ("train", "val"):
        folder = root / split
        if not folder.is_dir():
            continue
        if split == "val" and not class_folders(folder):
            val_solution = val_solution or find_nearby(root, VAL_SOLUTION_FILE)
            if val_solution is None:
                raise FileNotFoundError(f"{folder}: flat validation images need "
                                        f"{VAL_SOLUTION_FILE} for their labels; not found")
            split_rows, split_problems = _listed_rows(folder, split,
                                                      read_val_solution(val_solution),
                                                      classes, names, val_solution)
        else:
            split_rows, split_problems = image_folder_rows(folder, split, classes, names)
            split_rows = _with_wnids(split_rows, classes)
        rows += split_rows
        problems += split_problems
    return layout_frame(rows, COLUMNS, root, problems, strict, kind="image")


def read_tiny_imagenet(root, strict: bool = True) -> pd.DataFrame:
    """Tiny ImageNet (200 classes, 64x64): ``root/train/<wnid>/images/*.JPEG`` and
    ``root/val/images/*.JPEG`` labelled by ``val/val_annotations.txt``.

    The classes are those of ``wnids.txt``, named from ``words.txt``.
    """
    root = check_folder(root)
    wnids_file = root / "wnids.txt"
    if not wnids_file.is_file():
        raise FileNotFoundError(f"{wnids_file}: Tiny ImageNet class list not found")
    classes = sorted(wnids_file.read_text().split())
    names = read_synsets(root / "words.txt") if (root / "words.txt").is_file() else {}
    label_of = {wnid: label for label, wnid in enumerate(classes)}
    rows, problems = [], []
    for path in list_videos(check_folder(root / "train"), recursive=True,
                            extensions=IMAGE_EXTENSIONS):
        parts = path.relative_to(root / "train").parts
        if len(parts) != 3 or parts[1] != "images":
            problems.append((str(path), "not in a train/<wnid>/images/<image> position"))
        elif parts[0] not in label_of:
            problems.append((str(path), f"{parts[0]} is not in {wnids_file}"))
        else:
            rows.append({"path": str(path), "label": label_of[parts[0]], "wnid": parts[0],
                         "class_name": names.get(parts[0], parts[0]), "split": "train"})
    annotations = root / "val" / "val_annotations.txt"
    if annotations.is_file():
        val_rows, val_problems = _listed_rows(root / "val" / "images", "val",
                                              read_val_annotations(annotations),
                                              classes, names, annotations)
        rows += val_rows
        problems += val_problems
    return layout_frame(rows, COLUMNS, root, problems, strict, kind="image")


def read_imagenette(root, strict: bool = True) -> pd.DataFrame:
    """Imagenette / Imagewoof style: ``root/{train,val}/<wnid>/*.JPEG``.

    Classes are the wnid folders found; names from IMAGENETTE_CLASSES
    where known, else the wnid.
    """
    frame = read_image_folders(root, splits=("train", "val"), class_names=IMAGENETTE_CLASSES,
                               strict=strict)
    frame.insert(2, "wnid", [frame.attrs["classes"][label] for label in frame["label"]])
    return frame
