"""Stage: the "Why RICA?" comparison, run here or read from the bench's output."""
from __future__ import annotations

from prefect import task

from tasks.logs import stage_logger
from terafeat.analysis.why_rica import why_rica
from terafeat.atomic_files import load_json


@task(name="why-rica")
def compare_methods(results_path: str | None, n_patches: int, max_iter: int,
                    n_trajectories: int, cifar_tar: str | None, seed: int) -> dict:
    """``bench/why_rica.py``'s JSON output when ``results_path`` is given, else the
    comparison run now at the given (small) scale."""
    logger = stage_logger()
    if results_path:
        result = load_json(results_path)
        if not {"rows", "settings"} <= set(result):
            raise ValueError(f"{results_path}: not a why_rica result (no rows / settings)")
        return dict(result, source=f"Read from {results_path}.")
    result = why_rica(n_patches=n_patches, max_iter=max_iter, n_trajectories=n_trajectories,
                      cifar_tar=cifar_tar, random_state=seed, progress=logger.info)
    return dict(result, source="Run inside this flow.")
