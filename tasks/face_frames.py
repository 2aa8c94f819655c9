"""Stage: the face-neuron experiment's images: unlabelled training frames and the labelled
detection set."""
from __future__ import annotations

from pathlib import Path

from prefect import task

from tasks.logs import stage_logger
from terafeat.analysis.face_experiment import face_experiment_images, is_object_set
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
                       frames_per_video: int, n_nonfaces_per_face: float, seed: int) -> dict:
    """Training frames and the labelled detection set (``face_experiment_images``):
    distractors are object images when ``data_root`` holds ``train/`` and ``test/`` image
    folders (CIFAR-10 extracted), else crops of the bundled ``images``; frames of videos
    under ``data_root`` join the training frames.  Writes ``frames.npy`` (n, s, s),
    ``frame_is_face.npy`` (diagnostics only), ``detection_images.npy`` (m, s, s),
    ``detection_is_face.npy`` and ``detection_held_out.npy`` (m,)."""
    logger = stage_logger()
    frames_from_video, skipped = video_frames(data_root, max_videos, frames_per_video)
    objects = is_object_set(data_root)
    sources = frames_from_video if objects else grey_images(tuple(images)) + frames_from_video
    data = face_experiment_images(frame_size, n_frames, face_fraction, n_nonfaces_per_face, seed,
                                  sources, data_root if objects else None)
    run = Path(run_dir)
    distractors = f"object images of {data_root}" if objects else "bundled crops"
    logger.info("%d training frames of %dx%d (distractors: %s, %d video frames); %d faces "
                "(%.1f%%); detection set %d images, %d held out", n_frames, frame_size,
                frame_size, distractors, len(frames_from_video), data["frame_is_face"].sum(),
                100 * data["frame_is_face"].mean(), len(data["images"]), data["held_out"].sum())
    for problem in skipped:
        logger.warning("video skipped: %s", problem)
    files = {"frames": ("frames", "frames"), "is_face": ("frame_is_face", "frame_is_face"),
             "images": ("detection_images", "images"),
             "image_is_face": ("detection_is_face", "is_face"),
             "held_out": ("detection_held_out", "held_out")}
    return {**{key: str(save_array(run / f"{name}.npy", data[array]))
               for key, (name, array) in files.items()},
            "distractors": "objects" if objects else "bundled crops",
            "n_frames": int(n_frames), "n_faces": int(data["frame_is_face"].sum()),
            "n_video_frames": len(frames_from_video), "skipped_videos": skipped}
