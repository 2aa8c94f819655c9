"""Core pieces of the histology pipeline: colour modes, tile tables and listings, dihedral
copies, the encoder's tissue options, peers, metrics."""
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

from terafeat.classification.roc import accuracy_per_transform, auc_interval, tile_metrics
from terafeat.classification.scoring import streamed_scores
from terafeat.datasets.download import DATASETS as DOWNLOAD_REGISTRY
from terafeat.datasets.download import ChecksumError, RemoteFile
from terafeat.datasets.splits import split_per_class
from terafeat.datasets.tile_tables import (
    download_tiles,
    iter_tile_batches,
    limit_tiles,
    read_tile_table,
)
from terafeat.datasets.image_sets import read_listed_images
from terafeat.datasets.tile_listing import TILE_READER, tile_listing
from terafeat.encoding.convolutional import ConvolutionalEncoder
from terafeat.encoding.sharded import load_encoder
from terafeat.encoding.tile_peers import handcrafted_features, peer_encoder, pixel_features
from terafeat.learning.whitening import Whitener, principal_filters
from terafeat.media.colour import HED_MAX, convert_tiles, filters_for_display, n_channels
from terafeat.media.dihedral import NAMES, dihedral, dihedral_rows, training_elements
from terafeat.media.patches import dense_patches, sample_patches


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


@pytest.fixture(scope="module")
def encoder_parts(tiles):
    """A whitener of 5x5 he patches and 6 unit-norm filters in its whitened space."""
    patches = sample_patches(list(convert_tiles(tiles, "he")), 3000, 5, random_state=0)
    whitener = Whitener(method="pca", eps=0.01).fit(patches)
    filters = np.random.default_rng(5).standard_normal((6, whitener.whitening_.shape[1]))
    return whitener, (filters / np.linalg.norm(filters, axis=1, keepdims=True)).astype(np.float32)


def _encoder(parts, **options) -> ConvolutionalEncoder:
    whitener, filters = parts
    return ConvolutionalEncoder(filters, whitener.whitening_, whitener.mean_, 5,
                                **{"colour_mode": "he", **options})


def test_encoder_converts_colours_and_keeps_the_centre_apart(tiles, encoder_parts):
    whole = _encoder(encoder_parts, grid=1).transform(tiles)
    centre = _encoder(encoder_parts, layout="centre_surround").transform(tiles)
    assert whole.shape == (6, 12) and centre.shape == (6, 24)
    # sum pooling: the centre cell and its surround add up to the whole image
    np.testing.assert_allclose(centre[:, :12] + centre[:, 12:], whole, rtol=1e-4, atol=1e-4)
    # the centre cell is the middle of a 3x3 grid of the 20x20 window map (rows 7..13)
    nine = _encoder(encoder_parts, grid=3).transform(tiles)
    np.testing.assert_allclose(centre[:, :12], nine[:, 4 * 12:5 * 12], rtol=1e-5, atol=1e-5)
    moved = tiles.copy()
    moved[:, :3] = tiles[:, :3, ::-1]  # a change of the border alone leaves the centre cell
    np.testing.assert_allclose(_encoder(encoder_parts, layout="centre_surround").transform(
        moved)[:, :12], centre[:, :12], rtol=1e-5, atol=1e-5)
    # without the conversion RGB tiles give 75-dim patches, not the 50 it was fitted on
    with pytest.raises(ValueError, match="2-channel|fitted on"):
        _encoder(encoder_parts, colour_mode="rgb").transform(tiles)
    with pytest.raises(ValueError, match="layout"):
        _encoder(encoder_parts, layout="rings")


def test_encoder_stride_keeps_every_other_window(tiles, encoder_parts):
    whitener, filters = encoder_parts
    strided = _encoder(encoder_parts, grid=1, stride=2, nonlinearity="abs").transform(tiles[:2])
    windows = np.stack([dense_patches(tile, 5, 2).reshape(-1, 50)
                        for tile in convert_tiles(tiles[:2], "he")])
    from terafeat.encoding.convolutional import contrast_normalize
    responses = np.abs(np.stack([(contrast_normalize(w) - whitener.mean_) @ whitener.whitening_
                                 @ filters.T for w in windows]))
    np.testing.assert_allclose(strided, responses.sum(axis=1), rtol=1e-3, atol=1e-3)
    saved = ConvolutionalEncoder.from_arrays(_encoder(encoder_parts, stride=2,
                                                      layout="centre_surround").to_arrays())
    assert (saved.stride, saved.layout, saved.colour_mode) == (2, "centre_surround", "he")
    with pytest.raises(ValueError, match="stride"):
        _encoder(encoder_parts, stride=0)


def test_principal_filters_give_whitened_pca_coordinates(tiles):
    patches = sample_patches(list(tiles), 2000, 4, random_state=1)
    zca = Whitener(method="zca", eps=0.01).fit(patches)
    pca = Whitener(method="pca", eps=0.01).fit(patches)
    filters = principal_filters(zca, 5)
    assert filters.shape == (5, 48)
    np.testing.assert_allclose(np.linalg.norm(filters, axis=1), 1, rtol=1e-5)
    coordinates = pca.transform(patches[:50])[:, :5]
    np.testing.assert_allclose(zca.transform(patches[:50]) @ filters.T, coordinates,
                               rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(principal_filters(pca, 5), np.eye(5, 48), atol=1e-5)


def test_peer_features(tiles):
    assert pixel_features(tiles, 8).shape == (6, 8 * 8 * 3)
    np.testing.assert_allclose(pixel_features(np.full((1, 24, 24, 3), 0.5, np.float32), 4), 0.5)
    hand = handcrafted_features(tiles)
    assert hand.shape[0] == 6 and np.isfinite(hand).all()
    np.testing.assert_array_equal(handcrafted_features(tiles[2:3]), hand[2:3])
    # the shard encoder reaches them by name
    np.testing.assert_array_equal(load_encoder("pixels:8")(tiles), pixel_features(tiles, 8))
    assert load_encoder("handcrafted") is handcrafted_features
    assert peer_encoder("pixels") is None and peer_encoder("pixels:x") is None


def test_dihedral_elements_are_the_eight_symmetries_of_the_square(tiles):
    moved = [dihedral(tiles, e) for e in range(8)]
    assert len({m.tobytes() for m in moved}) == 8 and len(NAMES) == 8
    np.testing.assert_array_equal(moved[0], tiles)
    np.testing.assert_array_equal(dihedral(moved[1], 3), tiles)  # rot90 then rot270
    np.testing.assert_array_equal(dihedral(moved[4], 4), tiles)  # flip twice
    np.testing.assert_array_equal(moved[4], tiles[:, :, ::-1])
    elements = np.array([0, 1, 4, 7, 2, 0])
    np.testing.assert_array_equal(dihedral_rows(tiles, elements)[3], moved[7][3])
    drawn = training_elements(50, 3, random_state=2)
    assert drawn.shape == (50, 3) and (drawn[:, 0] == 0).all() and (drawn[:, 1:] > 0).all()
    assert all(len(set(row)) == 3 for row in drawn.tolist())
    np.testing.assert_array_equal(drawn, training_elements(50, 3, random_state=2))
    assert not np.array_equal(drawn, training_elements(50, 3, random_state=3))
    with pytest.raises(ValueError, match="copies"):
        training_elements(5, 9, 0)


def test_tile_listing_reads_tiles_under_their_element(tmp_path):
    rng = np.random.default_rng(6)
    paths, pixels = [], []
    for i in range(5):
        tile = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
        paths.append(tmp_path / f"t{i}.png")
        Image.fromarray(tile).save(paths[-1])
        pixels.append(tile)
    table = pd.DataFrame({"path": [str(p) for p in paths], "index": -1,
                          "label": [0, 1, 0, 1, 1], "split": ["train"] * 3 + ["test"] * 2})
    listing = tile_listing(table, 2, random_state=0)
    assert len(listing) == 3 * 2 + 2 * 8 and list(listing["split"]).index("test") == 6
    assert sorted(listing["tile"][:6]) == [0, 0, 1, 1, 2, 2]
    test = listing[listing["split"] == "test"]
    assert test["dihedral"].tolist() == list(range(8)) * 2 and test["original"].sum() == 2
    images, kept, problems = read_listed_images(listing, 12, TILE_READER)
    assert problems == [] and len(kept) == len(listing)
    for row, image in zip(listing.itertuples(), images):
        expected = dihedral(pixels[row.tile][None] / np.float32(255), row.dihedral)[0]
        np.testing.assert_allclose(image, expected, atol=1e-6)
    small, _, _ = read_listed_images(listing.iloc[:2], 6, TILE_READER)
    assert small.shape == (2, 6, 6, 3)


def test_tile_metrics_auc_interval_and_per_transform_accuracy():
    truth = np.array([0, 0, 1, 1, 1])
    scores = np.column_stack([np.zeros(5), [-0.9, 0.2, 0.8, 0.6, -0.1]])
    metrics = tile_metrics(truth, scores)
    assert metrics["accuracy"] == pytest.approx(0.6)
    assert metrics["balanced_accuracy"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert metrics["confusion_matrix"] == [[1, 1], [1, 2]]
    assert metrics["roc_auc"] == pytest.approx(5 / 6)
    low, high = metrics["roc_auc_ci"]
    assert 0 <= low < 5 / 6 < high <= 1
    three = tile_metrics(np.array([0, 1, 2]), np.eye(3))
    assert three["accuracy"] == 1 and "roc_auc" not in three
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, 400)
    margin = labels + rng.normal(0, 1, 400)
    narrow = auc_interval(labels, margin, random_state=0)
    wide = auc_interval(labels[:40], margin[:40], random_state=0)
    assert narrow[1] - narrow[0] < wide[1] - wide[0]  # more tiles, a tighter interval
    assert auc_interval(labels, margin, random_state=0) == narrow  # seeded
    assert auc_interval(labels, labels + 0.0) == (1.0, 1.0)  # every resample separates
    with pytest.raises(ValueError, match="both classes"):
        auc_interval(np.ones(5), margin[:5])
    by = accuracy_per_transform(np.array([1, 1, 0, 0]), np.array([1, 0, 0, 0]),
                                np.array([0, 1, 0, 1]), NAMES)
    assert by == {"original": 1.0, "rot90": 0.5}


def test_streamed_scores_sum_the_rows_of_one_image(tmp_path):
    rng = np.random.default_rng(8)
    X = rng.normal(0, 1, (6, 3)).astype(np.float32)
    paths = [str(tmp_path / "a.npy"), str(tmp_path / "b.npy")]
    np.save(paths[0], X[:4])
    np.save(paths[1], X[4:])
    weights = rng.normal(0, 1, (4, 2))
    labels = [np.array([0, 1, 0, 1]), np.array([0, 1])]
    truth, rows = streamed_scores(paths, labels, weights)
    np.testing.assert_allclose(rows, X @ weights[:3] + weights[3], rtol=1e-5)
    groups = [np.array([5, 2, 5, 2]), np.array([9, 9])]
    labels = [np.array([1, 0, 1, 0]), np.array([0, 0])]
    truth, summed = streamed_scores(paths, labels, weights, groups)
    assert truth.tolist() == [0, 1, 0]  # images 2, 5, 9
    np.testing.assert_allclose(summed[1], rows[0] + rows[2], rtol=1e-5)


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
