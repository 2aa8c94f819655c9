"""Helpers for the video tests: real small videos encoded with OpenCV, and the shared data."""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from terafeat.datasets.download import extract

FOURCC_BY_SUFFIX = {".avi": "MJPG", ".mp4": "mp4v"}
SQUARE = 8  # side of the moving square, pixels
SQUARE_TOP = 12  # its first row


def write_video(path, n_frames: int = 20, height: int = 32, width: int = 32,
                fps: float = 20.0, texture_seed: int | None = None) -> Path:
    """Encode a clip of a red square moving right one pixel per frame on a dark background.

    Frame t holds the square in columns t .. t+7, rows 12 .. 19. The codec
    follows the suffix: MJPG in .avi, MPEG-4 Part 2 ('mp4v') in .mp4.
    texture_seed: add a seeded noise texture to the background, which makes
    every frame bigger on disk (for truncation tests).
    """
    path = Path(path)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*FOURCC_BY_SUFFIX[path.suffix]),
                             fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"{path}: OpenCV cannot write this container/codec here")
    background = np.full((height, width, 3), 30, np.uint8)
    if texture_seed is not None:
        rng = np.random.default_rng(texture_seed)
        background = rng.integers(0, 60, size=(height, width, 3), dtype=np.uint8)
    for t in range(n_frames):
        frame = background.copy()
        frame[SQUARE_TOP:SQUARE_TOP + SQUARE, t:t + SQUARE] = (0, 0, 255)  # BGR red
        writer.write(frame)
    writer.release()
    return path


def square_column(frame: np.ndarray) -> float:
    """Mean column of the bright pixels of a grey (h, w) frame."""
    columns = np.nonzero(frame > 0.5 * frame.max())[1]
    return float(columns.mean())


def truncated_copy(source, dest, fraction: float) -> Path:
    """The first ``fraction`` of the bytes of ``source``, written to ``dest``."""
    data = Path(source).read_bytes()
    Path(dest).write_bytes(data[:int(len(data) * fraction)])
    return Path(dest)


def shared_data_dir() -> Path:
    """The benchmark data folder: $TERAFEAT_SHARED_DATA, else ../shared/data beside the repo."""
    default = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    return Path(os.environ.get("TERAFEAT_SHARED_DATA", default))


def extracted_shared(archive_name: str, tmp_path_factory) -> Path:
    """Extract a shared archive into a temporary folder; skip the test if it is absent."""
    archive = shared_data_dir() / archive_name
    if not archive.is_file():
        pytest.skip(f"{archive} not found (set TERAFEAT_SHARED_DATA to the benchmark data folder)")
    dest = tmp_path_factory.mktemp(archive_name.replace(".", "_"))
    extract(archive, dest)
    return dest / archive_name.removesuffix(".tar")
