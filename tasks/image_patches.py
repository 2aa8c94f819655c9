"""Stage: contrast-normalised colour patches from training images of a listing."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from prefect import task

from tasks.logs import cached, report_progress, stage_logger
from terafeat.atomic_files import save_array
from terafeat.datasets.image_sets import read_listed_images
from terafeat.encoding.convolutional import contrast_normalize
from terafeat.media.colour import convert_tiles
from terafeat.media.patches import sample_patches

#: Images read at a time (the progress reported between two reads).
READ_BATCH = 256


@task(name="sample-image-patches")
def sample_image_patches(*, listing: dict, run_dir: str, n_patches: int, patch_size: int,
                         image_size: int, n_images: int, seed: int, colour_mode: str = "rgb",
                         cache_root: str | None = None) -> dict:
    """``patches.npy`` (n_patches, patch_size**2 * c): random windows of ``n_images``
    random distinct training images converted to ``colour_mode``
    (``terafeat.media.colour``: c = 3 for "rgb"), each patch contrast-normalised (Coates et al.).

    Returns {"patches": path, "n_images": images read, "problems": [[path, problem]]}.
    """
    def compute(out: Path) -> dict:
        rows = pd.read_csv(listing["train_images"])
        chosen = rows.iloc[np.sort(np.random.default_rng(seed).permutation(len(rows))[:n_images])]
        images, kept, problems = [], 0, []
        for start in range(0, len(chosen), READ_BATCH):
            batch, batch_kept, batch_problems = read_listed_images(
                chosen.iloc[start:start + READ_BATCH], image_size, listing["reader"])
            images.extend(convert_tiles(batch, colour_mode) if len(batch) else batch)
            kept += len(batch_kept)
            problems += batch_problems
            report_progress("read patch images", min(start + READ_BATCH, len(chosen)),
                            len(chosen))
        patches = contrast_normalize(sample_patches(images, n_patches, patch_size,
                                                    random_state=seed))
        stage_logger().info("%d %dx%d %s patches from %d training images (%d unreadable)",
                            len(patches), patch_size, patch_size, colour_mode, kept, len(problems))
        return {"patches": str(save_array(out / "patches.npy", patches.astype(np.float32))),
                "n_images": kept, "problems": [list(p) for p in problems]}

    params = {"n_patches": n_patches, "patch_size": patch_size, "image_size": image_size,
              "n_images": n_images, "seed": seed,
              **({"colour_mode": colour_mode} if colour_mode != "rgb" else {})}
    return cached(cache_root, "sample-image-patches", params,
                  {"train_images": listing["train_images"]},
                  run_dir, compute)
