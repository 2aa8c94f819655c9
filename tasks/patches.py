"""Stage: sample training patches."""
from __future__ import annotations

from pathlib import Path

from prefect import task

from tasks.logs import cached, stage_logger
from terafeat.atomic_files import save_array
from terafeat.datasets.bundled import grey_images
from terafeat.media.patches import sample_patches


@task(name="sample-patches")
def sample_bundled_patches(run_dir: str, image_names: list[str], n_patches: int,
                           patch_size: int, seed: int, cache_root: str | None = None) -> str:
    """Grey patches from bundled natural images -> ``patches.npy`` (n_patches, patch_size**2)."""

    def compute(out: Path) -> str:
        images = grey_images(image_names)
        patches = sample_patches(images, n_patches, patch_size, random_state=seed)
        stage_logger().info("sampled %d %dx%d patches from %d images", len(patches),
                            patch_size, patch_size, len(images))
        return str(save_array(out / "patches.npy", patches))

    params = {"images": list(image_names), "n_patches": n_patches, "patch_size": patch_size,
              "seed": seed}
    return cached(cache_root, "sample-patches", params, {}, run_dir, compute)
