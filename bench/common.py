"""What the benchmarks share: the shared benchmark archives, extracted on demand."""
from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def extracted(name: str, data_root: Path, archive: Path | None = None) -> Path:
    """``data_root/<name>``, extracted from ``archive`` (default: the shared
    ``<name>.tar`` beside the repository) if it has no ``train`` folder yet."""
    root = data_root / name
    archive = archive or SHARED_DATA / f"{name}.tar"
    if not (root / "train").is_dir():
        if not archive.is_file():
            raise SystemExit(f"{root} has no train folder and {archive} does not exist: "
                             "pass --data-root or --archive")
        from terafeat.datasets.download import extract
        print(f"extracting {archive} into {data_root} ...", flush=True)
        extract(archive, data_root)
    return root
