"""Downloading data sets: resumable, atomic, checksummed; safe archive extraction.

A download streams into ``<dest>.part``, continues a partial ``.part`` with an
HTTP Range request, checks the SHA-256 digest when one is known, and only then
renames the file to ``dest``: a file at ``dest`` is always complete. A server
that sends no length has its end confirmed by a Range request from the last
byte (nothing more to send), or the download is refused. A file downloaded
without a known digest gets its SHA-256 recorded beside it
(``.<name>.sha256``), and later calls check it. Where a publisher gives only
an MD5 digest, :func:`fetch` checks it after download.
"""
from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import shutil
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit
from urllib.request import Request, urlopen

from terafeat.atomic_files import atomic_write
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
    """A file whose digest (SHA-256, or ``algorithm``) is not the expected one."""

    def __init__(self, path, expected: str, actual: str, hint: str = "",
                 algorithm: str = "SHA-256"):
        self.path = str(path)
        self.expected = expected
        self.actual = actual
        self.hint = hint
        self.algorithm = algorithm
        super().__init__(f"{self.path}: {algorithm} mismatch, expected {expected}, got {actual}"
                         + (f"; {hint}" if hint else ""))

    def __reduce__(self):
        return type(self), (self.path, self.expected, self.actual, self.hint, self.algorithm)


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

    extract: whether :func:`fetch` unpacks it after download. md5: the
    publisher's hex MD5 digest, for files that have no known SHA-256.
    """

    url: str
    sha256: str | None = None
    extract: bool = True
    md5: str | None = None

    @property
    def filename(self) -> str:
        return PurePosixPath(urlsplit(self.url).path).name


#: PatchCamelyon on Zenodo, (split, part) -> SHA-256 of the .h5.gz.
PCAM_SHA256 = {
    ("train", "x"): "d619e741468a7ab35c7e4a75e6821b7e7e6c9411705d45708f2a0efc8960656c",
    ("train", "y"): "b74126d2c01b20d3661f9b46765d29cf4e4fba6faba29c8e0d09d406331ab75a",
    ("valid", "x"): "f82ee1670d027b4ec388048d9eabc2186b77c009655dae76d624c0ecb053ccb2",
    ("valid", "y"): "ce1ae30f08feb468447971cfd0472e7becd0ad96d877c64120c72571439ae48c",
    ("test", "x"): "79174c2201ad521602a5888be8f36ee10875f37403dd3f2086caf2182ef87245",
    ("test", "y"): "0a522005fccc8bbd04c5a117bfaf81d8da2676f03a29d7499f71d0a0bd6068ef",
}

# SHA-256 digests are those TensorFlow Datasets records for the same addresses
# (tensorflow_datasets/url_checksums/<name>.txt; TFDS checks every download
# against them).  Where neither TFDS nor the publisher gives one, the digest is
# None and ``terafeat data verify`` prints the file's own SHA-256 to record.
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
                   "UCF101TrainTestSplits-RecognitionTask.zip",
                   sha256="5c0d1a53b8ed364a2ac830a73f405e51bece7d98ce1254fd19ed4a36b224bd27"),
    ),
    # Veeling et al. (MICCAI 2018), PatchCamelyon: 96x96 tiles in HDF5, gzipped;
    # extract() decompresses each .h5.gz beside itself.
    # (The publisher's README gives MD5s with its valid and test rows the other
    # way round from what Zenodo serves under these names; the SHA-256s are
    # per address.)
    "pcam": tuple(RemoteFile(f"https://zenodo.org/records/2546921/files/"
                             f"camelyonpatch_level_2_split_{split}_{part}.h5.gz?download=1",
                             sha256=digest)
                  for (split, part), digest in PCAM_SHA256.items()),
    # Kather et al. (Sci. Rep. 2016): 5000 colorectal tissue tiles, 8 classes of 625.
    "kather2016": (RemoteFile("https://zenodo.org/records/53169/files/"
                              "Kather_texture_2016_image_tiles_5000.zip?download=1",
                              sha256="936d0b95ae0f04f1f7b18a2b7e8c5577"
                                     "6c3e887d102f645bcee752d1a6626a32"),),
    # Imagenette (fast.ai): 10 easy ImageNet classes, shorter side 160 pixels.
    "imagenette": (RemoteFile("https://s3.amazonaws.com/fast-ai-imageclas/imagenette2-160.tgz",
                              sha256="88daccb09b6fce93f45e6c09ddeb269c"
                                     "ce705549e6bff322092a2a5a11489863"),),
    # Krizhevsky (2009), the binary versions; the MD5 is the one the publisher's page gives.
    "cifar10": (RemoteFile("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
                           md5="c32a1d4ab5d03f1284b67883e8d87530"),),
    "cifar100": (RemoteFile("https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
                            sha256="58a81ae192c23a4be8b1804d68e518ed"
                                   "807d710a4eb253b1f2a199162a40d8ec"),),
}


def sha256sum(path, chunk_size: int = CHUNK_SIZE) -> str:
    """Hex SHA-256 digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def recorded_digest_path(path) -> Path:
    """Where :func:`download` records the SHA-256 of a file fetched without a known digest:
    ``.<name>.sha256`` beside it."""
    path = Path(path)
    return path.with_name(f".{path.name}.sha256")


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
    recorded = recorded_digest_path(dest)
    if sha256 is None and recorded.exists():
        sha256 = recorded.read_text().strip()
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
    if total is None:
        _check_complete(url, done, timeout, part)
    elif done < total:
        raise DownloadError(url, f"connection closed after {done} of {total} bytes; "
                                 f"call again to resume from {part}")
    if sha256 is not None and digest.hexdigest() != sha256.lower():
        part.unlink()
        raise ChecksumError(dest, sha256.lower(), digest.hexdigest())
    if sha256 is None:
        atomic_write(recorded, lambda file: file.write(f"{digest.hexdigest()}\n".encode()))
    os.replace(part, dest)
    return dest


def _check_complete(url: str, done: int, timeout: float, part: Path) -> None:
    """DownloadError unless the file at ``url``, which sent ``done`` bytes and no length,
    has nothing more: asked for again from byte ``done``, a whole file answers HTTP 416."""
    if done:
        response = _request(url, done, timeout)
        if response is None:
            return
        with response:
            if _resumes_at(response, done):
                raise DownloadError(url, f"connection closed after {done} bytes and the "
                                         f"server has more; call again to resume from {part}")
            length = response.headers.get("Content-Length")
            if response.status == 200 and length is not None and int(length) == done:
                return
    raise DownloadError(url, "the server sends neither the file's length nor byte ranges, "
                             "so a cut download cannot be told from a whole one: give the "
                             "entry a sha256")


def check_md5(path, md5: str) -> None:
    """Raise ChecksumError if the MD5 digest of file ``path`` is not ``md5`` (hex)."""
    with open(path, "rb") as file:
        actual = hashlib.file_digest(file, "md5").hexdigest()
    if actual != md5.lower():
        raise ChecksumError(path, md5.lower(), actual, "delete it to download again", "MD5")


def gunzip(archive, dest) -> Path:
    """Decompress gzip file ``archive`` (``name.gz``) to ``dest/name``, streaming, atomically."""
    archive, dest = Path(archive), Path(dest)
    if archive.suffix != ".gz":
        raise ArchiveError(archive, "a gzip-compressed file must be named <name>.gz")
    target = dest / archive.stem
    part = target.with_name(target.name + ".part")
    try:
        with gzip.open(archive) as source, open(part, "wb") as file:
            shutil.copyfileobj(source, file, CHUNK_SIZE)
    except (OSError, EOFError, zlib.error) as error:
        part.unlink(missing_ok=True)
        raise ArchiveError(archive, f"corrupt gzip data: {error}") from error
    os.replace(part, target)
    return target


def _check_member_name(archive, name: str, dest: Path) -> None:
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if not parts or parts[0] == "/" or ".." in parts or ":" in parts[0]:
        raise ArchiveError(archive, f"member {name!r} would be written outside {dest}")


def _check_zip_members(archive, members: list[zipfile.ZipInfo], dest: Path) -> None:
    """Names inside ``dest``, no symbolic links, no file that is also a folder."""
    files = set()
    for member in members:
        _check_member_name(archive, member.filename, dest)
        if stat.S_ISLNK(member.external_attr >> 16):
            raise ArchiveError(archive, f"member {member.filename!r} is a symbolic link")
        if not member.is_dir():
            files.add(member.filename)
    for member in members:
        for folder in PurePosixPath(member.filename).parents:
            if str(folder) in files:
                raise ArchiveError(archive, f"member {str(folder)!r} is a file and also the "
                                            f"folder of {member.filename!r}")


def extract(archive, dest) -> list[Path]:
    """Unpack a zip or tar archive (any compression) into folder ``dest``.

    Every member is checked before anything is written: absolute names, '..'
    components, links pointing outside ``dest`` (in a zip: any symbolic link,
    and a file that is also a folder) and device files raise ArchiveError
    naming the archive and the member. A gzip-compressed single
    file (``x.h5.gz``) is decompressed to ``dest/x.h5``. RAR is not supported.
    Returns the paths of the regular files written, in archive order.
    """
    archive, dest = Path(archive), Path(dest)
    if not archive.is_file():
        raise FileNotFoundError(f"{archive}: archive not found")
    dest.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zipped:
            members = zipped.infolist()
            _check_zip_members(archive, members, dest)
            try:
                zipped.extractall(dest)
            except (OSError, zipfile.BadZipFile, zlib.error) as error:
                raise ArchiveError(archive, f"cannot extract: {error}") from error
        return [dest / member.filename for member in members if not member.is_dir()]
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tarred:
            members = []
            for member in tarred.getmembers():
                _check_member_name(archive, member.name, dest)
                try:  # the filter extractall applies, run first so nothing is half-written
                    members.append(tarfile.data_filter(member, str(dest)))
                except tarfile.FilterError as error:
                    problem = f"unsafe member {member.name!r}: {error}"
                    raise ArchiveError(archive, problem) from error
            tarred.extractall(dest, filter="data")
        return [dest / member.name for member in members if member.isfile()]
    with open(archive, "rb") as file:
        magic = file.read(4)
    if magic.startswith(b"\x1f\x8b"):
        return [gunzip(archive, dest)]
    raise ArchiveError(archive, "RAR archives are not supported: unpack with unrar or 7z"
                       if magic == b"Rar!" else "not a zip or tar archive, nor gzip-compressed")


def fetch(name: str, root, progress: Progress | None = None) -> Path:
    """Download (and unpack) every file of data set ``name`` of DATASETS into ``root/name``.

    Safe to call again: finished downloads are kept, partial ones resumed,
    and an archive is unpacked once (a ``.<archive>.extracted`` marker
    records it). A file with an ``md5`` is checked after download (ChecksumError
    if it differs). Returns the data set's folder.
    """
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; known: {sorted(DATASETS)}")
    folder = Path(root) / name
    for remote in DATASETS[name]:
        archive = download(remote.url, folder / remote.filename, remote.sha256, progress=progress)
        if remote.md5 is not None:
            check_md5(archive, remote.md5)
        marker = folder / f".{remote.filename}.extracted"
        if remote.extract and not marker.exists():
            extract(archive, folder)
            marker.touch()
    return folder
