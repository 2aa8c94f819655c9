"""CIFAR-10 and CIFAR-100 (Krizhevsky 2009) from the publisher's files, with numpy.

The binary version (``cifar-10-batches-bin/``, ``cifar-100-binary/``) is
read with numpy alone: each record is the label byte(s), then 3072 pixel
bytes, the R, G and B planes of a 32x32 image in row order. The python
version (``cifar-10-batches-py/``, ``cifar-100-python/``) is a set of
pickles. Trust assumption: a pickle can run code when loaded, so only the
publisher's file names are unpickled (the files are taken to come from the
publisher), and by an unpickler that builds nothing but numpy arrays and
bytes. Prefer the binary version for files of unknown origin.

Each loader returns (images (n, 32, 32, 3) uint8, labels (n,) int64,
class_names list[str]); our CIFAR-10 JPEG folders are read with
:func:`~terafeat.datasets.folders.read_image_folders`.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd

from terafeat.datasets.folders import check_folder
from terafeat.media.images import check_choice

SIDE = 32
IMAGE_BYTES = SIDE * SIDE * 3
SPLITS = ("train", "test")
LABEL_BYTE = {"coarse": 0, "fine": 1}  # CIFAR-100 binary records: coarse byte, fine byte
CIFAR10_BATCHES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}
#: The only file names :func:`read_cifar_pickle` unpickles.
PICKLE_NAMES = frozenset({*CIFAR10_BATCHES["train"], "test_batch", "batches.meta",
                          "train", "test", "meta"})
_PICKLE_GLOBALS = frozenset({("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
                             ("numpy.core.multiarray", "_reconstruct"),
                             ("numpy._core.multiarray", "_reconstruct")})


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, bytes and numpy arrays; refuses every other global."""

    def find_class(self, module, name):
        if (module, name) not in _PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR pickle")
        return super().find_class(module, name)


def _check_labels(labels: np.ndarray, n_classes: int, path) -> np.ndarray:
    if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"{path}: labels run from {labels.min()} to {labels.max()}, "
                         f"outside the {n_classes} classes")
    return labels


def read_cifar_binary(path, n_classes: int, label_bytes: int = 1,
                      label_byte: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """One binary batch: (images (n, 32, 32, 3) uint8, labels (n,) int64).

    label_bytes: label bytes per record (1 for CIFAR-10; 2 for CIFAR-100,
    coarse then fine), label_byte: which of them to return. Raises
    ValueError naming the file if its size is not a whole number of records
    or a label is not below ``n_classes``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: CIFAR batch not found")
    record = label_bytes + IMAGE_BYTES
    data = np.fromfile(path, dtype=np.uint8)
    if data.size == 0 or data.size % record:
        raise ValueError(f"{path}: {data.size} bytes is not a whole number of {record}-byte "
                         f"records ({label_bytes} label byte(s) + {IMAGE_BYTES} pixels)")
    data = data.reshape(-1, record)
    labels = _check_labels(data[:, label_byte].astype(np.int64), n_classes, path)
    planes = data[:, label_bytes:].reshape(-1, 3, SIDE, SIDE)
    return np.ascontiguousarray(planes.transpose(0, 2, 3, 1)), labels


def read_cifar_pickle(path) -> dict:
    """The dict in one of the publisher's CIFAR pickles (bytes keys), numpy arrays only.

    Raises ValueError naming the file for a name outside PICKLE_NAMES, or
    content that is not such a pickle.
    """
    path = Path(path)
    if path.name not in PICKLE_NAMES:
        raise ValueError(f"{path}: not a CIFAR file name, so not unpickled "
                         f"(known: {', '.join(sorted(PICKLE_NAMES))})")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: CIFAR batch not found")
    with open(path, "rb") as file:
        try:
            content = _ArrayUnpickler(file, encoding="bytes").load()
        except Exception as error:  # a damaged pickle fails in many ways
            raise ValueError(f"{path}: not a CIFAR pickle ({type(error).__name__}: {error})") \
                from error
    if not isinstance(content, dict):
        raise ValueError(f"{path}: holds a {type(content).__name__}, not a CIFAR dict")
    return content


def _entry(content: dict, key: bytes, path):
    if key not in content:
        raise ValueError(f"{path}: no {key.decode()!r} entry")
    return content[key]


def _pickled_batch(path, label_key: bytes, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) of a python-version batch, labels under ``label_key``."""
    content = read_cifar_pickle(path)
    data = _entry(content, b"data", path)
    labels = np.asarray(_entry(content, label_key, path), dtype=np.int64)
    if (not isinstance(data, np.ndarray) or data.dtype != np.uint8
            or data.shape != (len(labels), IMAGE_BYTES)):
        raise ValueError(f"{path}: 'data' should be ({len(labels)}, {IMAGE_BYTES}) uint8, "
                         f"got {getattr(data, 'shape', type(data).__name__)} "
                         f"{getattr(data, 'dtype', '')}")
    images = data.reshape(-1, 3, SIDE, SIDE).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), _check_labels(labels, n_classes, path)


def _text_names(path) -> list[str]:
    """Class names, one a line (blank lines ignored), from ``batches.meta.txt`` and the like."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path}: CIFAR class names not found")
    return [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]


def _pickled_names(path, key: bytes) -> list[str]:
    return [name.decode() for name in _entry(read_cifar_pickle(path), key, path)]


def _version_folder(root, binary: str, python: str) -> tuple[Path, bool]:
    """The binary (preferred) or python version's folder: ``root`` itself or inside it."""
    root = check_folder(root)
    for name, is_binary in ((binary, True), (python, False)):
        for folder in (root, root / name):
            if folder.name == name and folder.is_dir():
                return folder, is_binary
    raise FileNotFoundError(f"{root}: neither {binary}/ nor {python}/ found")


def _stacked(batches, class_names):
    images, labels = zip(*batches)
    return np.concatenate(images), np.concatenate(labels), class_names


def load_cifar10(root, split: str = "train") -> tuple[np.ndarray, np.ndarray, list[str]]:
    """CIFAR-10 ``split`` ("train": 50000, "test": 10000) from the binary or python version.

    root: the version's folder or the folder holding it.
    """
    check_choice("split", split, SPLITS)
    folder, binary = _version_folder(root, "cifar-10-batches-bin", "cifar-10-batches-py")
    if binary:
        class_names = _text_names(folder / "batches.meta.txt")
        batches = [read_cifar_binary(folder / f"{name}.bin", len(class_names))
                   for name in CIFAR10_BATCHES[split]]
    else:
        class_names = _pickled_names(folder / "batches.meta", b"label_names")
        batches = [_pickled_batch(folder / name, b"labels", len(class_names))
                   for name in CIFAR10_BATCHES[split]]
    return _stacked(batches, class_names)


def load_cifar100(root, split: str = "train",
                  labels: str = "fine") -> tuple[np.ndarray, np.ndarray, list[str]]:
    """CIFAR-100 ``split`` with its ``labels``: "fine" (100 classes) or "coarse" (20).

    root: the ``cifar-100-binary`` / ``cifar-100-python`` folder or the folder holding it.
    """
    check_choice("split", split, SPLITS)
    check_choice("labels", labels, tuple(LABEL_BYTE))
    folder, binary = _version_folder(root, "cifar-100-binary", "cifar-100-python")
    if binary:
        class_names = _text_names(folder / f"{labels}_label_names.txt")
        batch = read_cifar_binary(folder / f"{split}.bin", len(class_names), label_bytes=2,
                                  label_byte=LABEL_BYTE[labels])
    else:
        class_names = _pickled_names(folder / "meta", f"{labels}_label_names".encode())
        batch = _pickled_batch(folder / split, f"{labels}_labels".encode(), len(class_names))
    return _stacked([batch], class_names)


def _batch_files(root, dataset: str) -> tuple[dict[str, list[Path]], list[str], dict]:
    """({split: batch files}, class names, reader options) of a CIFAR version folder."""
    check_choice("dataset", dataset, ("cifar10", "cifar100"))
    if dataset == "cifar10":
        folder, binary = _version_folder(root, "cifar-10-batches-bin", "cifar-10-batches-py")
        names = (_text_names(folder / "batches.meta.txt") if binary
                 else _pickled_names(folder / "batches.meta", b"label_names"))
        files = {split: [folder / (name + (".bin" if binary else ""))
                         for name in CIFAR10_BATCHES[split]] for split in SPLITS}
        return files, names, {"label_bytes": 1, "label_key": b"labels"}
    folder, binary = _version_folder(root, "cifar-100-binary", "cifar-100-python")
    names = (_text_names(folder / "fine_label_names.txt") if binary
             else _pickled_names(folder / "meta", b"fine_label_names"))
    files = {split: [folder / (split + (".bin" if binary else ""))] for split in SPLITS}
    return files, names, {"label_bytes": 2, "label_key": b"fine_labels"}


def read_cifar_batch(path, n_classes: int, label_bytes: int = 1,
                     label_key: bytes = b"labels") -> tuple[np.ndarray, np.ndarray]:
    """(images (n, 32, 32, 3) uint8, labels (n,)) of one batch file, binary (``.bin``,
    last label byte) or pickled (``label_key``)."""
    path = Path(path)
    if path.suffix == ".bin":
        return read_cifar_binary(path, n_classes, label_bytes, label_byte=label_bytes - 1)
    return _pickled_batch(path, label_key, n_classes)


def cifar_listing(root, dataset: str = "cifar10") -> pd.DataFrame:
    """One row per image of the publisher's CIFAR-10 / CIFAR-100 (fine labels) files:
    path (its batch file), record (row in the file), label, class_name, split,
    reader options in ``attrs["reader"]`` (for :func:`read_cifar_batch`)."""
    files, names, options = _batch_files(root, dataset)
    frames = []
    for split, paths in files.items():
        for path in paths:
            _, labels = read_cifar_batch(path, len(names), **options)
            frames.append(pd.DataFrame({"path": str(path), "record": np.arange(len(labels)),
                                        "label": labels, "split": split}))
    frame = pd.concat(frames, ignore_index=True)
    frame["class_name"] = [names[label] for label in frame["label"]]
    frame.attrs.update(classes=names, class_names=names, problems=[],
                       reader={"n_classes": len(names), **options})
    return frame
