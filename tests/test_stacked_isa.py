"""Space-time blocks, stacked convolutional ISA, bags of words, chi2 SVM, protocols."""
import numpy as np
import pytest

from terafeat.classification.protocols import Chi2SVM, evaluate_protocol, make_classifier
from terafeat.encoding.pooled_layer import bag_of_words, motion_energy_image
from terafeat.learning.stacked_isa import ISALayer, StackedISA, convolve_layer
from terafeat.media.blocks import (
    block_counts,
    dense_blocks,
    fit_to_clips,
    grid_shape,
    layer2_shape,
    overlap_stride,
    sample_blocks,
    subblock_offsets,
)

BLOCK, STRIDE = (4, 5, 5), (2, 2, 2)  # small stand-ins for (10, 16, 16) and 4


def coded_clip(frames=12, height=14, width=15):
    """Pixel (t, r, c) holds t * 10000 + r * 100 + c, so a block tells where it came from."""
    t, r, c = np.meshgrid(np.arange(frames), np.arange(height), np.arange(width), indexing="ij")
    return (t * 10000 + r * 100 + c).astype(np.float32)


def test_sampled_blocks_are_seeded_slices_of_the_clip():
    clip = coded_clip()
    blocks = sample_blocks(clip, 50, (10, 8, 6), random_state=3)
    assert blocks.shape == (50, 10 * 8 * 6) and blocks.dtype == np.float32
    np.testing.assert_array_equal(blocks, sample_blocks(clip, 50, (10, 8, 6), random_state=3))
    for block in blocks:
        t, rest = divmod(int(block[0]), 10000)
        r, c = divmod(rest, 100)
        np.testing.assert_array_equal(block, clip[t:t + 10, r:r + 8, c:c + 6].ravel())


def test_sampling_names_a_clip_smaller_than_the_block():
    with pytest.raises(ValueError, match="walk.avi.*smaller than"):
        sample_blocks(np.zeros((5, 20, 20), np.float32), 3, (10, 16, 16), name="walk.avi")


def test_block_counts_follow_the_number_of_positions():
    counts = block_counts([(10, 16, 16), (11, 16, 16), (9, 30, 30)], 1000, (10, 16, 16), 0)
    assert counts.sum() == 1000 and counts[2] == 0 and counts[1] > counts[0]


def test_dense_blocks_cover_a_half_overlapping_grid():
    clip = coded_clip(20, 30, 30)
    blocks = dense_blocks(clip, (10, 16, 16))
    assert overlap_stride((10, 16, 16), 0.5) == (5, 8, 8)
    assert blocks.shape == (int(np.prod(grid_shape(clip.shape, (10, 16, 16), (5, 8, 8)))), 2560)
    np.testing.assert_array_equal(blocks[-1], clip[10:20, 8:24, 8:24].ravel())


def test_layer2_block_and_scaling_to_small_clips():
    assert layer2_shape() == (14, 20, 20)
    assert subblock_offsets().tolist()[-1] == [4, 4, 4] and len(subblock_offsets()) == 8
    assert fit_to_clips((51, 64, 64)) == ((10, 16, 16), (4, 4, 4), 1.0)
    block, stride, factor = fit_to_clips((7, 10, 12))
    assert factor == pytest.approx(0.5)
    assert all(b <= c for b, c in zip(layer2_shape(block, stride), (7, 10, 12)))


@pytest.fixture(scope="module")
def stacked():
    rng = np.random.default_rng(0)
    clips = [rng.random((10, 12, 12), dtype=np.float32) for _ in range(3)]
    outer = layer2_shape(BLOCK, STRIDE)
    blocks1 = np.concatenate([sample_blocks(clip, 300, BLOCK, 1) for clip in clips])
    blocks2 = np.concatenate([sample_blocks(clip, 200, outer, 2) for clip in clips])
    model = StackedISA(ISALayer(n_components=20, n_features=16, group_size=2, max_iter=10,
                                random_state=0),
                       ISALayer(n_components=12, n_features=8, group_size=2, max_iter=10,
                                random_state=1), BLOCK, STRIDE)
    return model.fit(blocks1, blocks2), clips, blocks2


def test_stacked_shapes(stacked):
    model, clips, blocks2 = stacked
    assert model.layer1.W_.shape == (16, 20) and model.layer1.n_outputs == 8
    assert model.layer2.W_.shape == (8, 12) and model.layer2.n_features_in_ == 8 * 8
    assert model.block_shape_ == (6, 7, 7) and model.n_descriptor_ == 8
    assert model.transform(blocks2[:5]).shape == (5, 8)
    assert model.layer1.input_filters().shape == (16, 100)


def test_convolution_equals_layer1_on_each_subblock(stacked):
    model, _, blocks2 = stacked
    outer = blocks2[:7].reshape(-1, *model.block_shape_)
    expected = np.concatenate([
        model.layer1.transform(outer[:, t:t + 4, r:r + 5, c:c + 5].reshape(7, -1))
        for t, r, c in subblock_offsets(STRIDE)], axis=1).reshape(7, 8, -1)
    # the convolved output groups by block, then sub-block
    got = convolve_layer(model.layer1, blocks2[:7], BLOCK, STRIDE, batch_blocks=3)
    np.testing.assert_allclose(got.reshape(7, 8, -1), expected, rtol=1e-5, atol=1e-6)


def test_clip_descriptors_equal_the_transform_of_dense_blocks(stacked):
    model, clips, _ = stacked
    expected = model.transform(dense_blocks(clips[0], model.block_shape_))
    np.testing.assert_allclose(model.clip_descriptors(clips[0], batch_blocks=2), expected,
                               rtol=1e-5, atol=1e-6)
    one_layer = StackedISA(model.layer1, None, BLOCK, STRIDE)
    assert one_layer.clip_descriptors(clips[0]).shape[1] == 8


def test_bag_of_words_counts_nearest_words():
    centroids = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    descriptors = np.array([[1.0, 0.0], [9.0, 1.0], [8.0, -1.0], [0.5, 0.5]])
    np.testing.assert_allclose(bag_of_words(descriptors, centroids), [0.5, 0.5, 0.0])
    assert bag_of_words(np.empty((0, 2)), centroids).sum() == 0
    with pytest.raises(ValueError, match="do not fit"):
        bag_of_words(np.ones((2, 3)), centroids)


def test_motion_energy_image():
    clip = np.zeros((5, 32, 32), np.float32)
    clip[::2, 8:16, 8:16] = 1.0
    energy = motion_energy_image(clip, 16).reshape(16, 16)
    assert energy[4:8, 4:8].min() == pytest.approx(1.0) and energy[10:, 10:].max() == 0


def histogram_data(rng, n_per_class=12, words=20):
    """Two classes of histograms peaked on different halves of the words."""
    profiles = np.ones((2, words))
    profiles[0, :words // 2] = profiles[1, words // 2:] = 4
    labels = np.repeat([0, 1], n_per_class)
    histograms = np.stack([rng.dirichlet(profiles[label] * 3) for label in labels])
    return histograms, labels


def test_chi2_svm_separates_histograms_and_uses_the_mean_distance():
    histograms, labels = histogram_data(np.random.default_rng(0))
    model = Chi2SVM().fit(histograms, labels)
    assert 0 < model.gamma_ < np.inf and (model.predict(histograms) == labels).all()
    with pytest.raises(ValueError, match="non-negative"):
        Chi2SVM().fit(-histograms, labels)


def test_protocols_keep_groups_apart_and_score_mean_ap():
    histograms, labels = histogram_data(np.random.default_rng(1))
    groups = np.tile(np.arange(6), 4)
    result = evaluate_protocol(histograms, labels, "groups", make_classifier("chi2"), groups)
    assert len(result["fold_accuracy"]) == 6 and result["accuracy"] >= 0.9
    assert sorted(result["tested"]) == list(range(24)) and np.sum(result["confusion_matrix"]) == 24
    splits = np.where(np.arange(24) % 3 == 0, "test", "train")
    split = evaluate_protocol(histograms, labels, "split", make_classifier("linear"), splits=splits)
    assert len(split["tested"]) == 8
    matrix = np.stack([labels == 0, labels == 1], axis=1).astype(int)
    scores = evaluate_protocol(histograms, matrix, "mean_ap", make_classifier("chi2"), splits=splits)
    assert len(scores["ap"]) == 2 and scores["mean_ap"] > 0.9


def test_protocols_score_the_held_out_items_on_their_test_features():
    histograms, labels = histogram_data(np.random.default_rng(1))
    groups = np.tile(np.arange(6), 4)
    model = make_classifier("chi2")
    same = evaluate_protocol(histograms, labels, "groups", model, groups,
                             test_features=histograms)
    assert same == evaluate_protocol(histograms, labels, "groups", model, groups)
    # the held-out items filmed otherwise: each one now looks like an item of the other class
    swapped = histograms[::-1]
    assert np.all(labels[::-1] != labels)
    fooled = evaluate_protocol(histograms, labels, "groups", model, groups, test_features=swapped)
    assert same["accuracy"] >= 0.9 and fooled["accuracy"] <= 0.1
    with pytest.raises(ValueError, match="do not match"):
        evaluate_protocol(histograms, labels, "groups", model, groups,
                          test_features=histograms[:5])
    splits = np.where(np.arange(24) % 3 == 0, "test", "train")
    with pytest.raises(ValueError, match="not mean_ap"):
        evaluate_protocol(histograms, np.stack([labels == 0, labels == 1], axis=1).astype(int),
                          "mean_ap", model, splits=splits, test_features=histograms)
