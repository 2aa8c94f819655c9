"""Stage: the whitener's leading principal axes as a filter bank (the PCA peer of RICA)."""
from __future__ import annotations

from pathlib import Path

from prefect import task

from tasks.logs import stage_logger
from tasks.whitening import load_whitener
from terafeat.atomic_files import save_array
from terafeat.learning.whitening import principal_filters


@task(name="pca-filters")
def pca_filter_bank(*, whitener_path: str, run_dir: str, n_filters: int) -> dict:
    """Writes ``pca-W.npy`` (k, d_white): the leading ``n_filters`` principal axes of the
    patches (at most d_white) in the whitened space, unit norm; returns {"W": path, "k"}."""
    W = principal_filters(load_whitener(whitener_path), n_filters)
    stage_logger().info("PCA peer: %d principal axes as filters", len(W))
    return {"W": str(save_array(Path(run_dir) / "pca-W.npy", W)), "k": int(len(W))}
