"""Core pieces of the histology pipeline: colour modes, tile tables, features, metrics."""
import functools
import hashlib
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from skimage.color import rgb_from_hed

from terafeat.classification.protocols import (
    chosen_C,
    classification_metrics,
    linear_classifier,
    predict_scores,
)
from terafeat.datasets.download import DATASETS as DOWNLOAD_REGISTRY
from terafeat.datasets.download import ChecksumError, RemoteFile
from terafeat.datasets.splits import split_per_class
from terafeat.datasets.tile_tables import (
    download_tiles,
    iter_tile_batches,
    limit_tiles,
    read_tile_table,
)
from terafeat.encoding.pooled_layer import pool_grid, pool_pyramid
from terafeat.encoding.tile_features import (
    POOLINGS,
    TRANSFORMS,
    encode_tiles,
    handcrafted_features,
    learned_encoders,
    pixel_features,
)
from terafeat.learning.rica import RICA
from terafeat.learning.whitening import Whitener
from terafeat.media.colour import HED_MAX, convert_tiles, filters_for_display, n_channels
from terafeat.media.patches import sample_patches


@pytest.fixture(scope="module")
def tiles():
    rng = np.random.default_rng(0)
    return rng.uniform(0.05, 1.0, (6, 24, 24, 3)).astype(np.float32)


def test_colour_modes(tiles):
    np.testing.assert_array_equal(convert_tiles(tiles, "rgb"), tiles)
    grey = convert_tiles(tiles, "grey")
    assert grey.shape == (6, 24, 24, 1) and n_channels("grey") == 1
    hed = convert_tiles(tiles, "hed")
    assert hed.shape == tiles.shape and hed.dtype == np.float32
    # pure haematoxylin-like purple is mostly H, pink eosin-like mostly E
    purple, pink = convert_tiles(np.array([[[[0.3, 0.2, 0.55], [0.95, 0.6, 0.8]]]]), "hed")[0, 0]
    assert purple[0] > purple[1] and pink[1] > pink[0]
    he = convert_tiles(tiles, "he")
    assert n_channels("he") == 2
    np.testing.assert_array_equal(he, hed[..., :2])
    black = convert_tiles(np.full((1, 1, 1, 3), 1 / 255), "hed")
    assert black.max() == pytest.approx(1.0, abs=1e-5) and HED_MAX > 0
    with pytest.raises(ValueError, match="colour_mode"):
        convert_tiles(tiles, "lab")
    with pytest.raises(ValueError, match="RGB tiles"):
        convert_tiles(tiles[..., :2], "rgb")


def test_filters_for_display_shapes():
    W = np.random.default_rng(1).standard_normal((4, 5 * 5 * 3))
    assert filters_for_display(W, 5, "rgb")[1] == (5, 5, 3)
    shown, shape = filters_for_display(W, 5, "hed")
    assert shape == (5, 5, 3) and shown.shape == W.shape and not np.allclose(shown, W)
    assert filters_for_display(W[:, :25], 5, "grey")[1] == (5, 5)
    # two stains: each pixel's (H, E) densities through the first two rows of the stain matrix
    he, shape = filters_for_display(W[:, :50], 5, "he")
    assert shape == (5, 5, 3) and he.shape == (4, 75)
    np.testing.assert_allclose(he[:, :3], W[:, :2] @ rgb_from_hed[:2], rtol=1e-6)


def test_pool_pyramid_concatenates_grids():
    maps = np.random.default_rng(2).random((2, 9, 9, 4))
    pyramid = pool_pyramid(maps, (1, 2, 3))
    assert pyramid.shape == (2, (1 + 4 + 9) * 4)
    np.testing.assert_allclose(pyramid[:, :4], maps.sum(axis=(1, 2)), rtol=1e-6)
    np.testing.assert_array_equal(pool_pyramid(maps, 2), pool_grid(maps, 2))


@pytest.fixture(scope="module")
def layer_parts(tiles):
    patches = sample_patches(list(tiles), 3000, 5, random_state=0)
    whitener = Whitener(method="zca", eps=0.01).fit(patches)
    layer = RICA(n_features=16, max_iter=5, random_state=0).fit(whitener.transform(patches))
    pca = Whitener(method="pca", n_components=4, eps=0.01).fit(patches)
    return patches, whitener, layer.W_, pca


@pytest.fixture(scope="module")
def encoders(layer_parts):
    return learned_encoders(*layer_parts[1:], 4, 1e-2)


def test_split_simple_units_are_soft_thresholded_abs_units(layer_parts, encoders):
    patches, whitener, W, pca = layer_parts
    split = learned_encoders(whitener, W, pca, 4, 1e-2, "split", 0.25)["learned unpooled"]
    units = split(patches[:200])
    assert units.shape == (200, 32) and units.min() >= 0
    assert not (units[:, :16] * units[:, 16:]).any()  # one sign at a time
    np.testing.assert_allclose(units[:, :16] + units[:, 16:],
                               np.maximum(encoders["learned unpooled"](patches[:200]) - 0.25, 0),
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="simple_units"):
        learned_encoders(whitener, W, pca, 4, 1e-2, "relu")


def test_encoded_shapes_and_batch_independence(tiles, encoders):
    cells = sum(g * g for g in POOLINGS["pyramid"])
    pooled = encode_tiles(tiles, encoders["learned pooled"], "rgb", 5, 2, "pyramid", batch_size=4)
    assert pooled.shape == (6, cells * 4) and pooled.dtype == np.float32
    unpooled = encode_tiles(tiles, encoders["learned unpooled"], "rgb", 5, 2, "pyramid")
    assert unpooled.shape == (6, cells * 16)
    assert encode_tiles(tiles, encoders["PCA"], "rgb", 5, 2, "quadrants").shape == (6, 4 * 4)
    one_by_one = np.concatenate([encode_tiles(tiles[i:i + 1], encoders["learned pooled"], "rgb",
                                              5, 2, "pyramid") for i in range(6)])
    np.testing.assert_allclose(one_by_one, pooled, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="pooling"):
        encode_tiles(tiles, encoders["PCA"], "rgb", 5, 2, "rings")


def test_peer_features(tiles):
    assert pixel_features(tiles, 8).shape == (6, 8 * 8 * 3)
    np.testing.assert_allclose(pixel_features(np.full((1, 24, 24, 3), 0.5, np.float32), 4), 0.5)
    hand = handcrafted_features(tiles)
    assert hand.shape[0] == 6 and np.isfinite(hand).all()
    np.testing.assert_array_equal(handcrafted_features(tiles[2:3]), hand[2:3])


def test_transforms_keep_shape(tiles):
    for name, apply in TRANSFORMS.items():
        moved = apply(tiles)
        assert moved.shape == tiles.shape and not np.array_equal(moved, tiles), name
    np.testing.assert_array_equal(TRANSFORMS["rot90"](TRANSFORMS["rot270"](tiles)), tiles)


def test_tile_tables_split_limit_and_skip(tmp_path):
    rng = np.random.default_rng(3)
    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        for i in range(10):
            Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(
                tmp_path / label / f"{i}.png")
    (tmp_path / "b" / "bad.png").write_bytes(b"not a png")
    table, class_names, problems = read_tile_table("class_folders", tmp_path, 0.7, random_state=0)
    assert class_names == ["a", "b"] and problems == []
    assert (table["split"] == "test").sum() == 6 and len(table) == 21
    again, _, _ = read_tile_table("class_folders", tmp_path, 0.7, random_state=0)
    pd.testing.assert_frame_equal(table, again)
    small = limit_tiles(table, 4, random_state=0)
    assert small.groupby("split").size().to_dict() == {"test": 4, "train": 4}
    assert set(small["label"]) == {0, 1}
    batches = list(iter_tile_batches(table, 8))
    assert sum(len(kept) for kept, _, _ in batches) == 20
    [(bad, problem)] = [p for _, _, problems in batches for p in problems]
    assert bad.endswith("bad.png") and problem
    with pytest.raises(ValueError, match="dataset"):
        read_tile_table("imagenet", tmp_path)
    assert (split_per_class(np.repeat([0, 1], 10), 0.5, 0) == "test").sum() == 10


def write_kather(root) -> None:
    """Kather 2016's layout: 2 classes of 4 TIFF tiles, 20x20."""
    folder = root / "Kather_texture_2016_image_tiles_5000"
    rng = np.random.default_rng(6)
    for name in ("01_TUMOR", "02_STROMA"):
        (folder / name).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(
                folder / name / f"tile{i}.tif")


def test_kather2016_tile_table(tmp_path):
    write_kather(tmp_path)
    table, class_names, problems = read_tile_table("kather2016", tmp_path, 0.5, random_state=1)
    assert class_names == ["tumor", "stroma"] and problems == []
    assert table.groupby(["split", "label"]).size().tolist() == [2, 2, 2, 2]
    [(_, tiles, _)] = list(iter_tile_batches(table, 8))
    assert tiles.shape == (8, 20, 20, 3)


def test_classification_metrics_and_classifier():
    labels = np.array([0, 0, 1, 1, 1])
    metrics = classification_metrics(labels, np.array([0, 1, 1, 1, 0]),
                                     np.array([0.1, 0.6, 0.9, 0.8, 0.4]))
    assert metrics["accuracy"] == pytest.approx(0.6)
    assert metrics["balanced_accuracy"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert metrics["confusion_matrix"] == [[1, 1], [1, 2]]
    assert metrics["roc_auc"] == pytest.approx(5 / 6)
    assert metrics["roc_curve"]["fpr"][0] == 0 and metrics["roc_curve"]["tpr"][-1] == 1
    assert "roc_auc" not in classification_metrics(labels, labels)
    # more than five classes: top-5 from every class's score, columns in `classes` order
    eight = np.arange(8)
    class_scores = -np.abs(eight[None, :] - np.array([0, 7, 3])[:, None]).astype(float)
    class_scores[0, 0] = -9.0  # row 0: its label 0 has the lowest score
    top = classification_metrics(np.array([0, 5, 3]), class_scores.argmax(1), None,
                                 class_scores, eight)
    assert top["top5"] == pytest.approx(2 / 3)  # 5 is among row 1's five best (7, 6, 5, ...)
    assert "top5" not in classification_metrics(np.array([0, 1]), np.array([0, 1]), None,
                                                 np.eye(2), np.arange(2))
    rng = np.random.default_rng(4)
    features = rng.standard_normal((60, 3)) + np.repeat([0, 3], 30)[:, None]
    model = linear_classifier(3, (0.1, 1.0), random_state=0).fit(features, np.repeat([0, 1], 30))
    predicted, scores = predict_scores(model, features)
    assert (predicted == np.repeat([0, 1], 30)).mean() > 0.9 and scores.shape == (60,)
    assert chosen_C(model) in (0.1, 1.0) and ((scores > 0.5) == predicted).all()
    svm = linear_classifier(3, (0.01, 1.0), 0, "linear_svm").fit(features, np.repeat([0, 1], 30))
    predicted, margins = predict_scores(svm, features)
    assert chosen_C(svm) in (0.01, 1.0) and ((margins > 0) == predicted).all()
    assert margins.min() < 0 < margins.max()  # decision values, not probabilities
    with pytest.raises(ValueError, match="model"):
        linear_classifier(model="forest")


def test_pcam_h5_tiles_in_table_order(tmp_path):
    h5py = pytest.importorskip("h5py")
    rng = np.random.default_rng(5)
    stored = {}
    for split, n in (("train", 7), ("test", 5)):
        stored[split] = rng.integers(0, 255, (n, 12, 12, 3), dtype=np.uint8)
        with h5py.File(tmp_path / f"camelyonpatch_level_2_split_{split}_x.h5", "w") as file:
            file["x"] = stored[split]
        with h5py.File(tmp_path / f"camelyonpatch_level_2_split_{split}_y.h5", "w") as file:
            file["y"] = (np.arange(n) % 2).reshape(n, 1, 1, 1).astype(np.uint8)
    table, class_names, problems = read_tile_table("pcam_h5", tmp_path)
    assert class_names == ["normal", "metastatic"] and problems == [] and len(table) == 12
    shuffled = table.sample(frac=1.0, random_state=0)
    rows, tiles = [], []
    for kept, batch, batch_problems in iter_tile_batches(shuffled, 4):
        rows.append(kept)
        tiles.append(batch)
        assert batch.dtype == np.float32 and batch_problems == []
    rows, tiles = np.concatenate(rows), np.concatenate(tiles)
    np.testing.assert_array_equal(rows, np.arange(12))
    for position, (_, row) in enumerate(shuffled.iterrows()):
        np.testing.assert_allclose(tiles[position] * 255, stored[row["split"]][row["index"]],
                                   atol=1e-3)


@pytest.fixture()
def http_folder(tmp_path):
    """A local HTTP server (127.0.0.1) of the folder ``tmp_path / "served"``; yields (folder, url)."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def test_download_tiles_fetches_unpacks_and_lists(http_folder, tmp_path, monkeypatch):
    served, url = http_folder
    write_kather(tmp_path / "tiles")
    zipped = shutil.make_archive(str(served / "Kather_texture_2016_image_tiles_5000"), "zip",
                                 tmp_path / "tiles")
    digest = hashlib.sha256(Path(zipped).read_bytes()).hexdigest()
    monkeypatch.setitem(DOWNLOAD_REGISTRY, "kather2016", (RemoteFile(
        f"{url}/Kather_texture_2016_image_tiles_5000.zip", sha256=digest),))
    folder = download_tiles("kather2016", tmp_path / "data")
    assert folder == tmp_path / "data" / "kather2016"
    table, class_names, _ = read_tile_table("kather2016", folder, 0.5, random_state=0)
    assert class_names == ["tumor", "stroma"] and len(table) == 8
    with pytest.raises(ValueError, match="no download"):
        download_tiles("class_folders", tmp_path)
    monkeypatch.setitem(DOWNLOAD_REGISTRY, "kather2016", (RemoteFile(
        f"{url}/Kather_texture_2016_image_tiles_5000.zip", sha256="0" * 64),))
    with pytest.raises(ChecksumError):
        download_tiles("kather2016", tmp_path / "elsewhere")
