"""Stage: the "Why RICA?" comparison, run here or read from the bench's output."""
from __future__ import annotations

from pathlib import Path

from prefect import task

from tasks.logs import stage_logger
from terafeat.analysis.why_rica import why_rica
from terafeat.atomic_files import load_json, save_json


@task(name="why-rica")
def compare_methods(*, run_dir: str, results_path: str | None, n_patches: int, max_iter: int,
                    n_trajectories: int, cifar_tar: str | None, seed: int) -> dict:
    """``bench/why_rica.py``'s JSON output when ``results_path`` is given, else the
    comparison run now at the given (small) scale; kept as ``why_rica.json``."""
    logger = stage_logger()
    if results_path:
        result = load_json(results_path)
        if not {"rows", "settings"} <= set(result):
            raise ValueError(f"{results_path}: not a why_rica result (no rows / settings)")
        result = dict(result, source=f"Read from {results_path}.")
    else:
        result = dict(why_rica(n_patches=n_patches, max_iter=max_iter,
                               n_trajectories=n_trajectories, cifar_tar=cifar_tar, random_state=seed,
                               progress=logger.info), source="Run inside this flow.")
    save_json(Path(run_dir) / "why_rica.json", result)
    return result
