"""Stages: layer 1 applied convolutionally to training blocks; descriptors of every clip;
the motion-energy peer's features."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from prefect import task

from tasks.logs import stage_logger
from tasks.video import load_clips, read_action_clip
from tasks.whitening import load_whitener
from terafeat.encode import motion_energy_image
from terafeat.stacked_isa import ISALayer, StackedISA
from terafeat.storage import load_array, save_array


def load_model(model: dict) -> StackedISA:
    """A StackedISA from a spec: {"layer1": {"whitener", "W"}, "layer2": same or None,
    "group_size", "eps", "block_shape", "stride"} (paths written by earlier stages)."""
    layers = [None if model[name] is None else
              ISALayer.from_fitted(load_whitener(model[name]["whitener"]),
                                   load_array(model[name]["W"]), model["group_size"], model["eps"])
              for name in ("layer1", "layer2")]
    return StackedISA(layers[0], layers[1], model["block_shape"], model["stride"])


@task(name="convolve-layer1")
def convolve_layer1(blocks_path: str, run_dir: str, model: dict) -> str:
    """Layer-1 outputs of the 2x2x2 sub-blocks of each layer-2 training block.

    Writes ``layer2-inputs.npy`` (m, 8 * layer-1 outputs); returns its path.
    """
    stacked = load_model({**model, "layer2": None})
    inputs = stacked.convolve(load_array(blocks_path))
    stage_logger().info("layer 1 applied to %d layer-2 blocks: %d inputs each", *inputs.shape)
    return str(save_array(Path(run_dir) / "layer2-inputs.npy", inputs))


@task(name="extract-descriptors")
def extract_descriptors(clips_path: str, run_dir: str, model: dict, overlap: float, scale: float,
                        max_frames: int | None) -> dict:
    """Descriptors on a dense grid of blocks over every clip, one clip in memory at a time.

    Writes ``descriptors/<clip number>.npy`` (n_blocks, descriptor length)
    per clip. Returns {"shards": paths in clip order, "n_descriptors",
    "frames", "seconds" (reading excluded), "seconds_per_frame"}.
    """
    logger = stage_logger()
    stacked = load_model(model)
    folder = Path(run_dir) / "descriptors"
    shards, n_frames, n_descriptors, seconds = [], 0, 0, 0.0
    for i, clip in enumerate(load_clips(clips_path)):
        frames = read_action_clip(clip, scale, max_frames)
        started = time.perf_counter()
        descriptors = stacked.clip_descriptors(frames, overlap, clip["path"])
        seconds += time.perf_counter() - started
        shards.append(str(save_array(folder / f"{i:06d}.npy", descriptors)))
        n_frames += len(frames)
        n_descriptors += len(descriptors)
    logger.info("%d descriptors of %d values from %d clips (%d frames): %.4f s per frame",
                n_descriptors, stacked.n_descriptor_, len(shards), n_frames, seconds / n_frames)
    return {"shards": shards, "n_descriptors": n_descriptors, "frames": n_frames,
            "seconds": seconds, "seconds_per_frame": seconds / n_frames}


@task(name="motion-energy")
def motion_energy_features(clips_path: str, run_dir: str, size: int, scale: float,
                           max_frames: int | None) -> str:
    """Motion-energy image of every clip: writes ``motion-energy.npy`` (n_clips, size * size)."""
    features = np.stack([motion_energy_image(read_action_clip(clip, scale, max_frames), size)
                         for clip in load_clips(clips_path)])
    return str(save_array(Path(run_dir) / "motion-energy.npy", features))
