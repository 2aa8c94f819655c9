"""Stage: download a histology data set (PatchCamelyon HDF5, Kather 2016) before listing it."""
from __future__ import annotations

from prefect import task

from tasks.logs import stage_logger
from terafeat.datasets.tile_tables import download_tiles


@task(name="download-tiles", retries=2, retry_delay_seconds=10)
def download_tile_set(*, dataset: str, data_root: str, run_dir: str) -> str:
    """Fetch ``dataset`` into ``data_root/<name>`` (resumes a partial download: a retry
    continues where the last attempt stopped), outside ``run_dir``: a data set outlives
    the run; returns the folder holding it."""
    logger = stage_logger()
    reported = set()

    def progress(done: int, total: int | None) -> None:
        step = (total, done * 10 // total if total else done >> 26)  # tenths, or 64 MiB
        if step not in reported:
            reported.add(step)
            logger.info("%s: %d of %s bytes", dataset, done, total or "?")

    folder = download_tiles(dataset, data_root, progress)
    logger.info("%s ready under %s", dataset, folder)
    return str(folder)
