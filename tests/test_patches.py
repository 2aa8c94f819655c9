import numpy as np
import pytest

from terafeat.media.patches import dense_patches, sample_patches


def _images():
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (40, 50), dtype=np.uint8), rng.random((30, 30)).astype(np.float32)]


def test_patches_are_real_windows_of_the_images_in_float32():
    images = _images()
    patches = sample_patches(images, 500, 6, random_state=0)
    assert patches.shape == (500, 36) and patches.dtype == np.float32
    scaled = [images[0].astype(np.float32) / 255, images[1]]
    windows = np.concatenate([dense_patches(im, 6).reshape(-1, 36) for im in scaled])
    # every sampled patch is one of the images' windows
    distances = ((patches[:, None, :] - windows[None, :, :]) ** 2).sum(axis=2).min(axis=1)
    assert distances.max() < 1e-10
    assert patches.min() >= 0 and patches.max() <= 1


def test_same_seed_same_patches_and_both_images_used():
    images = _images()
    first = sample_patches(images, 2000, 5, random_state=3)
    np.testing.assert_array_equal(first, sample_patches(images, 2000, 5, random_state=3))
    assert not np.array_equal(first, sample_patches(images, 2000, 5, random_state=4))
    # positions are uniform over all images: the float image (30x30) gives values
    # that are not multiples of 1/255, the uint8 one only such values
    on_grid = np.all(np.isclose(first * 255, np.round(first * 255), atol=1e-3), axis=1)
    share = 1 - on_grid.mean()
    expected = 26 * 26 / (26 * 26 + 36 * 46)
    assert abs(share - expected) < 0.05


def test_colour_patches_flatten_row_column_channel():
    rng = np.random.default_rng(1)
    image = rng.random((12, 14, 3)).astype(np.float32)
    patches = sample_patches([image], 50, 4, random_state=0)
    assert patches.shape == (50, 48)
    windows = dense_patches(image, 4)
    assert windows.shape == (9, 11, 48)
    np.testing.assert_array_equal(windows[2, 3], image[2:6, 3:7].ravel())
    assert any(np.array_equal(p, w) for p in patches[:1] for w in windows.reshape(-1, 48))


def test_dense_patches_with_stride():
    image = np.arange(100, dtype=np.float32).reshape(10, 10)
    grid = dense_patches(image, 4, stride=3)
    assert grid.shape == (3, 3, 16)
    np.testing.assert_array_equal(grid[1, 2], image[3:7, 6:10].ravel())


@pytest.mark.parametrize("images, message", [
    ([np.zeros((20, 20), dtype=bool)], "dtype"),
    ([np.zeros((20, 20), dtype=object)], "dtype"),
    ([np.full((20, 20), np.nan)], "NaN"),
    ([np.zeros((20, 20)), np.zeros((5, 30))], "image 1 of size 5x30 is smaller"),
    ([np.zeros((20, 20)), np.zeros((20, 20, 3))], "channel"),
    ([np.zeros(20)], "shape"),
    ([], "no images"),
])
def test_bad_images_give_a_clear_error(images, message):
    with pytest.raises(ValueError, match=message):
        sample_patches(images, 10, 8, random_state=0)
