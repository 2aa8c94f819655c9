import os

import numpy as np
import pytest

from runs.stage_cache import files_fingerprint, folder_fingerprint, run_cached
from terafeat.atomic_files import save_array


def _stage(calls):
    def compute(out):
        calls.append(out)
        return {"W": str(save_array(out / "W.npy", np.arange(4.0))), "n": 4}
    return compute


def test_hit_miss_and_paths_point_into_each_run(tmp_path):
    source = save_array(tmp_path / "input.npy", np.ones(3))
    calls = []
    first_run, second_run = tmp_path / "run1", tmp_path / "run2"
    first_run.mkdir(), second_run.mkdir()
    first, hit = run_cached(tmp_path / "cache", "train", {"k": 4}, {"X": source}, first_run,
                            _stage(calls))
    assert not hit and first["W"] == str(first_run / "W.npy") and first["n"] == 4
    second, hit = run_cached(tmp_path / "cache", "train", {"k": 4}, {"X": source}, second_run,
                             _stage(calls))
    assert hit and len(calls) == 1 and second["W"] == str(second_run / "W.npy")
    np.testing.assert_array_equal(np.load(second["W"]), np.arange(4.0))
    _, hit = run_cached(tmp_path / "cache", "train", {"k": 5}, {"X": source}, second_run,
                        _stage(calls))
    assert not hit  # another parameter
    save_array(source, np.zeros(3))
    _, hit = run_cached(tmp_path / "cache", "train", {"k": 4}, {"X": source}, second_run,
                        _stage(calls))
    assert not hit  # the same path with other content


def test_an_interrupted_stage_leaves_no_entry(tmp_path):
    def interrupted(out):
        save_array(out / "W.npy", np.arange(4.0))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_cached(tmp_path / "cache", "train", {}, {}, tmp_path, interrupted)
    assert list((tmp_path / "cache" / "train").iterdir()) == []  # not even a scratch folder
    calls = []
    _, hit = run_cached(tmp_path / "cache", "train", {}, {}, tmp_path, _stage(calls))
    assert not hit and len(calls) == 1
    entries = [p for p in (tmp_path / "cache" / "train").iterdir() if not p.name.startswith(".")]
    assert len(entries) == 1 and (entries[0] / "summary.json").is_file()


def test_data_fingerprints_follow_names_sizes_and_times(tmp_path):
    for name in ("a.jpg", "b.jpg"):
        (tmp_path / name).write_bytes(b"tile")
    files = [tmp_path / "a.jpg", tmp_path / "b.jpg"]
    before, folder = files_fingerprint(files), folder_fingerprint(tmp_path)
    assert files_fingerprint(reversed(files)) == before and folder == before
    stat = files[0].stat()
    os.utime(files[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    touched = files_fingerprint(files)
    assert touched != before
    files[1].write_bytes(b"tile!")  # another size
    assert files_fingerprint(files) not in (before, touched)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.jpg").write_bytes(b"")
    assert folder_fingerprint(tmp_path) != files_fingerprint(files)
    files[0].unlink()  # a listed file gone: a different key, not an error
    assert files_fingerprint(files) != folder_fingerprint(tmp_path)


def test_folder_outputs_are_linked_into_the_run(tmp_path):
    def compute(out):
        save_array(out / "features" / "train" / "00000.npy", np.ones(2))
        return {"features_dir": str(out / "features")}

    run1, run2 = tmp_path / "run1", tmp_path / "run2"
    run1.mkdir(), run2.mkdir()
    run_cached(tmp_path / "cache", "features", {}, {}, run1, compute)
    summary, hit = run_cached(tmp_path / "cache", "features", {}, {}, run2, compute)
    assert hit and summary["features_dir"] == str(run2 / "features")
    np.testing.assert_array_equal(np.load(run2 / "features" / "train" / "00000.npy"), np.ones(2))
