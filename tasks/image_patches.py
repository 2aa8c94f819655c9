"""Stage: contrast-normalised colour patches from training images of a listing."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from prefect import task

from tasks.logs import cached, stage_logger
from terafeat.atomic_files import save_array
from terafeat.datasets.image_sets import read_listed_images
from terafeat.encoding.convolutional import contrast_normalize
from terafeat.media.patches import sample_patches


@task(name="sample-image-patches")
def sample_image_patches(*, listing: dict, run_dir: str, n_patches: int, patch_size: int,
                         image_size: int, n_images: int, seed: int,
                         cache_root: str | None = None) -> dict:
    """``patches.npy`` (n_patches, patch_size**2 * 3): random windows of ``n_images``
    random distinct training images, each patch contrast-normalised (Coates et al.).

    Returns {"patches": path, "n_images": images read, "problems": [[path, problem]]}.
    """
    def compute(out: Path) -> dict:
        rows = pd.read_csv(listing["train_images"])
        chosen = np.sort(np.random.default_rng(seed).permutation(len(rows))[:n_images])
        images, kept, problems = read_listed_images(rows.iloc[chosen], image_size,
                                                    listing["reader"])
        patches = contrast_normalize(sample_patches(list(images), n_patches, patch_size,
                                                    random_state=seed))
        stage_logger().info("%d %dx%dx3 patches from %d training images (%d unreadable)",
                            len(patches), patch_size, patch_size, len(kept), len(problems))
        return {"patches": str(save_array(out / "patches.npy", patches.astype(np.float32))),
                "n_images": len(kept), "problems": [list(p) for p in problems]}

    params = {"n_patches": n_patches, "patch_size": patch_size, "image_size": image_size,
              "n_images": n_images, "seed": seed}
    return cached(cache_root, "sample-image-patches", params,
                  {"train_images": listing["train_images"]},
                  run_dir, compute)
