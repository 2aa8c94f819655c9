"""``terafeat data list|fetch|verify`` against a local HTTP server (no network)."""
import hashlib
import io
import zipfile

import pytest
from test_download import RangeHandler, server  # noqa: F401  (the server fixture)

from flows.cli import main
from terafeat.datasets.download import DATASETS, RemoteFile


class HeadRangeHandler(RangeHandler):
    """Also answers HEAD with the file's Content-Length (for ``data list --remote``)."""

    def do_HEAD(self):
        data = self.server.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()


@pytest.fixture()
def toy(server, monkeypatch):  # noqa: F811
    """Data set "toy": a zip (SHA-256 in the registry) and a text file (no digest), served
    locally."""
    server.RequestHandlerClass = HeadRangeHandler
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        zipped.writestr("toy/train/0/a.txt", b"a" * 1000)
    archive = buffer.getvalue()
    server.files.update({"/toy.zip": archive, "/notes.txt": b"notes\n"})
    monkeypatch.setitem(DATASETS, "toy", (
        RemoteFile(f"{server.url}/toy.zip", hashlib.sha256(archive).hexdigest()),
        RemoteFile(f"{server.url}/notes.txt", extract=False)))
    return server, archive


def test_list_fetch_verify(toy, tmp_path, capsys):
    http, archive = toy
    root = tmp_path / "data"
    assert main(["data", "list", "toy", "--root", str(root)]) == 0
    line = capsys.readouterr().out.splitlines()[1]
    assert line.split()[:3] == ["toy", "?", "no"] and f"{http.url}/toy.zip (+1 more files)" in line
    assert main(["data", "list", "toy", "--root", str(root), "--remote"]) == 0
    size = len(archive) + len(b"notes\n")
    assert f"{size / 1000:.1f} KB" in capsys.readouterr().out
    assert main(["data", "fetch", "toy", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "ok (SHA-256)" in out and "ok (SHA-256 recorded at download)" in out
    assert (root / "toy" / "toy" / "train" / "0" / "a.txt").read_bytes() == b"a" * 1000
    assert main(["data", "list", "--root", str(root)]) == 0
    listed = capsys.readouterr().out
    assert any(line.startswith("toy ") and " yes " in line for line in listed.splitlines())
    assert "cifar10" in listed and "hollywood2" in listed  # every known set, manual ones too
    assert main(["data", "verify", "toy", "--root", str(root)]) == 0
    capsys.readouterr()
    (root / "toy" / "toy.zip").write_bytes(archive[:-1] + b"!")  # corrupted since
    (root / "toy" / "notes.txt").write_bytes(b"notez\n")
    assert main(["data", "verify", "toy", "--root", str(root)]) == 1
    out = capsys.readouterr().out
    assert "MISMATCH: SHA-256" in out and "recorded at download" in out
    (root / "toy" / "notes.txt").unlink()
    assert main(["data", "verify", "toy", "--root", str(root)]) == 1
    assert "missing" in capsys.readouterr().out


def test_bad_names_and_failed_downloads_are_one_line_errors(toy, tmp_path, capsys):
    http, _ = toy
    assert main(["data", "fetch", "toyy", "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown data set 'toyy'; known: cifar10" in err
    assert main(["data", "fetch", "hollywood2", "--root", str(tmp_path)]) == 2
    assert "fetched by hand from https://www.di.ens.fr" in capsys.readouterr().err
    del http.files["/notes.txt"]
    assert main(["data", "fetch", "toy", "--root", str(tmp_path)]) == 1
    assert "notes.txt: HTTP 404" in capsys.readouterr().err
