"""Stage: unlabelled training frames for the face-neuron network."""
from __future__ import annotations

from pathlib import Path

from prefect import task

from tasks.logs import stage_logger
from terafeat.analysis.face_data import training_frames
from terafeat.atomic_files import save_array
from terafeat.datasets.bundled import grey_images
from terafeat.datasets.folders import list_videos
from terafeat.media.video import VideoReadError, iter_frames

#: Sampling rate of frames taken from each video, frames per second.
VIDEO_FPS = 1.0


def video_frames(data_root: str | None, max_videos: int, frames_per_video: int) -> tuple[list, list]:
    """Grey frames of up to ``max_videos`` videos found under ``data_root`` (recursively),
    ``frames_per_video`` each at about one frame a second. Returns (frames, skipped:
    "path: problem" strings for videos that could not be read)."""
    if not data_root or not Path(data_root).is_dir() or max_videos < 1:
        return [], []
    frames, skipped = [], []
    for path in list_videos(data_root, recursive=True)[:max_videos]:
        try:
            try:
                clip = list(iter_frames(path, target_fps=VIDEO_FPS, max_frames=frames_per_video))
            except VideoReadError as error:
                if "frame rate" not in str(error):
                    raise
                clip = list(iter_frames(path, max_frames=frames_per_video))
        except VideoReadError as error:
            skipped.append(str(error))
            continue
        frames += clip
    return frames, skipped


@task(name="sample-face-frames")
def sample_face_frames(run_dir: str, images: list[str], data_root: str | None, n_frames: int,
                       frame_size: int, face_fraction: float, max_videos: int,
                       frames_per_video: int, seed: int) -> dict:
    """Frames (n, size, size) cropped from bundled images and video frames under
    ``data_root``, with ``face_fraction`` lfw training-half faces mixed in; writes
    ``frames.npy`` and ``frame_is_face.npy`` (for diagnostics only)."""
    logger = stage_logger()
    frames_from_video, skipped = video_frames(data_root, max_videos, frames_per_video)
    sources = grey_images(tuple(images)) + frames_from_video
    frames, is_face = training_frames(sources, n_frames, frame_size, face_fraction, seed)
    run = Path(run_dir)
    logger.info("%d training frames of %dx%d from %d bundled images and %d video frames; "
                "%d faces (%.1f%%)", len(frames), frame_size, frame_size, len(images),
                len(frames_from_video), is_face.sum(), 100 * is_face.mean())
    for problem in skipped:
        logger.warning("video skipped: %s", problem)
    return {"frames": str(save_array(run / "frames.npy", frames)),
            "is_face": str(save_array(run / "frame_is_face.npy", is_face)),
            "n_frames": int(len(frames)), "n_faces": int(is_face.sum()),
            "n_video_frames": len(frames_from_video), "skipped_videos": skipped}
