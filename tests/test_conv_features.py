"""Coates-style convolutional encoding (terafeat.encoding.convolutional) and its shard runner
(terafeat.encoding.sharded), locally and on a real Dask LocalCluster."""
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from threadpoolctl import threadpool_limits

from terafeat.encoding import convolutional
from terafeat.encoding.convolutional import (
    ConvolutionalEncoder,
    cell_chunks,
    contrast_normalize,
    image_windows,
)
from terafeat.encoding.pooled_layer import pool_grid
from terafeat.media.patches import sample_patches


def random_encoder(nonlinearity, k=12, patch=5, channels=3, seed=0, **options):
    rng = np.random.default_rng(seed)
    d = patch * patch * channels
    return ConvolutionalEncoder(rng.normal(size=(k, d)), np.eye(d) + 0.1 * rng.normal(size=(d, d)),
                                rng.normal(0, 0.1, d), patch, nonlinearity, alpha=0.3, **options)


def reference(encoder, images):
    """The encoding written plainly: every window normalised, whitened, filtered, pooled."""
    windows = image_windows(images, encoder.patch_size)
    n, P, d = windows.shape
    side = int(np.sqrt(P))
    z = (contrast_normalize(windows.reshape(-1, d)) - encoder.mean) @ encoder.whitening \
        @ encoder.filters.T
    z = z.reshape(n, side, side, -1)
    if encoder.nonlinearity == "abs":
        maps = np.abs(z)
    elif encoder.nonlinearity == "smooth_l1":
        maps = np.sqrt(encoder.smoothing + z ** 2)
    else:
        maps = np.concatenate([np.maximum(z - encoder.alpha, 0),
                               np.maximum(-z - encoder.alpha, 0)], axis=3)
    if encoder.pooling == "l2":
        return np.sqrt(pool_grid(maps ** 2, encoder.grid))
    return pool_grid(maps, encoder.grid)


@pytest.mark.parametrize("nonlinearity,grid,chunk,pooling", [
    ("split", 2, 128, "sum"), ("split", 3, 7, "sum"), ("abs", 2, 16, "sum"),
    ("smooth_l1", 2, 50, "sum"), ("split", 2, 128, "l2"), ("smooth_l1", 3, 7, "l2")])
def test_encoder_equals_plain_computation(nonlinearity, grid, chunk, pooling):
    encoder = random_encoder(nonlinearity, grid=grid, chunk=chunk, pooling=pooling,
                             smoothing=0.05)
    images = np.random.default_rng(1).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    features = encoder.transform(images)
    assert features.shape == (3, encoder.n_outputs) and features.dtype == np.float32
    expected = reference(encoder, images.astype(np.float32) / 255)
    np.testing.assert_allclose(features, expected, rtol=1e-4, atol=1e-3)
    restored = ConvolutionalEncoder.from_arrays(encoder.to_arrays())
    np.testing.assert_allclose(restored.transform(images), features, rtol=1e-5, atol=1e-4)


def test_features_are_the_same_bits_on_one_thread_and_on_several():
    """The first encodings try all threads, then one (FasterThreadCount): same features."""
    encoder = random_encoder("split", k=40)
    images = np.random.default_rng(2).integers(0, 256, (7, 16, 16, 3), dtype=np.uint8)
    convolutional._image_threads.cache_clear()
    with threadpool_limits(2, "blas"):
        on_two, on_one = encoder.transform(images), encoder.transform(images)
    assert sorted(convolutional._image_threads().seconds) == [1, 2]
    assert np.array_equal(on_two, on_one)
    assert encoder.transform(images[:0]).shape == (0, encoder.n_outputs)


def test_windows_match_sampled_patch_order():
    image = np.random.default_rng(2).random((9, 8, 3)).astype(np.float32)
    windows = image_windows(image[None], 4)[0]
    assert windows.shape == (6 * 5, 48)
    np.testing.assert_array_equal(windows[5 + 2], image[1:5, 2:6].ravel())
    # sample_patches flattens in the same (row, column, channel) order
    patch = sample_patches([image], 1, 4, random_state=0)[0]
    assert any(np.array_equal(patch, row) for row in windows)


def test_contrast_normalisation_and_cells():
    patches = np.random.default_rng(3).random((5, 27)) * 0.5
    normalised = contrast_normalize(patches, eps=0.0)
    np.testing.assert_allclose(normalised.mean(1), 0, atol=1e-6)
    np.testing.assert_allclose(normalised.std(1), 1, rtol=1e-6)
    flat = contrast_normalize(np.full((1, 27), 0.5))
    assert np.all(flat == 0)  # a flat patch stays flat, not blown up to noise
    chunks = cell_chunks(27, 27, 2, 100)
    assert sorted(np.concatenate([rows for _, rows in chunks]).tolist()) == list(range(729))
    assert [cell for cell, _ in chunks] == [0, 0, 1, 1, 2, 2, 3, 3]
    assert max(len(rows) for _, rows in chunks) <= 100
    with pytest.raises(ValueError, match="4x4 pooling grid does not fit 3x3"):
        cell_chunks(3, 3, 4, 10)


def test_wrong_channel_count_is_refused():
    encoder = random_encoder("split")
    with pytest.raises(ValueError, match="1-channel images give 25-dim patches"):
        encoder.transform(np.zeros((1, 10, 10, 1), np.float32))


# Encoding an image listing in shards

@pytest.fixture()
def listing(tmp_path):
    rng = np.random.default_rng(4)
    rows = []
    for i in range(9):
        path = tmp_path / "images" / f"{i}.png"
        path.parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (14, 14, 3), dtype=np.uint8)).save(path)
        rows.append({"path": str(path), "record": -1, "label": i % 3, "class_name": "c",
                     "split": "train"})
    (tmp_path / "images" / "4.png").write_bytes(b"truncated")
    listing_path = tmp_path / "listing.csv"
    pd.DataFrame(rows).to_csv(listing_path, index=False)
    encoder_path = tmp_path / "encoder.npz"
    np.savez(encoder_path, **random_encoder("split", patch=4).to_arrays())
    return str(listing_path), str(encoder_path)


def test_shards_skip_a_corrupt_image_and_resume(tmp_path, listing):
    from terafeat.encoding.sharded import encode_listing, kept_path, load_encoder, shard_ranges
    listing_path, encoder_path = listing
    ranges = shard_ranges(9, 4)
    assert ranges == [(0, 4), (4, 8), (8, 9)]
    paths, summaries = encode_listing(listing_path, ranges, encoder_path, tmp_path / "out", 12,
                                      batch_size=3)
    assert [s["kept"] for s in summaries] == [4, 3, 1]
    assert [p for s in summaries for p, _ in s["problems"]] == [listing[0].replace(
        "listing.csv", "images/4.png")]
    kept = np.concatenate([np.load(kept_path(p)) for p in paths])
    assert kept.tolist() == [0, 1, 2, 3, 5, 6, 7, 8]
    assert all(s["peak_rss"] > 0 and not s["skipped"] for s in summaries)
    first = np.load(paths[0])
    image = np.asarray(Image.open(pd.read_csv(listing_path)["path"][0]).resize((12, 12),
                       Image.BILINEAR), np.float32)[None] / 255
    assert first.shape == (4, load_encoder(encoder_path)(image).shape[1])
    _, again = encode_listing(listing_path, ranges, encoder_path, tmp_path / "out", 12, 3)
    assert all(s["skipped"] for s in again)
    pixels, _ = encode_listing(listing_path, ranges, "pixels", tmp_path / "px", 12, 3)
    assert np.load(pixels[2]).shape == (1, 12 * 12 * 3)


@pytest.mark.slow
def test_dask_workers_encode_the_same_features(tmp_path, listing):
    from terafeat.distributed.cluster import get_client
    from terafeat.encoding.sharded import encode_listing, shard_ranges
    listing_path, encoder_path = listing
    ranges = shard_ranges(9, 2)
    local, _ = encode_listing(listing_path, ranges, encoder_path, tmp_path / "local", 12, 2)
    with get_client(n_workers=2, dashboard_address="127.0.0.1:0") as client:
        remote, summaries = encode_listing(listing_path, ranges, encoder_path,
                                           tmp_path / "dask", 12, 2, client=client)
    assert len(remote) == len(local) == 5
    for a, b in zip(local, remote):
        np.testing.assert_array_equal(np.load(a), np.load(b))
    assert sum(s["kept"] for s in summaries) == 8
