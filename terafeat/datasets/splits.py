"""Train / test splits of labelled image files: a seeded, stratified split of one
class-folder tree, and train / test list files.

A class-folder tree is ``root/<class>/<image>`` (Caltech-101's layout); its split takes,
in every class, a count of training images (Caltech's convention: 30) or a fraction,
the rest being test images.

List files are ``root/train.txt`` and ``root/test.txt``: one image per line, its path
relative to ``root`` with ``/`` between folders; its class is the path's first folder
(``accordion/image_0001.jpg`` is of class ``accordion``). Blank lines and lines starting
with ``#`` are skipped. :func:`write_list_files` writes this format, so a split made
here can be read back as list files.
"""
from __future__ import annotations

from pathlib import Path, PurePosixPath

import numpy as np
import pandas as pd

from terafeat.atomic_files import save_text
from terafeat.datasets.folders import IMAGE_COLUMNS, check_folder, read_image_folders
from terafeat.validation import check_random_state

LIST_FILES = {"train": "train.txt", "test": "test.txt"}


def check_train_share(train: float, name: str = "split_train") -> None:
    """ValueError naming ``name`` unless ``train`` is a whole count >= 1 or a fraction in (0, 1)."""
    if not (0 < train < 1 or (train >= 1 and float(train).is_integer())):
        raise ValueError(f"{name} must be a count of training images per class (a whole "
                         f"number >= 1) or a fraction in (0, 1), got {train!r}")


def split_per_class(labels, train: float, random_state=None, class_names=None,
                    name: str = "split_train") -> np.ndarray:
    """"train" / "test" for each item (n,), stratified by ``labels`` and seeded.

    train: training items per class, a count (e.g. 30) or a fraction in (0, 1) (then
    round((1 - train) * n) of a class's n items go to test). Each class is permuted with
    ``random_state``; its first items go to test, the others to train. ValueError naming
    ``name`` and the class (``class_names[label]``, default the label) when a class has
    too few items: a count needs at least count + 1, a fraction at least one training item.
    """
    check_train_share(train, name)
    labels = np.asarray(labels)
    classes, sizes = np.unique(labels, return_counts=True)
    n_train = (np.full(len(sizes), int(train)) if train >= 1
               else sizes - np.round((1 - train) * sizes).astype(int))
    short = (n_train >= sizes) if train >= 1 else (n_train < 1)
    if short.any():
        shown = [f"{(class_names[c] if class_names is not None else c)!r} has {n}"
                 for c, n in zip(classes[short], sizes[short])]
        need = (f"at least {int(train) + 1} images per class (the training images and one "
                "to test)" if train >= 1 else "one training image per class")
        raise ValueError(f"{name}={train:g} needs {need}: {', '.join(shown)}")
    rng = check_random_state(random_state)
    split = np.full(len(labels), "test", dtype=object)
    for label, n, k in zip(classes, sizes, n_train):
        members = rng.permutation(np.flatnonzero(labels == label))
        split[members[n - k:]] = "train"
    return split


def read_class_tree(root, train: float, random_state=None, class_names=None,
                    strict: bool = False) -> pd.DataFrame:
    """Images of one ``root/<class>/<image>`` tree, split by :func:`split_per_class`.

    Columns and attrs as :func:`~terafeat.datasets.folders.read_image_folders` returns
    them, split "train" / "test". ValueError naming ``root`` when it holds fewer than
    two class folders with images.
    """
    root = check_folder(root)
    frame = read_image_folders(root, class_names=class_names, strict=strict)
    found = sorted(set(frame["class_name"]))
    if len(found) < 2:
        raise ValueError(f"{root}: a class-folder tree needs at least 2 class folders "
                         f"(<class>/<image>) with images, found {len(found)}")
    frame["split"] = split_per_class(frame["label"].to_numpy(), train, random_state,
                                     frame.attrs["class_names"])
    return frame


def _listed_paths(list_path: Path, root: Path) -> list[PurePosixPath]:
    """The relative image paths of one list file, checked: FileNotFoundError naming the
    list file, its line and the first missing image; ValueError for a path with no class
    folder or leaving ``root``."""
    if not list_path.is_file():
        raise FileNotFoundError(f"{list_path}: list file not found")
    entries, missing = [], []
    for number, line in enumerate(list_path.read_text().splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        path = PurePosixPath(text)
        if path.is_absolute() or ".." in path.parts or len(path.parts) < 2:
            raise ValueError(f"{list_path}:{number}: {text!r} is not a relative "
                             "<class>/<image> path inside the data set's folder")
        if not (root / path).is_file():
            missing.append((number, text))
        entries.append(path)
    if missing:
        number, text = missing[0]
        more = f" (and {len(missing) - 1} more missing)" if len(missing) > 1 else ""
        raise FileNotFoundError(f"{list_path}:{number}: {text} not found under {root}{more}")
    if not entries:
        raise ValueError(f"{list_path}: the list file names no images")
    return entries


def read_list_files(root, class_names=None) -> pd.DataFrame:
    """The images named by ``root/train.txt`` and ``root/test.txt`` (format: module docstring).

    Returns a DataFrame with columns path (under ``root``), label (int, position of the
    class in the sorted training classes), class_name (``class_names[folder]``, default
    the folder) and split ("train" / "test"), in list order; ``attrs`` classes,
    class_names, problems ([]). ValueError when the training list has fewer than two
    classes or the test list names a class the training list does not.
    """
    root = check_folder(root)
    class_names = class_names or {}
    listed = {split: _listed_paths(root / name, root) for split, name in LIST_FILES.items()}
    classes = sorted({path.parts[0] for path in listed["train"]})
    if len(classes) < 2:
        raise ValueError(f"{root / LIST_FILES['train']}: names {len(classes)} class(es); "
                         "classification needs at least 2 (a class is a path's first folder)")
    unseen = sorted({path.parts[0] for path in listed["test"]} - set(classes))
    if unseen:
        raise ValueError(f"{root / LIST_FILES['test']}: class(es) {unseen} have no training "
                         f"images in {LIST_FILES['train']}")
    label_of = {name: label for label, name in enumerate(classes)}
    rows = [{"path": str(root / path), "label": label_of[path.parts[0]],
             "class_name": class_names.get(path.parts[0], path.parts[0]), "split": split}
            for split, paths in listed.items() for path in paths]
    frame = pd.DataFrame(rows, columns=IMAGE_COLUMNS)
    frame.attrs.update(classes=classes, problems=[],
                       class_names=[class_names.get(name, name) for name in classes])
    return frame


def write_list_files(frame: pd.DataFrame, root, folder) -> dict[str, str]:
    """``folder/train.txt`` and ``folder/test.txt`` of ``frame``'s train / test rows, their
    paths relative to ``root`` (each under ``root/<class>/``), atomically; returns
    {split: path}. Copied into ``root``, they are read back by :func:`read_list_files`."""
    root, written = Path(root), {}
    for split, name in LIST_FILES.items():
        lines = "".join(f"{Path(path).relative_to(root).as_posix()}\n"
                        for path in frame.loc[frame["split"] == split, "path"])
        written[split] = str(save_text(Path(folder) / name, lines))
    return written
