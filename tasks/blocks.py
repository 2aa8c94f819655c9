"""Stages: fit the block sizes to the clips; sample space-time training blocks from the
clips, one clip in memory at a time."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from prefect import task

from tasks.logs import cached, stage_logger
from tasks.video import clips_fingerprint, load_clips, read_action_clip
from terafeat.atomic_files import save_array
from terafeat.media.blocks import block_counts, fit_to_clips, layer2_shape, sample_blocks
from terafeat.validation import check_random_state


@task(name="fit-blocks")
def fit_blocks_to_clips(*, clips_path: str, run_dir: str, scale: float, max_frames: int | None,
                        block_shape: list[int], stride: int, n_layers: int,
                        n_components: list[int], layer2_inputs: int) -> dict:
    """The block sizes the listed clips allow (``blocks.fit_to_clips``): the layer-1
    ``block_shape`` (frames, height, width) and ``stride`` scaled down where a layer-2
    block would not fit the smallest clip, and each layer's PCA dimensions
    (``n_components``, one per layer) capped at its inputs' (layer 2: ``layer2_inputs``).

    Returns {"clip_shapes": (frames, height, width) of every clip as read (one frame
    decoded each), "smallest_clip", "block_scale_factor", "layer1_block", "stride",
    "n_components1", and with 2 layers "layer2_block", "n_components2"}; writes nothing
    under ``run_dir``.
    """
    logger = stage_logger()
    shapes = []
    for clip in load_clips(clips_path):
        first = read_action_clip(clip, scale, 1)
        n_frames = clip["n_frames"] if max_frames is None else min(clip["n_frames"], max_frames)
        shapes.append([n_frames, *first.shape[1:]])
    smallest = [min(shape[axis] for shape in shapes) for axis in range(3)]
    block, strides, factor = fit_to_clips(smallest, block_shape, (stride,) * 3)
    if factor < 1:
        logger.warning("the smallest clip %s (frames, height, width) is smaller than a layer-2 "
                       "block: layer-1 block scaled to %s, stride to %s", smallest, block, strides)
    geometry = {"clip_shapes": shapes, "smallest_clip": smallest, "block_scale_factor": factor,
                "layer1_block": list(block), "stride": list(strides)}
    n_inputs = {1: math.prod(block), 2: layer2_inputs}
    for layer in range(1, n_layers + 1):
        if layer == 2:
            geometry["layer2_block"] = list(layer2_shape(block, strides))
        geometry[f"n_components{layer}"] = min(n_components[layer - 1], n_inputs[layer])
        if geometry[f"n_components{layer}"] < n_components[layer - 1]:
            logger.warning("layer%d: PCA to %d dims, not %d: its inputs have only %d", layer,
                           n_inputs[layer], n_components[layer - 1], n_inputs[layer])
    return geometry


@task(name="sample-blocks")
def sample_training_blocks(*, clips_path: str, run_dir: str, shapes: dict[str, list[int]],
                           clip_shapes: list[list[int]], n_blocks: int, scale: float,
                           max_frames: int | None, seed: int,
                           cache_root: str | None = None) -> dict[str, str]:
    """``n_blocks`` blocks of each named (frames, height, width) shape, uniform over all clips.

    Each clip is decoded once and gives its share of every shape (see
    :func:`terafeat.media.blocks.block_counts`). Writes ``blocks-<name>.npy``
    (n_blocks, frames * height * width) per shape; returns name -> path.
    Through the stage cache with ``cache_root``.
    """
    def compute(out: Path) -> dict[str, str]:
        rng = check_random_state(seed)
        counts = {name: block_counts(clip_shapes, n_blocks, shape, rng)
                  for name, shape in shapes.items()}
        samples = {name: [] for name in shapes}
        for i, clip in enumerate(load_clips(clips_path)):
            if not any(count[i] for count in counts.values()):
                continue
            frames = read_action_clip(clip, scale, max_frames)
            for name, shape in shapes.items():
                if counts[name][i]:
                    samples[name].append(sample_blocks(frames, counts[name][i], shape, rng,
                                                       clip["path"]))
        paths = {name: str(save_array(out / f"blocks-{name}.npy", np.concatenate(samples[name])))
                 for name in shapes}
        stage_logger().info("sampled %d blocks of each of %s", n_blocks,
                            ", ".join(f"{name} {tuple(shape)}" for name, shape in shapes.items()))
        return paths

    params = {"shapes": shapes, "n_blocks": n_blocks, "scale": scale,
              "max_frames": max_frames, "seed": seed,
              "data": clips_fingerprint(clips_path) if cache_root else None}
    return cached(cache_root, "sample-blocks", params, {"clips": clips_path}, run_dir,
                  compute)
