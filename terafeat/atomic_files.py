"""Atomic file outputs: a killed run never leaves half a file."""
from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np


def current_umask() -> int:
    """The process's umask (Linux: read from /proc, elsewhere set and restored)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path, write: Callable[[io.BufferedWriter], None]) -> Path:
    """Write ``path`` through a temporary file in the same folder, then rename.

    ``write`` receives the open binary file.  Readers see the old file or the
    complete new one, never a partial write.  The file gets the mode any new
    file gets (0666 less the umask), not the temporary file's private 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
            os.fchmod(handle.fileno(), 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_bytes(path, data: bytes) -> Path:
    return atomic_write(path, lambda handle: handle.write(data))


def save_text(path, text: str) -> Path:
    return save_bytes(path, text.encode("utf-8"))


def save_json(path, obj) -> Path:
    """JSON with sorted keys and an indent, written atomically."""
    return save_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_jsonable) + "\n")


def load_json(path):
    return json.loads(Path(path).read_text(encoding="utf-8"))


def save_array(path, array: np.ndarray) -> Path:
    """One array as ``.npy``, written atomically."""
    return atomic_write(path, lambda handle: np.save(handle, np.asarray(array), allow_pickle=False))


def save_arrays(path, arrays: dict[str, np.ndarray]) -> Path:
    """Several named arrays as ``.npz``, written atomically."""
    return atomic_write(path, lambda handle: np.savez(handle, **arrays))


def load_array(path, mmap: bool = False) -> np.ndarray:
    """An array saved by ``save_array``; a missing or corrupt file is a ValueError naming it."""
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise ValueError(f"{path}: not a readable .npy array ({error})") from error


def _jsonable(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
