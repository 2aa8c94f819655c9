"""The imagenet flow end to end through Prefect (test server) on tiny generated class folders."""
import collections
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from flows.imagenet import PLAN, imagenet
from flows.registry import load_flow
from stage_replay import assert_stages_replay

SIDE = 16
SMALL = dict(dataset="folders", image_size=SIDE, patch_size=5, n_patches=3000, patch_images=40,
             n_features=24, max_iter=15, batch_size=7, shard_size=10, svm_iter=20,
             penalty_grid=(0.01, 0.1), val_fraction=0.2, encode_on="local",
             whitening="zca", n_components=None, whitening_eps=0.1, lam=10.0,
             mirror_train=False, mirror_test=False)


def synthetic_image(label: int, rng: np.random.Generator) -> np.ndarray:
    """16x16 RGB: horizontal stripes (0), vertical stripes (1) or a colour blob (2), noisy."""
    rows, cols = np.mgrid[:SIDE, :SIDE]
    phase = rng.uniform(0, 2 * np.pi)
    if label == 0:
        grey = np.sin(rows * 1.3 + phase)
    elif label == 1:
        grey = np.sin(cols * 1.3 + phase)
    else:
        r, c = rng.integers(4, 12, 2)
        grey = np.exp(-((rows - r) ** 2 + (cols - c) ** 2) / 8.0)
    image = 0.5 + 0.4 * grey[:, :, None] * np.array([1.0, 0.8 if label == 2 else 1.0, 0.6])
    return np.clip((image + rng.normal(0, 0.05, image.shape)) * 255, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def image_folders(tmp_path_factory):
    """``{train,test}/{h,v,blob}/`` with 16 / 6 images per class, one corrupt PNG."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for split, n in (("train", 16), ("test", 6)):
        for label, name in enumerate(("h", "v", "blob")):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(synthetic_image(label, rng)).save(folder / f"{i:03d}.png")
    (root / "train" / "v" / "broken.png").write_bytes(b"\x89PNG not really")
    return root


@pytest.fixture(scope="module")
def two_runs(prefect_server, image_folders, tmp_path_factory):
    """A run, then the same with the training set listed twice, each time also mirrored and
    once more shifted, the test images scored with their mirror images (same cache), and the
    k-means peer."""
    root = tmp_path_factory.mktemp("reports")
    cache = tmp_path_factory.mktemp("cache")
    common = dict(data_root=str(image_folders), output_root=str(root), cache_root=str(cache),
                  **SMALL)
    first = imagenet(**common)
    doubled = imagenet(**{**common, "train_repeat": 2, "mirror_train": True,
                          "shift_train": 1, "mirror_test": True, "kmeans_peer": True})
    return first, doubled, image_folders


def test_report_numbers_and_skipped_image(two_runs):
    first, _, folders = two_runs
    run = first["run_dir"]
    saved = json.loads(open(f"{run}/results.json").read())
    for name in ("index.html", "filters.png", "objective.png", "confusion.png", "listing.csv"):
        assert open(f"{run}/{name}", "rb").read(), name
    assert saved["listing"]["n_train"] == 49 and saved["listing"]["n_test"] == 18
    rica, pixels = saved["classification"]["rica"], saved["classification"]["pixels"]
    assert np.sum(rica["confusion_matrix"]) == 18 and rica["n"] == pixels["n"] == 18
    assert rica["top5"] == 1.0  # three classes: the label is always among the top five
    # oriented stripes and blobs are what learned edge filters separate easily
    assert rica["top1"] >= 0.8
    assert saved["encoding"]["dims"] == {"rica": 2 * 24 * 4, "pixels": SIDE * SIDE * 3}
    [(path, problem)] = saved["unreadable_images"]
    assert path == str(folders / "train" / "v" / "broken.png")
    assert set(saved["peak_memory"]) == {"flow", "encoding"}
    assert all(value > 0 for value in saved["peak_memory"].values())
    page = open(f"{run}/index.html").read()
    assert "broken.png" in page and f"{rica['top1']:.4g}" in page
    # the L2-SVM's path starts at ridge's choice and goes down; the best held-out
    # candidate of either classifier is kept, and every candidate is on the page
    fit = rica["fit"]
    ridge_choice = fit["lam_grid"][int(np.argmax(fit["validation_accuracy"]))]
    path = [point["lam/n"] for point in fit["svm_path"]]
    assert [g for g, point in zip(path, fit["svm_path"]) if not point.get("extension")] == sorted(
        (g for g in fit["lam_grid"] if g <= ridge_choice), reverse=True)[:4]  # svm_path=4
    kept = max(fit["svm_path"] + fit["candidates"], key=lambda point: point["validation_accuracy"])
    assert (fit["classifier"], fit["lam/n"]) == (kept["classifier"], kept["lam/n"])
    assert len(fit["candidates"]) == len(fit["lam_grid"]) + len(path)
    assert "own path" in page and "Classifier validation" in page
    if fit["classifier"] == "l2svm":
        assert ("did NOT converge" in page) == (not fit["svm"]["converged"])
    # per-class accuracy beside per-image; top-5 and the CIFAR-10 rows are for other runs
    truth, predicted = np.load(rica["predictions"]).T
    assert rica["mean_class_accuracy"] == pytest.approx(np.mean(
        [(predicted[truth == c] == c).mean() for c in range(3)]))
    assert "mean per-class accuracy" in page
    assert set(first["headline"][0]) == {"features", "dimensions", "top-1",
                                         "mean per-class accuracy", "classifier kept"}
    assert "Coates et al." not in page


def test_doubled_training_list_reuses_the_unsupervised_stages(two_runs):
    first, doubled, _ = two_runs
    assert doubled["listing"]["n_train"] == 6 * first["listing"]["n_train"]
    # patches come from the distinct (unmirrored, unshifted) training images, so patches,
    # whitening and RICA are cache hits: the same filters; features and classifiers are
    # recomputed
    assert np.array_equal(np.load(first["training"]["W"]), np.load(doubled["training"]["W"]))
    fitted = first["classification"]["rica"]["fit"]["n_train"]
    assert fitted == 48  # the broken image is listed, then skipped
    assert doubled["classification"]["rica"]["fit"]["n_train"] == 6 * fitted
    # the k-means peer: its own filters through the same encoder and classifier
    assert doubled["encoding"]["dims"]["kmeans"] == doubled["encoding"]["dims"]["rica"]
    assert doubled["classification"]["kmeans"]["n"] == doubled["classification"]["rica"]["n"]
    # test images and their mirror images are scored together: still 18 test images
    assert doubled["listing"]["n_test"] == 18
    assert all(result["n"] == 18 and np.sum(result["confusion_matrix"]) == 18
               for result in doubled["classification"].values())
    assert sum(len(np.load(path)) for path in doubled["encoding"]["shards"]["rica"]["test"]) == 36
    # k-means centroids of whitened patches are distinct directions, as RICA's filters
    assert doubled["kmeans"]["distinct_filters"] > SMALL["n_features"] // 2
    assert first["kmeans"] is None
    assert "k-means (same pipeline)" in open(f"{doubled['run_dir']}/index.html").read()
    assert [row["features"] for row in doubled["headline"]] == [
        "RICA (learned)", "k-means (same pipeline)", "raw pixels"]
    # each image is listed six times (twice, mirrored and shifted); all copies fall on the
    # same side of the validation split
    images = np.concatenate([np.load(path)["images"]
                             for path in doubled["encoding"]["labels"]["rica"]["train"]])
    assert np.array_equal(np.bincount(images)[np.unique(images)], np.full(fitted, 6))


def test_registered_and_validated():
    assert load_flow("imagenet") == (imagenet, PLAN)
    with pytest.raises(ValueError, match="do not fit 8px images"):
        PLAN.model(image_size=8, patch_size=8, grid=2)
    with pytest.raises(ValueError, match="lam_grid\n  Extra inputs are not permitted"):
        PLAN.validate({"lam_grid": (0.1,)})


def test_every_stage_replays_exactly(two_runs, tmp_path):
    _, doubled, _ = two_runs
    replayed = assert_stages_replay(PLAN, Path(doubled["run_dir"]), tmp_path)
    assert replayed == [stage.name for stage in PLAN.stages]


def test_classifier_notes_name_extensions_edges_and_a_final_fit_that_did_not_converge():
    from reporting.pages.imagenet import _candidate_rows, _selection_notes
    ridge_kept = {"fit": {"classifier": "ridge", "lam/n": 9.0, "candidates": [
        {"classifier": "ridge", "lam/n": 3.0, "validation_accuracy": 0.5},
        {"classifier": "ridge", "lam/n": 9.0, "validation_accuracy": 0.6, "extension": True},
        {"classifier": "l2svm", "lam/n": 9.0, "validation_accuracy": 0.55, "n_iter": 30}],
        "extensions": {"ridge": {"added": [9.0], "at_edge": "top"},
                       "l2svm": {"added": [], "at_edge": None}}}}
    svm_kept = {"fit": {"classifier": "l2svm", "lam/n": 0.1, "candidates": [],
                        "extensions": {"ridge": {"added": [], "at_edge": None}},
                        "svm": {"converged": False, "stopped_at_limit": True, "n_iter": 100,
                                "iteration_limit": 100, "message": "STOP"}}}
    rows = _candidate_rows({"rica": ridge_kept})
    assert [row["kept"] for row in rows] == [False, True, False]
    assert [row["past the grid's end"] for row in rows] == [False, True, False]
    notes = _selection_notes({"rica": ridge_kept, "pixels": svm_kept})
    assert notes == [
        "RICA (learned): the best ridge penalty sat at an end of the values it was chosen "
        "among; also tried lam/n 9.",
        "RICA (learned): the kept ridge penalty is still the largest tried (raise "
        "grid_extension or widen penalty_grid).",
        "raw pixels: the final L2-SVM on all training rows did NOT converge in 100 L-BFGS "
        "iterations (stopped at its limit of 100 iterations)."]


def write_mixed_tree(root) -> dict[str, int]:
    """``root/{h,v,blob}/`` (one class-folder tree), 18 images per class, stored as
    16x16 RGB (5 per class), 32x24 RGB (5), 20x20 grey (4) or 24x16 RGB (4).
    Returns the expected counts of what reading them as 16x16 RGB takes."""
    rng = np.random.default_rng(1)
    for label, name in enumerate(("h", "v", "blob")):
        (root / name).mkdir(parents=True)
        for i in range(18):
            image = Image.fromarray(synthetic_image(label, rng))
            image = [image, image.resize((32, 24)), image.resize((20, 20)).convert("L"),
                     image.resize((24, 16))][i % 4]
            image.save(root / name / f"{i:03d}.png")
    return {"images": 54, "distinct_sizes": 4, "centre_cropped": 3 * (5 + 4),
            "resized": 3 * (5 + 4), "grey_to_colour": 3 * 4, "colour_to_grey": 0}


def test_a_class_tree_of_mixed_sizes_and_grey_images(prefect_server, tmp_path, monkeypatch,
                                                     caplog):
    """One tree split here (12 training images per class), images of four stored sizes and
    grey ones: the results and the page count what reading did, once per distinct image
    (not per mirrored copy); peak memory per process; progress logged off a terminal."""
    expected = write_mixed_tree(tmp_path / "tree")
    monkeypatch.setattr("flows.progress.LOG_INTERVAL", 0.0)  # every report is a record
    caplog.set_level("INFO")
    results = imagenet(**{**SMALL, "dataset": "class_tree", "split_train": 12,
                          "data_root": str(tmp_path / "tree"), "mirror_train": True,
                          "mirror_test": True, "output_root": str(tmp_path / "reports"),
                          "cache_root": None})
    assert results["listing"]["n_train"] == 2 * 36 and results["listing"]["n_test"] == 18
    assert results["classification"]["rica"]["n"] == 18
    adapted = results["encoding"]["adaptations"]
    assert {key: adapted[key] for key in expected} == expected
    assert dict(adapted["common_sizes"]) == {"16x16": 15, "32x24": 15, "20x20": 12, "24x16": 12}
    assert adapted["modes"] == {"RGB": 42, "L": 12}
    assert set(results["peak_memory"]) == {"flow", "encoding"}
    assert all(value > 0 for value in results["peak_memory"].values())
    page = Path(results["report"]).read_text()
    assert "Images as read" in page and "grey, copied to three channels</td><td>12" in page
    assert "Peak memory per process" in page
    # the split is in the run folder as list files: 12 training images of each class
    train_list = Path(results["listing"]["split_lists"]["train"]).read_text().splitlines()
    assert sorted(collections.Counter(line.split("/")[0] for line in train_list).values()) \
        == [12, 12, 12]
    # off a terminal, long stages log their progress (here at every report); a stage done
    # at its first report (the patch images, read in one batch) logs none
    messages = [record.getMessage() for record in caplog.records]
    for stage in ("train RICA: ", "extract features (shards): ", "classify rica (shards read): "):
        assert any(message.startswith(stage) for message in messages), stage
    assert not any(message.startswith("read patch images") for message in messages)
