"""Download (against a local HTTP server with Range support) and safe extraction."""
import hashlib
import io
import pickle
import re
import socket
import stat
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from terafeat.datasets.download import (
    DATASETS,
    ArchiveError,
    ChecksumError,
    DownloadError,
    RemoteFile,
    download,
    extract,
    fetch,
    sha256sum,
)

CHUNK = 16 * 1024


class RangeHandler(BaseHTTPRequestHandler):
    """Serves ``server.files`` (URL path -> bytes), honouring ``Range: bytes=N-``."""

    def do_GET(self):
        server = self.server
        requested_range = self.headers.get("Range")
        server.requests.append((self.path, requested_range))
        data = server.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        start = 0
        if requested_range and server.honour_range:
            start = int(re.fullmatch(r"bytes=(\d+)-", requested_range)[1])
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        if server.send_length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if server.cut_after is not None:  # announce the whole body, send part, hang up
            body, server.cut_after = body[:server.cut_after], None
            self.close_connection = True
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture()
def server():
    """A local HTTP server; set ``.files``, ``.honour_range``, ``.cut_after``, ``.send_length``;
    read ``.requests``."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), RangeHandler)
    httpd.files, httpd.requests, httpd.honour_range, httpd.cut_after = {}, [], True, None
    httpd.send_length = True
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def make_zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        for name, data in members.items():
            zipped.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture()
def archive(server):
    """A ~200 kB zip of random bytes (incompressible), served at /set.zip; returns its bytes."""
    rng = np.random.default_rng(0)
    data = make_zip({"set/a.bin": rng.bytes(120_000), "set/sub/b.bin": rng.bytes(80_000)})
    server.files["/set.zip"] = data
    return data


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_full_download_then_extract(server, archive, tmp_path):
    calls = []
    path = download(f"{server.url}/set.zip", tmp_path / "set.zip", digest(archive),
                    progress=lambda done, total: calls.append((done, total)), chunk_size=CHUNK)
    assert path.read_bytes() == archive and not (tmp_path / "set.zip.part").exists()
    assert server.requests == [("/set.zip", None)]
    assert calls[-1] == (len(archive), len(archive)) and len(calls) > 2
    assert all(a[0] < b[0] for a, b in zip(calls, calls[1:]))
    files = extract(path, tmp_path / "out")
    assert files == [tmp_path / "out/set/a.bin", tmp_path / "out/set/sub/b.bin"]
    assert [f.stat().st_size for f in files] == [120_000, 80_000]


def test_resumes_a_partial_part_file(server, archive, tmp_path):
    (tmp_path / "set.zip.part").write_bytes(archive[:100_000])
    calls = []
    download(f"{server.url}/set.zip", tmp_path / "set.zip", digest(archive),
             progress=lambda done, total: calls.append(done), chunk_size=CHUNK)
    assert server.requests == [("/set.zip", "bytes=100000-")]
    assert (tmp_path / "set.zip").read_bytes() == archive
    assert calls[0] > 100_000


def test_interrupted_download_keeps_part_and_resumes(server, archive, tmp_path):
    server.cut_after = 50_000
    with pytest.raises(DownloadError, match="call again to resume") as caught:
        download(f"{server.url}/set.zip", tmp_path, digest(archive), chunk_size=CHUNK)
    assert caught.value.url == f"{server.url}/set.zip"
    assert (tmp_path / "set.zip.part").stat().st_size == 50_000
    assert not (tmp_path / "set.zip").exists()
    path = download(f"{server.url}/set.zip", tmp_path, digest(archive), chunk_size=CHUNK)
    assert path == tmp_path / "set.zip" and path.read_bytes() == archive
    assert server.requests[-1] == ("/set.zip", "bytes=50000-")


@pytest.mark.parametrize("part, honour_range, ranges", [
    # a server without Range support answers 200 with the whole file: use it
    (b"x" * 1000, False, ["bytes=1000-"]),
    # a .part longer than the file: 416, ask again for all of it
    (b"x" * 300_000, True, ["bytes=300000-", None]),
])
def test_starts_over_when_the_part_cannot_be_continued(server, archive, tmp_path, part,
                                                       honour_range, ranges):
    server.honour_range = honour_range
    (tmp_path / "set.zip.part").write_bytes(part)
    path = download(f"{server.url}/set.zip", tmp_path / "set.zip", digest(archive))
    assert path.read_bytes() == archive
    assert [requested for _, requested in server.requests] == ranges


def test_checksum_mismatch_leaves_no_file(server, archive, tmp_path):
    wrong = "0" * 64
    with pytest.raises(ChecksumError) as caught:
        download(f"{server.url}/set.zip", tmp_path / "set.zip", wrong)
    message = str(caught.value)
    assert str(tmp_path / "set.zip") in message and wrong in message and digest(archive) in message
    assert list(tmp_path.iterdir()) == []


def test_existing_file_is_kept_and_checked(server, archive, tmp_path):
    dest = tmp_path / "set.zip"
    dest.write_bytes(archive)
    assert download(f"{server.url}/set.zip", dest, digest(archive).upper()) == dest
    assert download(f"{server.url}/set.zip", dest) == dest
    assert server.requests == []
    with pytest.raises(ChecksumError, match="delete it to download again"):
        download(f"{server.url}/set.zip", dest, "f" * 64)


def test_http_and_network_errors_name_the_url(server, tmp_path):
    with pytest.raises(DownloadError, match=r"/absent.zip: HTTP 404"):
        download(f"{server.url}/absent.zip", tmp_path)
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(DownloadError, match="cannot connect"):
        download(f"http://127.0.0.1:{port}/set.zip", tmp_path, timeout=5)
    assert list(tmp_path.iterdir()) == []


def test_errors_pickle():
    for error in (DownloadError("http://x/y", "HTTP 500"), ChecksumError("a", "1", "2", "hint"),
                  ArchiveError("a.zip", "bad")):
        assert str(pickle.loads(pickle.dumps(error))) == str(error)


def make_tar(tmp_path, add) -> str:
    path = tmp_path / "evil.tar"
    with tarfile.open(path, "w") as tarred:
        add(tarred)
    return path


def add_file(tarred, name, data=b"x"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tarred.addfile(info, io.BytesIO(data))


def add_link(tarred, name, target):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    tarred.addfile(info)


@pytest.mark.parametrize("members", [{"../evil.txt": b"x"}, {"/abs/evil.txt": b"x"},
                                     {"ok.txt": b"x", "a/../../evil.txt": b"x"}])
def test_zip_traversal_is_refused(tmp_path, members):
    path = tmp_path / "evil.zip"
    path.write_bytes(make_zip(members))
    with pytest.raises(ArchiveError, match="outside") as caught:
        extract(path, tmp_path / "out")
    assert str(path) in str(caught.value)
    assert list((tmp_path / "out").iterdir()) == []  # checked before anything is written


@pytest.mark.parametrize("add", [
    lambda tarred: add_file(tarred, "../evil.txt"),
    lambda tarred: (add_file(tarred, "ok.txt"), add_link(tarred, "link", "/etc/passwd")),
    lambda tarred: add_link(tarred, "link", "../../outside"),
])
def test_tar_traversal_and_outside_links_are_refused(tmp_path, add):
    path = make_tar(tmp_path, add)
    with pytest.raises(ArchiveError, match="unsafe member|outside"):
        extract(path, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_tar_absolute_names_are_refused_not_rerooted(tmp_path):
    path = make_tar(tmp_path, lambda tarred: (add_file(tarred, "ok.txt"),
                                              add_file(tarred, "/abs/evil.txt")))
    with pytest.raises(ArchiveError, match="'/abs/evil.txt' would be written outside"):
        extract(path, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []


def test_zip_links_and_files_used_as_folders_are_refused(tmp_path):
    link = zipfile.ZipInfo("link")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        zipped.writestr("ok.txt", b"x")
        zipped.writestr(link, b"/etc")
        zipped.writestr("link/passwd", b"x")
    (tmp_path / "links.zip").write_bytes(buffer.getvalue())
    (tmp_path / "clash.zip").write_bytes(make_zip({"a": b"x", "a/b.txt": b"y"}))
    for name, problem in [("links.zip", "'link' is a symbolic link"),
                          ("clash.zip", "'a' is a file and also the folder of 'a/b.txt'")]:
        with pytest.raises(ArchiveError, match=problem):
            extract(tmp_path / name, tmp_path / "out")
        assert list((tmp_path / "out").iterdir()) == []


def test_a_cut_download_without_a_length_is_never_renamed_into_place(server, archive,
                                                                      tmp_path):
    server.send_length, server.cut_after = False, 50_000  # the server hangs up early
    dest = tmp_path / "set.zip"
    with pytest.raises(DownloadError, match="after 50000 bytes and the server has more"):
        download(f"{server.url}/set.zip", dest)
    assert not dest.exists()
    assert download(f"{server.url}/set.zip", dest).read_bytes() == archive  # resumed
    # no digest was given: the one of the whole file is recorded and checked from then on
    assert (tmp_path / ".set.zip.sha256").read_text().strip() == digest(archive)
    dest.write_bytes(archive[:-1] + b"!")
    with pytest.raises(ChecksumError):
        download(f"{server.url}/set.zip", dest)


def test_a_download_that_cannot_be_checked_is_refused(server, archive, tmp_path):
    server.send_length, server.honour_range = False, False
    with pytest.raises(DownloadError, match="neither the file's length nor byte ranges"):
        download(f"{server.url}/set.zip", tmp_path / "set.zip")
    assert not (tmp_path / "set.zip").exists()


def test_extract_tar_gz_and_unsupported_formats(tmp_path):
    path = tmp_path / "set.tar.gz"
    with tarfile.open(path, "w:gz") as tarred:
        add_file(tarred, "set/clip.avi", b"abc")
    assert extract(path, tmp_path / "out") == [tmp_path / "out/set/clip.avi"]
    (tmp_path / "UCF101.rar").write_bytes(b"Rar!\x1a\x07\x00" + bytes(100))
    with pytest.raises(ArchiveError, match="RAR archives are not supported"):
        extract(tmp_path / "UCF101.rar", tmp_path / "out")
    (tmp_path / "junk.zip").write_bytes(bytes(range(256)))
    with pytest.raises(ArchiveError, match="junk.zip: not a zip or tar"):
        extract(tmp_path / "junk.zip", tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="absent.zip"):
        extract(tmp_path / "absent.zip", tmp_path / "out")


def test_fetch_downloads_and_unpacks_once(server, archive, tmp_path, monkeypatch):
    server.files["/notes.txt"] = b"notes\n"
    monkeypatch.setitem(DATASETS, "toy", (RemoteFile(f"{server.url}/set.zip", digest(archive)),
                                          RemoteFile(f"{server.url}/notes.txt", extract=False)))
    folder = fetch("toy", tmp_path)
    assert folder == tmp_path / "toy"
    assert (folder / "set/sub/b.bin").stat().st_size == 80_000
    assert (folder / "notes.txt").read_bytes() == b"notes\n"
    n_requests = len(server.requests)
    (folder / "set/a.bin").unlink()  # unpacked once: a second fetch does not restore it
    fetch("toy", tmp_path)
    assert len(server.requests) == n_requests and not (folder / "set/a.bin").exists()
    with pytest.raises(ValueError, match="unknown data set 'nope'"):
        fetch("nope", tmp_path)


def test_registry_lists_kth_and_ucf101():
    assert [f.filename for f in DATASETS["kth"]] == [
        "boxing.zip", "handclapping.zip", "handwaving.zip", "jogging.zip", "running.zip",
        "walking.zip", "00sequences.txt"]
    assert [f.filename for f in DATASETS["ucf101"]] == [
        "UCF101.rar", "UCF101TrainTestSplits-RecognitionTask.zip"]
    for remote in (f for files in DATASETS.values() for f in files):
        assert remote.url.startswith("https://")
        assert remote.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", remote.sha256)
        assert not remote.filename.endswith(".rar") or not remote.extract


def test_sha256sum(tmp_path):
    (tmp_path / "f").write_bytes(b"abc" * 1000)
    assert sha256sum(tmp_path / "f", chunk_size=7) == digest(b"abc" * 1000)
