"""Generic ``<class>/<video>`` and ``<class>/<image>`` folders, and what the readers share.

Readers collect the files that do not fit their layout as ``(path, problem)``
pairs: ``strict=True`` raises LayoutError listing them; ``strict=False``
warns, leaves them out, and keeps the list in ``frame.attrs["problems"]``.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from terafeat.media.images import IMAGE_EXTENSIONS
from terafeat.validation import check_random_state

VIDEO_EXTENSIONS = frozenset({".avi", ".mp4", ".m4v", ".mkv", ".mov", ".webm",
                              ".mpg", ".mpeg", ".wmv", ".ogv", ".flv"})
IMAGE_COLUMNS = ["path", "label", "class_name", "split"]
_SHOWN_PROBLEMS = 10


class LayoutError(ValueError):
    """Files under ``root`` that do not fit a data set's layout; ``problems`` lists them."""

    def __init__(self, root, problems: list[tuple[str, str]]):
        self.root = str(root)
        self.problems = list(problems)
        lines = [f"  {path}: {problem}" for path, problem in self.problems[:_SHOWN_PROBLEMS]]
        if len(self.problems) > _SHOWN_PROBLEMS:
            lines.append(f"  ... and {len(self.problems) - _SHOWN_PROBLEMS} more")
        super().__init__(f"{self.root}: {len(self.problems)} file(s) do not fit the layout:\n"
                         + "\n".join(lines))

    def __reduce__(self):
        return type(self), (self.root, self.problems)


def check_folder(root) -> Path:
    """``root`` as a Path; FileNotFoundError / NotADirectoryError naming it otherwise."""
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"{root}: data set folder not found")
    if not root.is_dir():
        raise NotADirectoryError(f"{root}: not a folder")
    return root


def list_videos(root, recursive: bool = False, extensions=VIDEO_EXTENSIONS) -> list[Path]:
    """Video files in ``root`` (and below if ``recursive``), sorted; hidden names skipped.

    A file counts as a video by its suffix, compared case-insensitively.
    """
    root = check_folder(root)
    candidates = root.rglob("*") if recursive else root.iterdir()
    return sorted(path for path in candidates
                  if path.suffix.lower() in extensions and path.is_file()
                  and not any(part.startswith(".") for part in path.relative_to(root).parts))


def layout_frame(rows: list[dict], columns: list[str], root, problems: list[tuple[str, str]],
                 strict: bool, kind: str = "video") -> pd.DataFrame:
    """The readers' common ending: a DataFrame of ``rows``, problems raised or recorded.

    Raises LayoutError if ``strict`` and there are problems, ValueError if
    there are neither rows nor problems (no ``kind`` file in ``root`` at all).
    """
    if not rows and not problems:
        raise ValueError(f"{root}: no {kind} files found")
    if problems:
        error = LayoutError(root, problems)
        if strict:
            raise error
        warnings.warn(f"skipping: {error}", stacklevel=3)
    frame = pd.DataFrame(rows, columns=columns)
    frame.attrs["problems"] = list(problems)
    return frame


def read_class_folders(root, split: str = "all", extensions=VIDEO_EXTENSIONS,
                       strict: bool = True) -> pd.DataFrame:
    """Videos in a ``root/<class>/<video>`` layout.

    Returns a DataFrame with columns path (str), label (the folder name) and
    split (the given ``split`` for every row: read ``train/`` and ``test/``
    folders with one call each). Videos directly in ``root`` or deeper than
    one folder are problems (see the module docstring).
    """
    root = check_folder(root)
    rows, problems = [], []
    for path in list_videos(root, recursive=True, extensions=extensions):
        parts = path.relative_to(root).parts
        if len(parts) != 2:
            problems.append((str(path), "not in a <class>/<video> position"))
            continue
        rows.append({"path": str(path), "label": parts[0], "split": split})
    return layout_frame(rows, ["path", "label", "split"], root, problems, strict)


def class_folders(root) -> list[str]:
    """Names of the folders in ``root``, sorted, hidden ones left out: a layout's classes."""
    return sorted(path.name for path in check_folder(root).iterdir()
                  if path.is_dir() and not path.name.startswith("."))


def image_folder_rows(folder, split: str, classes: list[str], class_names=None
                      ) -> tuple[list[dict], list[tuple[str, str]]]:
    """Rows (IMAGE_COLUMNS) and problems for the images in ``folder/<class>/<image>``.

    classes: folder names in label order (label = position). class_names:
    folder -> readable name, default the folder name. Images directly in
    ``folder``, deeper, or in a folder not in ``classes`` are problems.
    """
    label_of = {name: label for label, name in enumerate(classes)}
    class_names = class_names or {}
    rows, problems = [], []
    for path in list_videos(folder, recursive=True, extensions=IMAGE_EXTENSIONS):
        parts = path.relative_to(folder).parts
        if len(parts) != 2:
            problems.append((str(path), "not in a <class>/<image> position"))
        elif parts[0] not in label_of:
            problems.append((str(path), f"folder {parts[0]!r} is not one of the "
                                        f"{len(classes)} classes"))
        else:
            rows.append({"path": str(path), "label": label_of[parts[0]],
                         "class_name": class_names.get(parts[0], parts[0]), "split": split})
    return rows, problems


def read_image_folders(root, splits=None, classes=None, class_names=None,
                       strict: bool = True) -> pd.DataFrame:
    """Images in ``root/<class>/<image>``, or ``root/<split>/<class>/<image>`` per split.

    splits: None when ``root`` holds the class folders (split "all"), else
    the split folder names to read, e.g. ("train", "test"): those present are
    read, anything else under ``root`` is ignored. classes: class folder
    names in label order, default the sorted union of the class folders
    found (pass ``frame.attrs["classes"]`` to number another set alike).
    class_names: folder -> readable name. Returns a DataFrame with columns
    path, label (int), class_name, split; ``attrs["classes"]`` and
    ``attrs["class_names"]`` list the folders and names in label order.
    Problems as in :func:`image_folder_rows`, handled as the module docstring says.
    """
    root = check_folder(root)
    folders = ({"all": root} if splits is None
               else {split: root / split for split in splits if (root / split).is_dir()})
    if not folders:
        raise FileNotFoundError(f"{root}: none of the split folders {list(splits)} found")
    if classes is None:
        classes = sorted(set().union(*map(class_folders, folders.values())))
    rows, problems = [], []
    for split, folder in folders.items():
        split_rows, split_problems = image_folder_rows(folder, split, classes, class_names)
        rows += split_rows
        problems += split_problems
    frame = layout_frame(rows, IMAGE_COLUMNS, root, problems, strict, kind="image")
    frame.attrs["classes"] = list(classes)
    frame.attrs["class_names"] = [(class_names or {}).get(name, name) for name in classes]
    return frame


def group_folds(groups, n_folds: int | None = None,
                random_state=0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Cross-validation folds that keep every group on one side.

    groups: (n_items,) group of each item (a person, a KTH actor, a UCF group
    with its mirrored copies). n_folds: None for leave-one-group-out, one fold
    per group in sorted order; otherwise the groups are shuffled with
    ``random_state`` and dealt into ``n_folds`` folds of near-equal group count.
    Returns a list of (train_index, test_index) pairs of int arrays.
    """
    groups = np.asarray(groups)
    unique = np.unique(groups)
    if len(unique) < 2:
        raise ValueError(f"need at least 2 groups for cross-validation, got {len(unique)}")
    if n_folds is None:
        held_out = [unique[i:i + 1] for i in range(len(unique))]
    elif 2 <= n_folds <= len(unique):
        held_out = np.array_split(check_random_state(random_state).permutation(unique), n_folds)
    else:
        raise ValueError(f"n_folds must be between 2 and the {len(unique)} groups, got {n_folds}")
    masks = [np.isin(groups, fold_groups) for fold_groups in held_out]
    return [(np.flatnonzero(~mask), np.flatnonzero(mask)) for mask in masks]
