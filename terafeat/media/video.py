"""Streaming frames from video files with OpenCV (FFmpeg backend).

Frames come out one at a time as float32 arrays with values in [0, 1]:
grey ``(height, width)`` by default, or RGB ``(height, width, 3)``. Only
:func:`read_clip` holds a whole clip in memory, and only up to ``max_frames``.

A damaged file raises :class:`VideoReadError`, naming the file and the
problem. A file that decodes only partly (fewer frames than its header
announces, the mark of a truncated download) still yields the frames that
decode, with a :class:`TruncatedVideoWarning`; :func:`check_video` and
:func:`scan_videos` treat it as bad, so a run over thousands of files can
list the damaged ones in its report instead of stopping.
"""
from __future__ import annotations

import dataclasses
import math
import os
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

#: A clip that decodes to fewer than this fraction of the frames announced in
#: its header counts as truncated. Header counts of some containers are
#: estimates from the duration, so a small shortfall is not an error.
MIN_DECODED_FRACTION = 0.9


class VideoReadError(ValueError):
    """A video file that cannot be read: ``path`` names it, ``problem`` says why."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):  # keeps both fields when sent between Dask workers
        return type(self), (self.path, self.problem)


class TruncatedVideoWarning(UserWarning):
    """A video decoded to far fewer frames than its header announces."""


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds.

    n_frames: frame count, from the container header (:func:`video_info`) or
    counted by decoding every frame (:func:`check_video`, :func:`scan_videos`);
    0 when the header does not say. fps: frames per second, 0.0 when unknown.
    width, height: frame size in pixels. fourcc: the codec's four-character code
    as FFmpeg reports it (e.g. ``"MJPG"``, ``"FMP4"`` for MPEG-4 Part 2, ``"h264"``).
    """

    path: str
    n_frames: int
    fps: float
    width: int
    height: int
    fourcc: str


def _open(path) -> cv2.VideoCapture:
    """An opened capture, or VideoReadError saying why the file cannot be opened."""
    path = Path(path)
    if not path.exists():
        raise VideoReadError(path, "file not found")
    if not path.is_file():
        raise VideoReadError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise VideoReadError(path, "file is empty (0 bytes)")
    if not os.access(path, os.R_OK):
        raise VideoReadError(path, "permission denied")
    # FFmpeg only: CAP_ANY would also try the image-sequence backend, which
    # reads a name holding '%' as a pattern.
    capture = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not capture.isOpened():
        raise VideoReadError(path, "OpenCV/FFmpeg cannot open it (not a video, an unknown "
                                   "codec, or a damaged or truncated container)")
    return capture


def _header(capture: cv2.VideoCapture, path) -> VideoInfo:
    code = int(capture.get(cv2.CAP_PROP_FOURCC)) & 0xFFFFFFFF
    fps = capture.get(cv2.CAP_PROP_FPS)
    return VideoInfo(
        path=str(path),
        n_frames=max(int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), 0),
        fps=float(fps) if math.isfinite(fps) and fps > 0 else 0.0,
        width=int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
        height=int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        fourcc=code.to_bytes(4, "little").decode("latin-1").rstrip("\x00 "),
    )


def video_info(path) -> VideoInfo:
    """Header facts of a video file (no frame is decoded).

    Raises VideoReadError if the file is missing, empty or cannot be opened.
    """
    capture = _open(path)
    try:
        return _header(capture, path)
    finally:
        capture.release()


def _short_of_header(n_decoded: int, n_header: int, min_fraction: float) -> bool:
    return n_header > 0 and n_decoded < min_fraction * n_header


def _output_size(height: int, width: int, scale, size) -> tuple[int, int]:
    if size is not None:
        return size
    if scale is not None:
        return max(1, round(height * scale)), max(1, round(width * scale))
    return height, width


def _check_options(scale, size, target_fps, max_frames) -> tuple[int, int] | None:
    """Validated options; returns ``size`` as a pair of ints or None."""
    if scale is not None and size is not None:
        raise ValueError("give scale or size, not both")
    if scale is not None and not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    if size is not None:
        if len(size) != 2 or any(int(n) != n or n < 1 for n in size):
            raise ValueError(f"size must be (height, width) in whole pixels >= 1, got {size}")
        size = (int(size[0]), int(size[1]))
    if target_fps is not None and not target_fps > 0:
        raise ValueError(f"target_fps must be > 0, got {target_fps}")
    if max_frames is not None and max_frames < 0:
        raise ValueError(f"max_frames must be >= 0, got {max_frames}")
    return size


def iter_frames(path, *, grey: bool = True, scale: float | None = None,
                size: tuple[int, int] | None = None, target_fps: float | None = None,
                max_frames: int | None = None,
                min_fraction: float = MIN_DECODED_FRACTION) -> Iterator[np.ndarray]:
    """Frames of a video, one at a time, as float32 arrays in [0, 1].

    grey: yield (h, w) grey frames; False yields (h, w, 3) RGB frames.
    scale: resize by this factor (0.5 halves both sides, as Le et al. do);
    size: resize to (height, width) pixels instead. Shrinking uses area
    averaging, enlarging bilinear interpolation.
    target_fps: keep the frames nearest to a clock of this rate (25 fps with
    target 12.5 keeps frames 0, 2, 4, ...); a target at or above the file's
    rate keeps every frame (none are invented).
    max_frames: stop after this many frames are yielded.

    The file is opened (and checked) when this is called; frames are decoded
    as they are consumed. Raises VideoReadError for a missing, empty or
    unopenable file, one with no decodable frame, or target_fps on a file
    whose rate is unknown. A file decoding to fewer than ``min_fraction`` of
    its header's frame count gives a TruncatedVideoWarning at the end.
    """
    size = _check_options(scale, size, target_fps, max_frames)
    capture = _open(path)
    info = _header(capture, path)
    if target_fps is not None and info.fps == 0.0:
        capture.release()
        raise VideoReadError(path, "frame rate unknown, cannot subsample to target_fps")
    step = info.fps / target_fps if target_fps is not None else 1.0
    return _frames(capture, info, grey, scale, size, max(step, 1.0), max_frames, min_fraction)


def _frames(capture, info: VideoInfo, grey, scale, size, step, max_frames,
            min_fraction) -> Iterator[np.ndarray]:
    conversion = cv2.COLOR_BGR2GRAY if grey else cv2.COLOR_BGR2RGB
    n_decoded = n_yielded = 0
    out_size = None
    try:
        while max_frames is None or n_yielded < max_frames:
            keep = n_decoded == math.floor(n_yielded * step + 0.5)
            if keep:
                ok, frame = capture.read()
            else:
                ok, frame = capture.grab(), None
            if not ok:
                break
            n_decoded += 1
            if not keep:
                continue
            frame = cv2.cvtColor(frame, conversion)
            if out_size is None:
                out_size = _output_size(frame.shape[0], frame.shape[1], scale, size)
            if frame.shape[:2] != out_size:
                shrink = out_size[0] * out_size[1] < frame.shape[0] * frame.shape[1]
                frame = cv2.resize(frame, out_size[::-1],
                                   interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
            n_yielded += 1
            yield frame.astype(np.float32) / np.float32(255)
    finally:
        capture.release()
    if n_decoded == 0 and max_frames != 0:
        raise VideoReadError(info.path, "no frame could be decoded")
    stopped_early = max_frames is not None and n_yielded >= max_frames
    if not stopped_early and _short_of_header(n_decoded, info.n_frames, min_fraction):
        warnings.warn(f"{info.path}: decoded only {n_decoded} of the {info.n_frames} frames "
                      f"its header announces (truncated file?)", TruncatedVideoWarning,
                      stacklevel=2)


def read_clip(path, *, max_frames: int | None = None, grey: bool = True,
              scale: float | None = None, size: tuple[int, int] | None = None,
              target_fps: float | None = None) -> np.ndarray:
    """A whole clip in memory: (T, H, W) float32 in [0, 1], or (T, H, W, 3) RGB.

    The options are those of :func:`iter_frames`; ``max_frames`` caps T.
    """
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    return np.stack(list(iter_frames(path, grey=grey, scale=scale, size=size,
                                     target_fps=target_fps, max_frames=max_frames)))


def check_video(path, min_fraction: float = MIN_DECODED_FRACTION) -> VideoInfo:
    """Decode every frame of a video to prove it is whole.

    Returns its VideoInfo with ``n_frames`` counted by decoding. Raises
    VideoReadError if it cannot be opened, no frame decodes, or fewer than
    ``min_fraction`` of the frames announced by its header decode.
    """
    capture = _open(path)
    try:
        info = _header(capture, path)
        n_decoded = 0
        while capture.grab():
            n_decoded += 1
    except cv2.error as error:
        raise VideoReadError(path, f"OpenCV error while decoding: {error}") from error
    finally:
        capture.release()
    if n_decoded == 0:
        raise VideoReadError(path, "no frame could be decoded")
    if _short_of_header(n_decoded, info.n_frames, min_fraction):
        raise VideoReadError(path, f"truncated: decoded only {n_decoded} of the "
                                   f"{info.n_frames} frames its header announces")
    return dataclasses.replace(info, n_frames=n_decoded)


def scan_videos(paths: Iterable, decode: bool = True,
                min_fraction: float = MIN_DECODED_FRACTION
                ) -> tuple[list[VideoInfo], list[tuple[str, str]]]:
    """Sort video files into readable and damaged ones; never raises for a bad file.

    decode: decode every frame (:func:`check_video`, catches truncation);
    False only reads headers (:func:`video_info`, fast).
    Returns ``(good, problems)``: a VideoInfo per readable file and a
    ``(path, problem)`` pair per damaged, empty or missing one, each in input order.
    """
    good, problems = [], []
    for path in paths:
        try:
            good.append(check_video(path, min_fraction) if decode else video_info(path))
        except VideoReadError as error:
            problems.append((error.path, error.problem))
    return good, problems
