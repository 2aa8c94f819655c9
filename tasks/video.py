"""Stage: find the clips of an action data set, check that they decode, list them."""
from __future__ import annotations

from pathlib import Path

from prefect import task

from runs.stage_cache import files_fingerprint, folder_fingerprint
from tasks.logs import cached, stage_logger
from terafeat.atomic_files import load_json, save_json
from terafeat.datasets.folders import read_class_folders
from terafeat.datasets.hollywood2 import read_hollywood2
from terafeat.datasets.kth import read_kth
from terafeat.datasets.ucf import read_ucf_folders
from terafeat.media.video import read_clip, scan_videos

READERS = {"ucf": read_ucf_folders, "kth": read_kth, "folders": read_class_folders,
           "hollywood2": read_hollywood2}


@task(name="scan-videos")
def scan_action_videos(*, data_root: str, layout: str, run_dir: str,
                       cache_root: str | None = None) -> str:
    """Read the ``layout`` of ``data_root``, decode every clip, keep the whole ones.

    Writes ``clips.json``: {"clips": one dict per readable clip (the reader's
    columns plus n_frames, height and width as decoded), "skipped": [{"path",
    "problem"}] for files that do not fit the layout or do not decode}.
    Returns its path.  Through the stage cache with ``cache_root``, keyed by
    the files under ``data_root`` (names, sizes, times).
    """
    def compute(out: Path) -> str:
        logger = stage_logger()
        frame = READERS[layout](data_root, strict=False)
        good, problems = scan_videos(frame["path"])
        skipped = [{"path": path, "problem": problem}
                   for path, problem in list(frame.attrs["problems"]) + problems]
        info_of = {info.path: info for info in good}
        clips = [{**row, "n_frames": info.n_frames, "height": info.height, "width": info.width}
                 for row in frame.to_dict("records") if (info := info_of.get(row["path"]))]
        for item in skipped:
            logger.warning("skipping %s: %s", item["path"], item["problem"])
        if not clips:
            raise ValueError(f"{data_root}: no readable clip in the {layout!r} layout")
        logger.info("%d clips readable, %d skipped, under %s", len(clips), len(skipped), data_root)
        return str(save_json(out / "clips.json", {"clips": clips, "skipped": skipped}))

    params = {"data_root": str(data_root), "layout": layout,
              "data": folder_fingerprint(data_root) if cache_root else None}
    return cached(cache_root, "scan-videos", params, {}, run_dir, compute)


def clips_fingerprint(clips_path: str) -> str:
    """``files_fingerprint`` of the clips ``clips.json`` lists (a cache key part)."""
    return files_fingerprint(clip["path"] for clip in load_clips(clips_path))


def load_clips(clips_path: str) -> list[dict]:
    """The readable clips listed by :func:`scan_action_videos`."""
    return load_json(clips_path)["clips"]


def read_action_clip(clip: dict, scale: float, max_frames: int | None):
    """Grey (T, H, W) float32 frames of one listed clip, resized by ``scale``."""
    return read_clip(clip["path"], scale=scale, max_frames=max_frames)
