import numpy as np
import pytest

from terafeat.classification.protocols import compare_feature_sets, cross_validated_accuracy
from terafeat.encoding.pooled_layer import encode_images, layer_features, pool_grid
from terafeat.learning.pooling import l2_pool, subspace_pooling
from terafeat.learning.whitening import Whitener


def test_pool_grid_sums_each_quadrant():
    maps = np.arange(2 * 4 * 4 * 3, dtype=np.float64).reshape(2, 4, 4, 3)
    pooled = pool_grid(maps, 2, "sum")
    assert pooled.shape == (2, 12)
    np.testing.assert_allclose(pooled[0, :3], maps[0, :2, :2].sum(axis=(0, 1)))
    np.testing.assert_allclose(pooled[1, 9:], maps[1, 2:, 2:].sum(axis=(0, 1)))
    np.testing.assert_allclose(pool_grid(maps, 1, "max")[0], maps[0].max(axis=(0, 1)))


def test_encode_images_matches_a_direct_loop_and_is_batch_independent():
    rng = np.random.default_rng(0)
    images = rng.random((5, 9, 9)).astype(np.float32)
    patches = rng.random((2000, 16)).astype(np.float32)
    whitener = Whitener(method="zca", eps=1e-2).fit(patches)
    W = rng.standard_normal((6, 16)).astype(np.float32)
    features = layer_features(whitener, W)
    encoded = encode_images(images, 4, features, grid=2, batch_size=2)
    assert encoded.shape == (5, 24)
    np.testing.assert_allclose(encoded, encode_images(images, 4, features, grid=2, batch_size=5), rtol=1e-5)
    # direct: the top-left quadrant of image 3 covers patch rows 0..2 and columns 0..2
    direct = sum(np.abs(whitener.transform(images[3, r:r + 4, c:c + 4].reshape(1, 16)) @ W.T)
                 for r in range(3) for c in range(3))
    np.testing.assert_allclose(encoded[3, :6], direct.ravel(), rtol=1e-4)


def test_layer_features_pooled_and_split():
    rng = np.random.default_rng(1)
    patches = rng.random((500, 9))
    whitener = Whitener(method="pca", eps=1e-2, dtype=np.float64).fit(patches)
    W = rng.standard_normal((8, 9))
    pool = subspace_pooling(8, 2, np.float64)
    responses = whitener.transform(patches) @ W.T
    np.testing.assert_allclose(layer_features(whitener, W, pool, eps=1e-2)(patches),
                               l2_pool(responses, pool, 1e-2))
    split = layer_features(whitener, W, nonlinearity="split")(patches)
    np.testing.assert_allclose(split[:, :8] - split[:, 8:], responses)
    thresholded = layer_features(whitener, W, nonlinearity="split", alpha=0.5)(patches)
    np.testing.assert_allclose(thresholded, np.maximum(split - 0.5, 0), atol=1e-12)
    assert 0 < (thresholded > 0).mean() < (split > 0).mean()
    with pytest.raises(ValueError, match="alpha"):
        layer_features(whitener, W, nonlinearity="split", alpha=-1)
    with pytest.raises(ValueError, match="nonlinearity"):
        layer_features(whitener, W, nonlinearity="tanh")


def test_cross_validation_separates_informative_from_noise_features():
    rng = np.random.default_rng(2)
    labels = np.repeat([0, 1], 60)
    informative = rng.standard_normal((120, 5)) + labels[:, None] * 2.0
    noise = rng.standard_normal((120, 5))
    results = compare_feature_sets({"informative": informative, "noise": noise}, labels, 5, 0)
    assert results["informative"]["mean"] > 0.9
    assert results["noise"]["mean"] < 0.75
    assert results["informative"]["n_features"] == 5 and len(results["noise"]["folds"]) == 5
    assert cross_validated_accuracy(noise, labels, 5, 0) == {k: results["noise"][k]
                                                             for k in ("mean", "std", "folds")}
