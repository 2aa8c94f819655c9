"""Stages: layer 1 applied convolutionally to training blocks; descriptors of every clip;
the motion-energy peer's features."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from prefect import task

from tasks.logs import cached, report_progress, stage_logger
from tasks.video import clips_fingerprint, load_clips, read_action_clip
from tasks.whitening import load_whitener
from terafeat.atomic_files import load_array, save_array
from terafeat.encoding.pooled_layer import motion_energy_image
from terafeat.learning.stacked_isa import ISALayer, StackedISA


def load_model(model: dict) -> StackedISA:
    """A StackedISA from a spec: {"layer1": {"whitener", "W"}, "layer2": same or None,
    "group_size", "eps", "block_shape", "stride"} (paths written by earlier stages)."""
    layers = [None if model[name] is None else
              ISALayer.from_fitted(load_whitener(model[name]["whitener"]),
                                   load_array(model[name]["W"]), model["group_size"], model["eps"])
              for name in ("layer1", "layer2")]
    return StackedISA(layers[0], layers[1], model["block_shape"], model["stride"])


def pca_blocks_model(model: dict) -> StackedISA:
    """The non-learned peer of a model spec: layer 1's PCA of the same layer-1 blocks, each
    coefficient through the same energy ``sqrt(eps + z^2)`` (identity filters, no pooling)."""
    whitener = load_whitener(model["layer1"]["whitener"])
    n = whitener.whitening_.shape[1]
    layer = ISALayer.from_fitted(whitener, np.eye(n, dtype=whitener.whitening_.dtype), 1,
                                 model["eps"])
    return StackedISA(layer, None, model["block_shape"], model["stride"])


def model_cache_key(model: dict) -> tuple[dict, dict[str, str]]:
    """(parameters, input files) of a model spec, as the stage cache keys them."""
    params = {key: model[key] for key in ("group_size", "eps", "block_shape", "stride")}
    inputs = {f"{name}-{part}": model[name][part] for name in ("layer1", "layer2")
              if model.get(name) is not None for part in ("whitener", "W")}
    return params, inputs


@task(name="convolve-layer1")
def convolve_layer1(*, blocks_path: str, run_dir: str, model: dict,
                    cache_root: str | None = None) -> str:
    """Layer-1 outputs of the 2x2x2 sub-blocks of each layer-2 training block.

    Writes ``layer2-inputs.npy`` (m, 8 * layer-1 outputs); returns its path.
    Through the stage cache with ``cache_root``.
    """
    layer1 = {**model, "layer2": None}

    def compute(out: Path) -> str:
        inputs = load_model(layer1).convolve(load_array(blocks_path))
        stage_logger().info("layer 1 applied to %d layer-2 blocks: %d inputs each", *inputs.shape)
        return str(save_array(out / "layer2-inputs.npy", inputs))

    params, inputs = model_cache_key(layer1)
    return cached(cache_root, "convolve-layer1", params, {**inputs, "blocks": blocks_path},
                  run_dir, compute)


@task(name="extract-descriptors")
def extract_descriptors(*, clips_path: str, run_dir: str, model: dict, overlap: float, scale: float,
                        max_frames: int | None, cache_root: str | None = None) -> dict:
    """Descriptors on a dense grid of blocks over every clip, one clip in memory at a time.

    Writes ``descriptors/<clip number>.npy`` (n_blocks, descriptor length)
    per clip. Returns {"shards": paths in clip order, "n_descriptors",
    "frames", "seconds" (reading excluded), "seconds_per_frame"}.  Through the
    stage cache with ``cache_root``.
    """
    def compute(out: Path) -> dict:
        logger = stage_logger()
        stacked = load_model(model)
        folder = out / "descriptors"
        shards, n_frames, n_descriptors, seconds = [], 0, 0, 0.0
        clips = load_clips(clips_path)
        for i, clip in enumerate(clips):
            report_progress("descriptors (clips)", i, len(clips))
            frames = read_action_clip(clip, scale, max_frames)
            started = time.perf_counter()
            descriptors = stacked.clip_descriptors(frames, overlap, clip["path"])
            seconds += time.perf_counter() - started
            shards.append(str(save_array(folder / f"{i:06d}.npy", descriptors)))
            n_frames += len(frames)
            n_descriptors += len(descriptors)
        report_progress("descriptors (clips)", len(clips), len(clips))
        logger.info("%d descriptors of %d values from %d clips (%d frames): %.4f s per frame",
                    n_descriptors, stacked.n_descriptor_, len(shards), n_frames, seconds / n_frames)
        return {"shards": shards, "n_descriptors": n_descriptors, "frames": n_frames,
                "seconds": seconds, "seconds_per_frame": seconds / n_frames}

    params, inputs = model_cache_key(model)
    params.update(overlap=overlap, scale=scale, max_frames=max_frames,
                  data=clips_fingerprint(clips_path) if cache_root else None)
    return cached(cache_root, "extract-descriptors", params, {**inputs, "clips": clips_path},
                  run_dir, compute)


@task(name="motion-energy")
def motion_energy_features(*, clips_path: str, run_dir: str, size: int, scale: float,
                           max_frames: int | None, cache_root: str | None = None) -> str:
    """Motion-energy image of every clip: writes ``motion-energy.npy`` (n_clips, size * size).
    Through the stage cache with ``cache_root``."""
    def compute(out: Path) -> str:
        features = np.stack([motion_energy_image(read_action_clip(clip, scale, max_frames), size)
                             for clip in load_clips(clips_path)])
        return str(save_array(out / "motion-energy.npy", features))

    params = {"size": size, "scale": scale, "max_frames": max_frames,
              "data": clips_fingerprint(clips_path) if cache_root else None}
    return cached(cache_root, "motion-energy", params, {"clips": clips_path}, run_dir, compute)
