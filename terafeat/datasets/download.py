"""Downloading data sets: resumable, atomic, checksummed; safe archive extraction.

A download streams into ``<dest>.part``, continues a partial ``.part`` with an
HTTP Range request, checks the SHA-256 digest when one is known, and only then
renames the file to ``dest``: a file at ``dest`` is always complete.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit
from urllib.request import Request, urlopen

from terafeat.datasets.kth import KTH_ACTIONS

Progress = Callable[[int, "int | None"], None]
"""progress(bytes_done, bytes_total): total is None when the server does not say."""

CHUNK_SIZE = 1 << 20  # bytes per read, 1 MiB


class DownloadError(OSError):
    """A download that failed: ``url`` names it, ``problem`` says why."""

    def __init__(self, url: str, problem: str):
        self.url = url
        self.problem = problem
        super().__init__(f"{url}: {problem}")

    def __reduce__(self):
        return type(self), (self.url, self.problem)


class ChecksumError(ValueError):
    """A file whose SHA-256 digest is not the expected one."""

    def __init__(self, path, expected: str, actual: str, hint: str = ""):
        self.path = str(path)
        self.expected = expected
        self.actual = actual
        self.hint = hint
        super().__init__(f"{self.path}: SHA-256 mismatch, expected {expected}, got {actual}"
                         + (f"; {hint}" if hint else ""))

    def __reduce__(self):
        return type(self), (self.path, self.expected, self.actual, self.hint)


class ArchiveError(ValueError):
    """An archive that cannot be extracted safely: ``archive`` names it, ``problem`` says why."""

    def __init__(self, archive, problem: str):
        self.archive = str(archive)
        self.problem = problem
        super().__init__(f"{self.archive}: {problem}")

    def __reduce__(self):
        return type(self), (self.archive, self.problem)


@dataclass(frozen=True)
class RemoteFile:
    """One file of a data set. sha256: hex digest, None where we have not verified one.

    extract: whether :func:`fetch` unpacks it after download.
    """

    url: str
    sha256: str | None = None
    extract: bool = True

    @property
    def filename(self) -> str:
        return PurePosixPath(urlsplit(self.url).path).name


# Digests are None: these servers were out of reach when this registry was
# written, and a digest copied from anywhere but the file itself is a guess.
# Fill them in from a verified download (sha256sum) to make fetch() check them.
DATASETS: dict[str, tuple[RemoteFile, ...]] = {
    # Schuldt, Laptev & Caputo (ICPR 2004): one zip per action, 599 AVIs in all,
    # plus the frame ranges of the 2391 sub-sequences.
    "kth": tuple(RemoteFile(f"https://www.csc.kth.se/cvap/actions/{action}.zip")
                 for action in KTH_ACTIONS)
    + (RemoteFile("https://www.csc.kth.se/cvap/actions/00sequences.txt", extract=False),),
    # Soomro, Zamir & Shah (2012): the clips come as RAR, which the Python
    # standard library cannot read; unpack UCF101.rar with unrar or 7z.
    "ucf101": (
        RemoteFile("https://www.crcv.ucf.edu/data/UCF101/UCF101.rar", extract=False),
        RemoteFile("https://www.crcv.ucf.edu/data/UCF101/"
                   "UCF101TrainTestSplits-RecognitionTask.zip"),
    ),
}


def sha256sum(path, chunk_size: int = CHUNK_SIZE) -> str:
    """Hex SHA-256 digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def _request(url: str, offset: int, timeout: float):
    """An open response for ``url`` from byte ``offset`` on, or DownloadError."""
    headers = {"Range": f"bytes={offset}-"} if offset else {}
    try:
        return urlopen(Request(url, headers=headers), timeout=timeout)
    except HTTPError as error:
        if error.code == 416 and offset:  # .part is as long as the file, or longer
            return None
        raise DownloadError(url, f"HTTP {error.code} {error.reason}") from error
    except (URLError, OSError) as error:
        raise DownloadError(url, f"cannot connect: {getattr(error, 'reason', error)}") from error


def _resumes_at(response, offset: int) -> bool:
    """Whether a response continues the file at ``offset`` (a 206 with a matching range)."""
    content_range = response.headers.get("Content-Range", "")
    return response.status == 206 and content_range.startswith(f"bytes {offset}-")


def download(url: str, dest, sha256: str | None = None, *, progress: Progress | None = None,
             timeout: float = 60.0, chunk_size: int = CHUNK_SIZE) -> Path:
    """Download ``url`` to ``dest`` (a file path, or an existing folder to put it in).

    An existing ``dest`` is returned as it is (after a checksum check when
    ``sha256`` is given): it can only have come from a finished download.
    A partial ``<dest>.part`` is continued with an HTTP Range request; a server
    that ignores the range sends the whole file, and the download starts over.
    progress(bytes_done, bytes_total) is called after every chunk.

    Raises DownloadError for HTTP and network failures (a partial ``.part``
    stays, so calling again resumes), ChecksumError if the digest differs
    from ``sha256`` (the ``.part`` is deleted and no ``dest`` is written).
    """
    dest = Path(dest)
    if dest.is_dir():
        dest = dest / RemoteFile(url).filename
    if dest.exists():
        if sha256 is not None and (actual := sha256sum(dest)) != sha256.lower():
            raise ChecksumError(dest, sha256.lower(), actual, "delete it to download again")
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.exists() else 0
    response = _request(url, offset, timeout)
    if offset and (response is None or not _resumes_at(response, offset)):
        if response is None or response.status != 200:  # 200: the whole file is coming
            if response is not None:
                response.close()
            response = _request(url, 0, timeout)
        offset = 0
    digest = hashlib.sha256()
    if offset:
        with open(part, "rb") as file:
            while chunk := file.read(chunk_size):
                digest.update(chunk)
    length = response.headers.get("Content-Length")
    total = offset + int(length) if length is not None else None
    done = offset
    with response, open(part, "ab" if offset else "wb") as file:
        try:
            while chunk := response.read(chunk_size):
                file.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
        except (OSError, http.client.HTTPException) as error:
            raise DownloadError(url, f"interrupted after {done} bytes ({error!r}); "
                                     f"call again to resume from {part}") from error
    if total is not None and done < total:
        raise DownloadError(url, f"connection closed after {done} of {total} bytes; "
                                 f"call again to resume from {part}")
    if sha256 is not None and digest.hexdigest() != sha256.lower():
        part.unlink()
        raise ChecksumError(dest, sha256.lower(), digest.hexdigest())
    os.replace(part, dest)
    return dest


def _check_zip_member(archive, name: str, dest: Path) -> None:
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if not parts or parts[0] == "/" or ".." in parts or ":" in parts[0]:
        raise ArchiveError(archive, f"member {name!r} would be written outside {dest}")


def extract(archive, dest) -> list[Path]:
    """Unpack a zip or tar archive (any compression) into folder ``dest``.

    Every member is checked before anything is written: absolute names, '..'
    components, links pointing outside ``dest`` and device files raise
    ArchiveError naming the archive and the member. RAR is not supported.
    Returns the paths of the regular files written, in archive order.
    """
    archive, dest = Path(archive), Path(dest)
    if not archive.is_file():
        raise FileNotFoundError(f"{archive}: archive not found")
    dest.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zipped:
            members = zipped.infolist()
            for member in members:
                _check_zip_member(archive, member.filename, dest)
            zipped.extractall(dest)
        return [dest / member.filename for member in members if not member.is_dir()]
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tarred:
            members = []
            for member in tarred.getmembers():
                try:  # the filter extractall applies, run first so nothing is half-written
                    members.append(tarfile.data_filter(member, str(dest)))
                except tarfile.FilterError as error:
                    problem = f"unsafe member {member.name!r}: {error}"
                    raise ArchiveError(archive, problem) from error
            tarred.extractall(dest, filter="data")
        return [dest / member.name for member in members if member.isfile()]
    with open(archive, "rb") as file:
        is_rar = file.read(4) == b"Rar!"
    raise ArchiveError(archive, "RAR archives are not supported: unpack with unrar or 7z"
                       if is_rar else "not a zip or tar archive")


def fetch(name: str, root, progress: Progress | None = None) -> Path:
    """Download (and unpack) every file of data set ``name`` of DATASETS into ``root/name``.

    Safe to call again: finished downloads are kept, partial ones resumed,
    and an archive is unpacked once (a ``.<archive>.extracted`` marker
    records it). Returns the data set's folder.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; known: {sorted(DATASETS)}")
    folder = Path(root) / name
    for remote in DATASETS[name]:
        archive = download(remote.url, folder / remote.filename, remote.sha256, progress=progress)
        marker = folder / f".{remote.filename}.extracted"
        if remote.extract and not marker.exists():
            extract(archive, folder)
            marker.touch()
    return folder
