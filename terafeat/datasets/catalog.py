"""The data sets the package reads, where they come from, and whether they are here.

Downloadable sets are ``download.DATASETS`` (fetched into ``<root>/<name>/``);
the others (``MANUAL``) are fetched by hand from their official page (a
licence, a login, or no file this registry has verified), unpacked into
``<root>/<name>/``.
"""
from __future__ import annotations

from pathlib import Path
from urllib.error import URLError
from urllib.request import Request, urlopen

from terafeat.datasets import download
from terafeat.datasets.download import check_md5, sha256sum

#: Sets the readers understand that are fetched by hand: name -> official page.
MANUAL = {
    "hollywood2": "https://www.di.ens.fr/~laptev/actions/hollywood2/",
    "ilsvrc2012": "https://image-net.org/challenges/LSVRC/2012/",
    "tiny-imagenet": "http://cs231n.stanford.edu/tiny-imagenet-200.zip",
}


def known() -> list[str]:
    """Every data set name: downloadable first, then the manual ones, each sorted."""
    return sorted(download.DATASETS) + sorted(MANUAL)


def remote_size(url: str, timeout: float = 10.0) -> int | None:
    """Bytes the server announces for ``url`` (HTTP HEAD), None if it does not say or
    cannot be reached."""
    try:
        with urlopen(Request(url, method="HEAD"), timeout=timeout) as response:
            length = response.headers.get("Content-Length")
    except (URLError, OSError, ValueError):
        return None
    return int(length) if length is not None else None


def describe(name: str, root, remote: bool = False) -> dict:
    """One data set: {"name", "url" (the official file or page), "files", "size" (bytes on
    disk when present, else announced by the server with ``remote``, else None),
    "present" ("yes", "partial: i of n files", "no", or "manual: ..." for MANUAL sets)}."""
    folder = Path(root) / name
    if name in MANUAL:
        here = folder.is_dir() and any(folder.iterdir())
        return {"name": name, "url": MANUAL[name], "files": None,
                "size": _folder_size(folder) if here else None,
                "present": "yes (by hand)" if here else "no: download by hand from the page"}
    if name not in download.DATASETS:
        raise ValueError(f"unknown data set {name!r}; known: {', '.join(known())}")
    remotes = download.DATASETS[name]
    have = [folder / r.filename for r in remotes if (folder / r.filename).is_file()]
    if have:
        size = sum(path.stat().st_size for path in have)
    elif remote:
        sizes = [remote_size(r.url) for r in remotes]
        size = None if None in sizes else sum(sizes)
    else:
        size = None
    present = ("yes" if len(have) == len(remotes) else
               f"partial: {len(have)} of {len(remotes)} files" if have else "no")
    return {"name": name, "url": remotes[0].url, "files": len(remotes), "size": size,
            "present": present}


def _folder_size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def verify(name: str, root) -> list[dict]:
    """Re-check every downloaded file of ``name`` under ``root/name``: one row per file,
    {"file", "status"}: "ok (SHA-256)", "ok (MD5)", "ok (SHA-256 recorded at download)"
    (where the registry has no digest), "MISMATCH: ...", "missing", or "no digest recorded
    (sha256 <hex>)" for a file with neither."""
    if name not in download.DATASETS:
        raise ValueError(f"unknown or manual data set {name!r}; downloadable: "
                         f"{', '.join(sorted(download.DATASETS))}")
    rows = []
    for remote in download.DATASETS[name]:
        path = Path(root) / name / remote.filename
        if not path.is_file():
            status = "missing"
        elif remote.sha256 is not None:
            actual = sha256sum(path)
            status = ("ok (SHA-256)" if actual == remote.sha256.lower() else
                      f"MISMATCH: SHA-256 {actual}, expected {remote.sha256.lower()}")
        elif remote.md5 is not None:
            try:
                check_md5(path, remote.md5)
                status = "ok (MD5)"
            except download.ChecksumError as error:
                status = f"MISMATCH: MD5 {error.actual}, expected {error.expected}"
        elif (recorded := download.recorded_digest_path(path)).is_file():
            expected, actual = recorded.read_text().strip(), sha256sum(path)
            status = ("ok (SHA-256 recorded at download)" if actual == expected else
                      f"MISMATCH: SHA-256 {actual}, recorded at download {expected}")
        else:
            status = f"no digest recorded (sha256 {sha256sum(path)})"
        rows.append({"file": str(path), "status": status})
    return rows


def verified(rows: list[dict]) -> bool:
    """Whether ``verify``'s rows hold no missing or mismatching file."""
    return not any(row["status"] == "missing" or row["status"].startswith("MISMATCH")
                   for row in rows)

