"""``terafeat task``: one stage alone, on a past run's inputs, with no Prefect server."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from flows.cli import main
from flows.debug import run_stage
from flows.quickstart import QuickstartParams
from terafeat.patches import sample_patches
from terafeat.storage import save_array, save_json


@pytest.fixture
def past_run(tmp_path):
    """A quickstart run folder as a finished run leaves it (the files the stages read)."""
    run = tmp_path / "reports" / "quickstart" / "20260101-000000-old-run"
    run.mkdir(parents=True)
    rng = np.random.default_rng(0)
    save_array(run / "patches.npy", sample_patches([rng.random((64, 64))], 2000, 8, random_state=0))
    params = QuickstartParams(n_features=32, max_iter=5, n_patches=2000)
    save_json(run / "results.json", {"flow": "quickstart", "parameters": params.model_dump(mode="json")})
    return run


def _terafeat(*args, cwd):
    # an API address where nothing listens: any attempt to reach a server would fail
    env = {**os.environ, "PREFECT_API_URL": "http://127.0.0.1:9/api"}
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=300)


def test_stages_run_alone_without_a_server_and_leave_the_run_untouched(past_run, tmp_path):
    before = sorted(p.name for p in past_run.iterdir())
    done = _terafeat("task", "whiten", "--run", str(past_run), "--set", "whitening_eps=0.01",
                     "--output-root", str(tmp_path / "debug"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert str(past_run / "patches.npy") in done.stdout
    whitened_dir = next((tmp_path / "debug" / "tasks" / "whiten").iterdir())
    assert {p.name for p in whitened_dir.iterdir()} == {"whitened.npy", "whitener.npz"}
    with np.load(whitened_dir / "whitener.npz") as whitener:
        assert float(whitener["eps"]) == 0.01  # the override, not the run's 1e-4
    # the next stage on the output of the first: it needs results.json there too
    (whitened_dir / "results.json").write_text((past_run / "results.json").read_text())
    done = _terafeat("task", "train-rica", "--run", str(whitened_dir), "--output-root",
                     str(tmp_path / "debug"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    trained = next((tmp_path / "debug" / "tasks" / "train-rica").iterdir())
    assert np.load(trained / "W.npy").shape == (32, 64)
    summary = json.loads(done.stdout[done.stdout.index("{"):])
    assert summary["n_iter"] == 5
    assert sorted(p.name for p in past_run.iterdir()) == before


def test_bad_requests_name_the_problem(past_run, tmp_path):
    with pytest.raises(ValueError, match="unknown stage 'whitten'; stages: .*evaluate-faces, .*whiten"):
        run_stage("whitten", past_run, {}, tmp_path)
    with pytest.raises(ValueError, match="needs whitened.npy"):
        run_stage("train-rica", past_run, {}, tmp_path)
    with pytest.raises(ValueError, match="no results.json"):
        run_stage("whiten", tmp_path, {}, tmp_path)
    with pytest.raises(ValueError, match="max_iter"):
        run_stage("whiten", past_run, {"max_iter": -1}, tmp_path)
    done = _terafeat("task", "whiten", "--run", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 2 and "no results.json" in done.stderr


def _adopt(out, run):
    """Link a stage's outputs into the run folder, as the flow would have them."""
    for path in out.rglob("*"):
        if path.is_file():
            target = run / path.relative_to(out)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(path, target)


def test_histology_stages_chain_on_a_run_folder_and_take_options(tmp_path, capsys):
    from PIL import Image

    from flows.histology import HistologyParams
    from tasks.tiles import list_tiles

    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for label in ("0", "1"):
            (tmp_path / "tiles" / split / label).mkdir(parents=True)
            for i in range(4):
                tile = rng.integers(0, 255, (16, 16, 3), np.uint8) // (1 + int(label))
                Image.fromarray(tile).save(tmp_path / "tiles" / split / label / f"{i}.png")
    run = tmp_path / "reports" / "histology" / "20260101-000000-old"
    run.mkdir(parents=True)
    tiles = list_tiles.fn("class_folders", str(tmp_path / "tiles"), str(run), None, 0)
    params = HistologyParams(dataset="class_folders", data_root=str(tmp_path / "tiles"),
                             n_patches=400, patch_size=4, patch_tiles=8, n_features=8,
                             group_size=4, max_iter=3, stride=4, pixel_size=4, batch_size=5,
                             colour_mode="rgb")
    save_json(run / "results.json", {"flow": "histology", "parameters": params.model_dump(mode="json"),
                                     "tiles": tiles})
    debug = tmp_path / "debug"
    for stage in ("sample-tile-patches", "whiten", "train-rica", "extract-tile-features"):
        out, result = run_stage(stage, run, {}, debug)
        _adopt(out, run)
    assert np.load(run / "patches.npy").shape == (400, 4 * 4 * 3)
    assert np.load(run / "W.npy").shape == (8, 48)
    assert result["n_tiles"] == {"train": 8, "test": 8}
    assert (run / "features" / "learned_pooled" / "train-00000.npy").is_file()
    # the CLI's --KEY VALUE form: whiten again with another eps
    earlier = set((debug / "tasks" / "whiten").iterdir())
    assert main(["task", "whiten", "--run", str(run), "--whitening-eps", "0.5",
                 "--output-root", str(debug)]) == 0
    out = capsys.readouterr().out
    assert f"read:\n  {run / 'patches.npy'}\n" in out and "whitener.npz  (" in out
    [again] = set((debug / "tasks" / "whiten").iterdir()) - earlier
    with np.load(again / "whitener.npz") as whitener:
        assert float(whitener["eps"]) == 0.5


def test_action_stages_chain_on_a_run_folder(tmp_path):
    from flows.action_recognition import ActionRecognitionParams
    from tasks.video import scan_action_videos
    from video_fixtures import write_video

    for name in ("right", "left"):
        (tmp_path / "clips" / name).mkdir(parents=True)
        for group in (1, 2):
            write_video(tmp_path / "clips" / name / f"v_{name}_g{group:02d}_c01.avi", 16, 24, 24,
                        texture_seed=group)
    run = tmp_path / "reports" / "action_recognition" / "20260101-000000-old"
    run.mkdir(parents=True)
    scan_action_videos.fn(str(tmp_path / "clips"), "ucf", str(run))
    params = ActionRecognitionParams(data_root=str(tmp_path / "clips"), layers=1, n_blocks=200,
                                     n_components1=16, n_features1=16, max_iter=3)
    block, stride = [4, 6, 6], [2, 2, 2]
    model = {"group_size": 2, "eps": params.eps, "block_shape": block, "stride": stride,
             "layer1": {"whitener": "/elsewhere/layer1-whitener.npz", "W": "/elsewhere/layer1-W.npy"},
             "layer2": None}
    save_json(run / "results.json", {
        "flow": "action_recognition", "parameters": params.model_dump(mode="json"),
        "sizes": {"layer1_block": block, "n_components1": 16}, "model": model})
    for stage in ("sample-blocks", "whiten", "train-rica", "extract-descriptors"):
        out, result = run_stage(stage, run, {}, tmp_path / "debug")
        _adopt(out, run)
    assert np.load(run / "blocks-layer1.npy").shape == (200, 4 * 6 * 6)
    assert np.load(run / "layer1-W.npy").shape == (16, 16)
    assert len(result["shards"]) == 4 and result["n_descriptors"] > 0
    assert np.load(run / "descriptors" / "000000.npy").shape[1] == 16 // 2
    with pytest.raises(ValueError, match="stage evaluate-faces belongs to quickstart"):
        run_stage("evaluate-faces", run, {}, tmp_path / "debug")


def test_imagenet_stages_chain_on_a_run_folder(tmp_path):
    from PIL import Image

    from flows.imagenet import ImagenetParams
    from tasks.image_listing import list_images

    rng = np.random.default_rng(0)
    for split, n in (("train", 5), ("test", 2)):
        for name in ("a", "b"):
            (tmp_path / "images" / split / name).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (12, 12, 3), np.uint8)).save(
                    tmp_path / "images" / split / name / f"{i}.png")
    run = tmp_path / "reports" / "imagenet" / "20260101-000000-old"
    run.mkdir(parents=True)
    listing = list_images.fn("folders", str(tmp_path / "images"), str(run), None, None, 1, 0)
    params = ImagenetParams(dataset="folders", data_root=str(tmp_path / "images"),
                            image_size=12, patch_size=4, n_patches=300, patch_images=10,
                            n_features=6, max_iter=3, batch_size=4, shard_size=4,
                            encode_on="local")
    save_json(run / "results.json", {"flow": "imagenet", "listing": listing,
                                     "parameters": params.model_dump(mode="json")})
    debug = tmp_path / "debug"
    for stage in ("sample-image-patches", "whiten", "train-rica", "encode-images"):
        out, result = run_stage(stage, run, {}, debug)
        _adopt(out, run)
    assert np.load(run / "patches.npy").shape == (300, 4 * 4 * 3)
    # RICA learns in the whitened space: the PCA components keeping 99% of the variance
    assert np.load(run / "W.npy").shape == (6, np.load(run / "whitened.npy").shape[1])
    assert np.load(run / "whitened.npy").shape[1] < 48
    assert result["dims"] == {"rica": 2 * 6 * 4, "pixels": 12 * 12 * 3}
    assert [len(paths) for paths in result["shards"]["rica"].values()] == [3, 1]
