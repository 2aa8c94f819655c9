import json
import os
import stat

import numpy as np
import pytest

from reporting.toolkit import markdown_table, save_image, tile_filters, write_html_report
from runs.folders import new_run_dir
from terafeat.atomic_files import atomic_write, load_array, save_array, save_json


def test_atomic_write_leaves_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "results.json"
    save_json(target, {"accuracy": 0.9})

    def failing(handle):
        handle.write(b"{half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, failing)
    assert json.loads(target.read_text()) == {"accuracy": 0.9}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no temporary left behind


def test_arrays_round_trip_and_corrupt_files_are_named(tmp_path):
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    path = save_array(tmp_path / "W.npy", array)
    np.testing.assert_array_equal(load_array(path), array)
    broken = tmp_path / "broken.npy"
    broken.write_bytes(path.read_bytes()[:40])
    with pytest.raises(ValueError, match="broken.npy"):
        load_array(broken)


def test_run_folders_are_never_shared(tmp_path):
    first = new_run_dir(tmp_path, "quickstart", "brave owl")
    second = new_run_dir(tmp_path, "quickstart", "brave owl")
    assert first != second and first.is_dir() and second.is_dir()
    assert first.parent == tmp_path / "quickstart" and "brave-owl" in first.name


def test_tile_filters_grid_and_html_report(tmp_path):
    W = np.random.default_rng(0).standard_normal((10, 16))
    grid = tile_filters(W, (4, 4), columns=5)
    assert grid.shape == (2 * 5 + 1, 5 * 5 + 1)
    assert grid.min() == 0.0 and grid.max() == 1.0
    np.testing.assert_allclose(grid[1:5, 1:5].min(), 0.0)  # each filter scaled to its own range
    colour = tile_filters(np.random.default_rng(1).random((4, 48)), (4, 4, 3))
    assert colour.shape == (11, 11, 3)
    figure = save_image(tmp_path / "filters.png", grid)
    page = write_html_report(tmp_path / "index.html", "A <run>", [
        ("Numbers", ["text & more", [{"name": "rica", "accuracy": 0.91234}], figure])])
    html = page.read_text()
    assert "A &lt;run&gt;" in html and "0.9123" in html and "data:image/png;base64," in html
    with pytest.raises(TypeError, match="list of dicts"):
        write_html_report(tmp_path / "bad.html", "t", [("rows", [{"name": "rica"}])])
    assert markdown_table([{"a": 1, "b": 0.5}]) == "| a | b |\n|---|---|\n| 1 | 0.5 |"
    with pytest.raises(ValueError, match="patch shape"):
        tile_filters(W, (3, 3))


@pytest.mark.parametrize("umask", [0o002, 0o022, 0o077])
def test_written_files_get_the_umask_mode_not_the_temporary_files(tmp_path, umask):
    previous = os.umask(umask)
    try:
        for path in (save_json(tmp_path / "a.json", {"x": 1}), save_array(tmp_path / "a.npy", np.ones(2))):
            assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask
    finally:
        os.umask(previous)
