"""The histology flow end to end through Prefect (test server) on tiny generated tile folders."""
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from stage_replay import assert_stages_replay

from flows.histology import PLAN, histology
from flows.registry import load_flow
from terafeat.media.dihedral import NAMES

TILE = 32
SMALL = dict(image_size=TILE, patch_size=5, n_patches=2000, patch_tiles=20, n_features=16,
             max_iter=15, stride=2, pixel_size=8, penalty_grid=(0.01, 0.1, 1.0), svm_iter=20,
             svm_path=2, svm_path_iter=5, val_fraction=0.25, batch_size=7, shard_size=20,
             encode_on="local", dihedral_train=2)
SETS = {"rica", "kmeans", "pca", "pixels", "hand-crafted"}


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


EXPENSIVE = ("sample-image-patches", "whiten", "train-rica", "train-kmeans", "encode-image-shards")
STAGES = ("list-tiles", *EXPENSIVE[:4], "pca-filters", EXPENSIVE[4], "classify-tiles")


def test_rerun_hits_every_expensive_stage_and_a_downstream_change_recomputes_only_downstream(
        small_run, tmp_path):
    first, _, _, params = small_run
    assert first["cache"] == dict.fromkeys(EXPENSIVE, "computed")
    again = dict(params, output_root=str(tmp_path))
    second = histology(**again)
    assert second["cache"] == dict.fromkeys(EXPENSIVE, "cache")
    # stored summaries come back: the first run's training seconds, files linked into this run
    assert second["training"]["seconds"] == first["training"]["seconds"]
    assert second["encoding"]["shards"]["rica"]["train"][0].startswith(second["run_dir"])
    assert second["headline"] == first["headline"]  # the same features, classified again
    page = Path(second["report"]).read_text()
    assert "<td>cache</td>" in page and "from the stage cache" in page
    # the encoding stride only changes feature extraction (and the classifiers after it)
    third = histology(**dict(again, stride=3))
    assert third["cache"] == {**dict.fromkeys(EXPENSIVE[:4], "cache"),
                              "encode-image-shards": "computed"}
    entries = {stage.name: len([e for e in stage.iterdir() if not e.name.startswith(".")])
               for stage in Path(params["cache_root"]).iterdir()}
    assert entries == {**dict.fromkeys(EXPENSIVE[:4], 1), "encode-images": 2}


def test_report_files_and_numbers(small_run):
    results, root, tiles, _ = small_run
    [run] = list((root / "histology").iterdir())
    for name in ("index.html", "results.json", "filters.png", "roc.png", "confusion.png",
                 "invariance.png", "examples.png", "tiles.csv", "listing.csv", "W.npy",
                 "whitener.npz", "pca-W.npy"):
        assert (run / name).stat().st_size > 0, name
    saved = json.loads((run / "results.json").read_text())
    classification = saved["classification"]
    metrics = classification["metrics"]
    assert set(metrics) == SETS and classification["headline_scoring"] == "averaged"
    for name, scores in metrics.items():
        assert np.sum(scores["confusion_matrix"]) == 12, name  # test tiles, not their copies
        assert scores["scorings"]["averaged"]["accuracy"] == scores["accuracy"]
        assert scores["scorings"]["original"]["n"] == 12
        low, high = scores["roc_auc_ci"]
        assert low <= scores["roc_auc"] <= high
        assert set(classification["invariance"][name]) == set(NAMES)
    # the synthetic classes differ in colour and blobs: the learned features are far above
    # chance (a coin reaches 10 of the 12 balanced test tiles with probability 79/4096)
    assert metrics["rica"]["accuracy"] >= 10 / 12 and metrics["rica"]["roc_auc"] >= 0.9
    assert saved["training"]["final_objective"] < saved["training"]["initial_objective"]
    # centre + surround cells, split units: 2 x 2 x 16; PCA: every whitened component
    assert metrics["rica"]["n_features"] == metrics["kmeans"]["n_features"] == 2 * 2 * 16
    assert metrics["pca"]["n_features"] == 2 * 2 * saved["pca"]["k"]
    assert metrics["pixels"]["n_features"] == 8 * 8 * 3
    assert saved["tiles"]["n_train"] == 2 * 29 and saved["tiles"]["n_test"] == 12
    [(path, problem)] = saved["unreadable_tiles"]
    assert path == str(tiles / "train" / "1" / "corrupt.jpg") and "corrupt" in problem
    # results.json is written inside the report stage, before its own timing
    assert set(saved["timings"]) == set(STAGES)
    page = (run / "index.html").read_text()
    assert "corrupt.jpg" in page and f"{metrics['rica']['roc_auc']:.4g}" in page
    assert "AUC 95% interval" in page and "flip+rot90" in page
    # what reading did to the tiles (read as stored: nothing), and the process's peak memory
    adapted = saved["encoding"]["adaptations"]
    assert adapted["images"] == 40 and adapted["common_sizes"] == [["32x32", 40]]
    assert adapted["modes"] == {"RGB": 40} and adapted["grey_to_colour"] == 0
    assert set(saved["peak_memory"]) >= {"flow"} and saved["peak_memory"]["flow"] > 0
    assert "Peak memory per process" in page and "Stored modes (Pillow): RGB 40." in page
    assert results["report"] == str((run / "index.html").resolve())


def test_feature_shards_cover_every_readable_tile_and_copy(small_run):
    results, _, _, _ = small_run
    encoding = results["encoding"]
    train = np.concatenate([np.load(path) for path in encoding["shards"]["rica"]["train"]])
    assert train.shape == (2 * 28, 2 * 2 * 16)  # each readable training tile twice
    test = np.concatenate([np.load(path) for path in encoding["shards"]["rica"]["test"]])
    assert test.shape == (8 * 12, 2 * 2 * 16)
    # a tile's rotations give other features (the copies are not duplicates)
    assert not np.allclose(test[0], test[1])
    ids = np.concatenate([np.load(path)["images"] for path in encoding["labels"]["rica"]["test"]])
    assert len(np.unique(ids)) == 12 and (ids[:8] == ids[0]).all()


def test_parameters_are_validated_and_registered():
    with pytest.raises(ValueError, match="image_size"):
        PLAN.model(image_size=8, patch_size=8)
    with pytest.raises(ValueError, match="dihedral_train"):
        PLAN.model(dihedral_train=9)
    with pytest.raises(ValueError):
        PLAN.model(colour_mode="lab")
    with pytest.raises(ValueError):
        PLAN.model(unknown=1)
    with pytest.raises(ValueError):
        PLAN.model(penalty_grid=())
    with pytest.raises(ValueError, match="download"):
        PLAN.model(download=True, dataset="class_folders")
    assert PLAN.model(download=True, dataset="kather2016").download
    assert load_flow("histology") == (histology, PLAN)
    assert [stage.name for stage in PLAN.stages] == ["download-tiles", *STAGES]


def test_feature_batches_show_as_progress_artifacts(small_run):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterType

    with get_client(sync_client=True) as client:
        progress = client.read_artifacts(
            artifact_filter=ArtifactFilter(type=ArtifactFilterType(any_=["progress"])))
    descriptions = {artifact.description: float(artifact.data) for artifact in progress}
    # 5 feature sets x (58 training rows in 3 shards of 20 + 96 test rows in 5)
    assert descriptions["extract features (shards): % of 40 steps done"] == 100.0
    assert descriptions[f"train RICA: % of {SMALL['max_iter']} steps done"] == 100.0


def test_every_stage_replays_to_the_same_outputs(small_run, tmp_path):
    results, _, _, _ = small_run
    replayed = assert_stages_replay(PLAN, Path(results["run_dir"]), tmp_path)
    assert replayed == list(STAGES)
