"""UCF101-style class folders: ``<Class>/v_<Class>_gGG_cCC.avi``.

UCF101 (Soomro, Zamir & Shah 2012) splits each class into groups of clips
cut from one long video (``gGG``, 25 groups); the official splits hold out
whole groups (``ucfTrainTestlist/trainlist0N.txt`` / ``testlist0N.txt``,
N = 1..3). Our Weizmann set uses the same names, where ``c02`` is ``c01``
mirrored: keep each group on one side (:func:`~terafeat.datasets.folders.group_folds`).
"""
from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

import pandas as pd

from terafeat.datasets.folders import check_folder, layout_frame, list_videos

SPLIT_FOLDER = "ucfTrainTestlist"
_NAME = re.compile(r"v_(?P<label>.+)_g(?P<group>\d+)_c(?P<clip_number>\d+)")
COLUMNS = ["path", "label", "group", "clip_number", "split"]


def parse_ucf_name(name: str) -> dict:
    """label, group and clip_number (ints) of a ``v_<Class>_gGG_cCC.<ext>`` file name.

    Raises ValueError naming the file if it does not fit.
    """
    match = _NAME.fullmatch(Path(name).name.split(".")[0])
    if match is None:
        raise ValueError(f"{name}: not a UCF101-style name (v_<Class>_gGG_cCC.avi)")
    return {"label": match["label"], "group": int(match["group"]),
            "clip_number": int(match["clip_number"])}


def find_split_folder(root) -> Path | None:
    """``ucfTrainTestlist/`` inside ``root`` or beside it, if there is one."""
    root = Path(root)
    for folder in (root / SPLIT_FOLDER, root.parent / SPLIT_FOLDER):
        if folder.is_dir():
            return folder
    return None


def read_split_lists(split_folder, split_number: int = 1) -> dict[str, str]:
    """Official split ``split_number``: lower-cased file name -> "train" or "test".

    Reads ``trainlist0<N>.txt`` (lines ``Class/v_..._cCC.avi <class index>``)
    and ``testlist0<N>.txt`` (lines ``Class/v_..._cCC.avi``). Raises
    FileNotFoundError naming a missing list, ValueError naming a clip listed twice.
    """
    split_of = {}
    for split in ("train", "test"):
        path = Path(split_folder) / f"{split}list{split_number:02d}.txt"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: split list not found")
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            name = PurePosixPath(line.split()[0]).name.lower()
            if name in split_of:
                raise ValueError(f"{path}:{number}: {name} is listed twice")
            split_of[name] = split
    return split_of


def read_ucf_folders(root, split_folder=None, split_number: int = 1,
                     strict: bool = True) -> pd.DataFrame:
    """Videos in a ``root/<Class>/v_<Class>_gGG_cCC.<ext>`` layout, one row per clip.

    Returns a DataFrame with columns path (str), label (the folder name),
    group and clip_number (ints ``GG`` and ``CC``; all clips of a group
    number, across classes, form one group) and split: "train" or "test"
    from the official lists of ``split_number`` when ``split_folder`` is
    given or found by :func:`find_split_folder`, else "all" (then use
    :func:`~terafeat.datasets.folders.group_folds`). Problems (names that do
    not parse, a name whose class differs from its folder's, clips missing
    from the lists or listed but absent) are raised as LayoutError when
    ``strict``, else warned about, left out and listed in ``frame.attrs["problems"]``.
    """
    root = check_folder(root)
    split_folder = split_folder if split_folder is not None else find_split_folder(root)
    split_of = read_split_lists(split_folder, split_number) if split_folder is not None else None
    rows, problems = [], []
    for path in list_videos(root, recursive=True):
        parts = path.relative_to(root).parts
        try:
            fields = parse_ucf_name(path.name)
        except ValueError as error:
            problems.append((str(path), str(error)))
            continue
        split = "all" if split_of is None else split_of.pop(path.name.lower(), None)
        # Case-blind: UCF101's HandstandPushups/ holds v_HandStandPushups_* files.
        if len(parts) != 2 or parts[0].lower() != fields["label"].lower():
            problems.append((str(path), f"class {fields['label']!r} is not its folder's name"))
            continue
        if split is None:
            problems.append((str(path), f"in neither list of split {split_number} "
                                        f"in {split_folder}"))
            continue
        rows.append({"path": str(path), **fields, "label": parts[0], "split": split})
    if split_of:
        problems += [(str(split_folder), f"lists {name}, which is not under {root}")
                     for name in sorted(split_of)]
    return layout_frame(rows, COLUMNS, root, problems, strict)
