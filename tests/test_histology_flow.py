"""The histology flow end to end through Prefect (test server) on tiny generated tile folders."""
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from stage_replay import assert_stages_replay

from flows.histology import PLAN, histology
from flows.registry import load_flow

TILE = 32
SMALL = dict(patch_size=5, n_patches=2000, patch_tiles=20, n_features=32, group_size=4,
             max_iter=15, stride=3, pooling="pyramid", pixel_size=8, C_grid=(0.1, 1.0),
             inner_folds=2, batch_size=7, whitening_eps=0.01)


def synthetic_tile(label: int, rng: np.random.Generator) -> np.ndarray:
    """A 32x32 RGB uint8 'H&E' tile: pink stroma, plus dark purple nuclei when label is 1."""
    tile = np.empty((TILE, TILE, 3))
    tile[:] = (0.93, 0.65, 0.78)
    tile += rng.normal(0, 0.04, (TILE, TILE, 1))
    rows, cols = np.mgrid[:TILE, :TILE]
    for _ in range(rng.integers(6, 10) if label else rng.integers(0, 2)):
        r, c = rng.integers(0, TILE, 2)
        nucleus = (rows - r) ** 2 + (cols - c) ** 2 < rng.integers(4, 10)
        tile[nucleus] = (0.35, 0.2, 0.55)
    return np.clip(tile * 255, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def tile_folders(tmp_path_factory):
    """``{train,test}/{0,1}/`` with 14 / 6 tiles per class (JPEG and PNG), one corrupt JPEG."""
    root = tmp_path_factory.mktemp("tiles")
    rng = np.random.default_rng(0)
    for split, n in (("train", 14), ("test", 6)):
        for label in (0, 1):
            folder = root / split / str(label)
            folder.mkdir(parents=True)
            for i in range(n):
                suffix = "png" if i % 2 else "jpg"
                Image.fromarray(synthetic_tile(label, rng)).save(folder / f"tile{i:03d}.{suffix}")
    corrupt = root / "train" / "1" / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 not really a JPEG")
    return root


@pytest.fixture(scope="module")
def small_run(prefect_server, tile_folders, tmp_path_factory):
    root, cache = tmp_path_factory.mktemp("reports"), tmp_path_factory.mktemp("cache")
    params = dict(dataset="class_folders", data_root=str(tile_folders), output_root=str(root),
                  cache_root=str(cache), **SMALL)
    return histology(**params), root, tile_folders, params


EXPENSIVE = ("sample-tile-patches", "whiten", "train-rica", "extract-tile-features")


def test_rerun_hits_every_expensive_stage_and_a_downstream_change_recomputes_only_downstream(
        small_run, tmp_path):
    first, _, _, params = small_run
    assert first["cache"] == dict.fromkeys(EXPENSIVE, "computed")
    again = dict(params, output_root=str(tmp_path))
    second = histology(**again)
    assert second["cache"] == dict.fromkeys(EXPENSIVE, "cache")
    # stored summaries come back: the first run's training seconds, files linked into this run
    assert second["training"]["seconds"] == first["training"]["seconds"]
    assert second["features"]["features_dir"].startswith(second["run_dir"])
    assert second["headline"] == first["headline"]  # the same features, classified again
    page = Path(second["report"]).read_text()
    assert "<td>cache</td>" in page and "from the stage cache" in page
    # the encoding stride only changes feature extraction (and the classifiers after it)
    third = histology(**dict(again, stride=4))
    assert third["cache"] == {**dict.fromkeys(EXPENSIVE[:3], "cache"),
                              "extract-tile-features": "computed"}
    entries = {stage.name: len([e for e in stage.iterdir() if not e.name.startswith(".")])
               for stage in Path(params["cache_root"]).iterdir()}
    assert entries == {"sample-tile-patches": 1, "whiten": 1, "train-rica": 1,
                       "extract-tile-features": 2}


def test_report_files_and_numbers(small_run):
    results, root, tiles, _ = small_run
    [run] = list((root / "histology").iterdir())
    for name in ("index.html", "results.json", "filters.png", "roc.png", "confusion.png",
                 "invariance.png", "examples.png", "tiles.csv", "W.npy", "whitener.npz"):
        assert (run / name).stat().st_size > 0, name
    saved = json.loads((run / "results.json").read_text())
    metrics = saved["classification"]["metrics"]
    assert set(metrics) == {"learned pooled", "learned unpooled", "PCA", "pixels", "hand-crafted"}
    for scores in metrics.values():
        tried = [point["C"] for point in scores["C_path"]]
        assert np.sum(scores["confusion_matrix"]) == 12 and scores["C"] in tried
        # a two-value grid's choice is always at an end: at least one C past it was tried
        assert tried[:2] == list(SMALL["C_grid"]) and len(tried) > 2
        assert all(point["extension"] for point in scores["C_path"][2:])
    # the synthetic classes differ in colour and blobs, so every set is far above chance
    # (0.5: a coin reaches 10 of the 12 balanced test tiles with probability 79/4096), and
    # the learned pooled features are as good as every peer and beat the weakest
    accuracy = {name: scores["accuracy"] for name, scores in metrics.items()}
    assert min(accuracy.values()) >= 10 / 12
    assert accuracy["learned pooled"] == max(accuracy.values()) > min(accuracy.values())
    assert metrics["learned pooled"]["roc_auc"] >= 0.9
    assert saved["training"]["final_objective"] < saved["training"]["initial_objective"]
    assert metrics["learned pooled"]["n_features"] == metrics["PCA"]["n_features"] == 8 * 14
    assert metrics["learned unpooled"]["n_features"] == 32 * 14
    assert set(saved["classification"]["invariance"]["learned pooled"]) == {
        "original", "rot90", "rot180", "rot270", "flip"}
    assert saved["features"]["n_tiles"] == {"train": 28, "test": 12}
    [(path, problem)] = saved["unreadable_tiles"]
    assert path == str(tiles / "train" / "1" / "corrupt.jpg") and "corrupt" in problem
    # results.json is written inside the report stage, before its own timing
    assert set(saved["timings"]) == {"list-tiles", *EXPENSIVE, "classify-tiles"}
    page = (run / "index.html").read_text()
    assert "corrupt.jpg" in page and f"{metrics['learned pooled']['roc_auc']:.4g}" in page
    assert "Choice of C" in page and "mean per-class accuracy" in page
    # what reading did to the tiles (read as stored: nothing), and the process's peak memory
    adapted = saved["features"]["adaptations"]
    assert adapted["images"] == 40 and adapted["common_sizes"] == [["32x32", 40]]
    assert adapted["modes"] == {"RGB": 40} and adapted["grey_to_colour"] == 0
    assert set(saved["peak_memory"]) == {"flow"} and saved["peak_memory"]["flow"] > 0
    assert "Peak memory per process" in page and "Stored modes (Pillow): RGB 40." in page
    assert results["report"] == str((run / "index.html").resolve())


def test_feature_shards_cover_every_readable_tile(small_run):
    results, _, _, _ = small_run
    features = results["features"]["features_dir"]
    from tasks.tile_features import load_feature_shards
    train, rows = load_feature_shards(features, "learned pooled", "train")
    assert train.shape == (28, 8 * 14) and len(np.unique(rows)) == 28
    rotated, _ = load_feature_shards(features, "learned unpooled", "test-rot90")
    assert rotated.shape == (12, 32 * 14)
    assert not np.allclose(rotated, load_feature_shards(features, "learned unpooled", "test")[0])


def test_parameters_are_validated_and_registered():
    with pytest.raises(ValueError, match="group_size"):
        PLAN.model(n_features=30, group_size=4)
    with pytest.raises(ValueError):
        PLAN.model(colour_mode="lab")
    with pytest.raises(ValueError):
        PLAN.model(unknown=1)
    with pytest.raises(ValueError):
        PLAN.model(C_grid=())
    with pytest.raises(ValueError, match="download"):
        PLAN.model(download=True, dataset="class_folders")
    assert PLAN.model(download=True, dataset="kather2016").download
    assert load_flow("histology") == (histology, PLAN)
    assert [stage.name for stage in PLAN.stages] == ["download-tiles", "list-tiles", *EXPENSIVE,
                                                     "classify-tiles"]


def test_feature_batches_show_as_progress_artifacts(small_run):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterType

    with get_client(sync_client=True) as client:
        progress = client.read_artifacts(
            artifact_filter=ArtifactFilter(type=ArtifactFilterType(any_=["progress"])))
    descriptions = {artifact.description: float(artifact.data) for artifact in progress}
    # 28 readable training tiles in batches of 7 (one corrupt file skipped), 12 test tiles
    assert descriptions["features (train): % of 5 steps done"] == 100.0
    assert descriptions["features (test): % of 2 steps done"] == 100.0
    assert descriptions[f"train RICA: % of {SMALL['max_iter']} steps done"] == 100.0


def test_every_stage_replays_to_the_same_outputs(small_run, tmp_path):
    results, _, _, _ = small_run
    replayed = assert_stages_replay(PLAN, Path(results["run_dir"]), tmp_path)
    assert replayed == ["list-tiles", *EXPENSIVE, "classify-tiles"]
