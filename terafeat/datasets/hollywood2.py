"""Hollywood2 actions (Marszałek, Laptev & Schmid, CVPR 2009): multi-label clips.

Layout: ``AVIClips/<clip>.avi`` and ``ClipSets/<Action>_<split>.txt``, one
line ``<clip> <1|-1>`` per clip of the split, 1 where the clip shows the
action (a clip can show several). Splits: ``train`` (823 clean clips),
``test`` (884), ``autotrain`` (810 with noisy, script-derived labels).
Results are reported as mean average precision over the 12 actions.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from terafeat.datasets.folders import check_folder, layout_frame

HOLLYWOOD2_ACTIONS = ("AnswerPhone", "DriveCar", "Eat", "FightPerson", "GetOutCar", "HandShake",
                      "HugPerson", "Kiss", "Run", "SitDown", "SitUp", "StandUp")
COLUMNS = ["path", "clip_name", "split", "labels"]


def read_clip_set(path) -> dict[str, bool]:
    """One ClipSets file: clip name -> whether it shows the action.

    Raises FileNotFoundError naming a missing file, ValueError naming the
    file and line of a line that is not ``<clip> <1|-1>`` or repeats a clip.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: clip set not found")
    positive = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[1] not in ("1", "-1"):
            raise ValueError(f"{path}:{number}: expected '<clip> <1|-1>', got {line!r}")
        if fields[0] in positive:
            raise ValueError(f"{path}:{number}: clip {fields[0]} is listed twice")
        positive[fields[0]] = fields[1] == "1"
    return positive


def read_hollywood2(root, classes: Sequence[str] = HOLLYWOOD2_ACTIONS,
                    splits: Sequence[str] = ("train", "test"), strict: bool = True
                    ) -> pd.DataFrame:
    """Hollywood2 clips of ``splits``, labelled with ``classes``, one row per clip.

    Returns a DataFrame with columns path (str, ``AVIClips/<clip>.avi``),
    clip_name, split and labels (a tuple of the classes it shows, in
    ``classes`` order; may be empty). :func:`label_matrix` turns the labels
    into a 0/1 matrix. Both folders and every ``ClipSets/<class>_<split>.txt``
    must exist (FileNotFoundError naming the missing one).
    Problems (a clip missing from AVIClips, listed in two splits, or missing
    from some class's list of its split) are raised as LayoutError when
    ``strict``, else warned about, left out and listed in ``frame.attrs["problems"]``.
    """
    root = check_folder(root)
    clip_dir, set_dir = check_folder(root / "AVIClips"), check_folder(root / "ClipSets")
    rows, problems = [], []
    split_of: dict[str, str] = {}
    for split in splits:
        sets = {name: read_clip_set(set_dir / f"{name}_{split}.txt") for name in classes}
        clips = sorted(set().union(*(clip_set.keys() for clip_set in sets.values())))
        for clip in clips:
            path = clip_dir / f"{clip}.avi"
            missing = [name for name, clip_set in sets.items() if clip not in clip_set]
            if clip in split_of:
                problems.append((str(path), f"in both the {split_of[clip]} and {split} sets"))
            elif missing:
                problems.append((str(path), f"absent from {', '.join(missing)} of the {split} set"))
            elif not path.is_file():
                problems.append((str(path), "listed in ClipSets but not found"))
            else:
                labels = tuple(name for name, clip_set in sets.items() if clip_set[clip])
                rows.append({"path": str(path), "clip_name": clip, "split": split,
                             "labels": labels})
            split_of.setdefault(clip, split)
    return layout_frame(rows, COLUMNS, root, problems, strict)


def label_matrix(labels: Iterable[Sequence[str]], classes: Sequence[str] = HOLLYWOOD2_ACTIONS
                 ) -> np.ndarray:
    """(n_clips, n_classes) int8 matrix: 1 where clip i shows ``classes[j]``.

    labels: the ``labels`` column of :func:`read_hollywood2` (one sequence of
    class names per clip). Raises ValueError for a label not in ``classes``.
    """
    column = {name: j for j, name in enumerate(classes)}
    labels = list(labels)
    matrix = np.zeros((len(labels), len(classes)), dtype=np.int8)
    for i, clip_labels in enumerate(labels):
        for name in clip_labels:
            if name not in column:
                raise ValueError(f"clip {i}: label {name!r} is not one of {list(classes)}")
            matrix[i, column[name]] = 1
    return matrix
