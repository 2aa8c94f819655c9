"""Stage: fit a whitener and whiten the patches."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from prefect import task

from tasks.logs import cached, stage_logger
from terafeat.atomic_files import load_array, save_array, save_arrays
from terafeat.learning.whitening import Whitener


@task(name="whiten")
def whiten_patches(patches_path: str, run_dir: str, method: str, eps: float,
                   n_components: int | None = None, prefix: str = "",
                   remove_dc: bool = True, cache_root: str | None = None) -> tuple[str, str]:
    """Fit ``Whitener`` on the patches; writes ``<prefix>whitener.npz`` and ``<prefix>whitened.npy``.

    remove_dc: subtract each patch's own mean first (see ``Whitener``).

    Returns (whitener path, whitened patches path).
    """
    def compute(out: Path) -> tuple[str, str]:
        patches = load_array(patches_path)
        whitener = Whitener(method=method, n_components=n_components, eps=eps, remove_dc=remove_dc,
                            dtype=patches.dtype)
        whitened = whitener.fit_transform(patches)
        kept = whitener.explained_variance_
        stage_logger().info("%s whitening, eps=%g: %d components, variance kept after damping "
                            "%.3f", method, eps, len(kept),
                            float(np.sum(kept / (kept + eps)) / len(kept)))
        return (str(save_arrays(out / f"{prefix}whitener.npz", whitener.to_arrays())),
                str(save_array(out / f"{prefix}whitened.npy", whitened)))

    params = {"method": method, "eps": eps, "n_components": n_components, "prefix": prefix,
              "remove_dc": remove_dc}
    return tuple(cached(cache_root, "whiten", params, {"patches": patches_path}, run_dir, compute))


def load_whitener(path: str) -> Whitener:
    """The whitener saved by ``whiten_patches``."""
    with np.load(path, allow_pickle=False) as arrays:
        return Whitener.from_arrays(arrays)
