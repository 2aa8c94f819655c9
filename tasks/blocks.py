"""Stage: sample space-time training blocks from the clips, one clip in memory at a time."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from prefect import task

from tasks.logs import cached, stage_logger
from tasks.video import clips_fingerprint, load_clips, read_action_clip
from terafeat.atomic_files import save_array
from terafeat.media.blocks import block_counts, sample_blocks
from terafeat.validation import check_random_state


@task(name="sample-blocks")
def sample_training_blocks(clips_path: str, run_dir: str, shapes: dict[str, list[int]],
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
