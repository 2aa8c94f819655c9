"""Image decoding on real small files written with Pillow: modes, resizing, damaged files."""
import pickle

import numpy as np
import pytest
from PIL import Image
from skimage.color import rgb2gray

from terafeat.media.adaptations import ImageAdaptations, describe_adaptations
from terafeat.media.images import ImageReadError, iter_image_batches, read_image, read_images

RED, BLUE = (255, 0, 0), (0, 0, 255)


def pixels(seed=0, shape=(6, 8, 3)) -> np.ndarray:
    """Seeded random uint8 pixels."""
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def save(image, path, **options):
    """Save a PIL image or a uint8 array to ``path``; returns the path."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    image.save(path, **options)
    return path


def smooth(height=64, width=64) -> np.ndarray:
    """A smooth RGB ramp, uint8 (JPEG keeps it nearly exact)."""
    rows, cols = np.mgrid[0:height, 0:width]
    return np.stack([rows * 255 // (height - 1), cols * 255 // (width - 1),
                     np.full_like(rows, 128)], axis=2).astype(np.uint8)


@pytest.fixture()
def bad_files(tmp_path):
    """A truncated JPEG, a text file named .jpg, an empty PNG and a missing path."""
    good = save(pixels(1, (64, 64, 3)), tmp_path / "noise.jpg", quality=90).read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(good[:len(good) // 2])
    (tmp_path / "notes.jpg").write_text("not an image\n")
    (tmp_path / "empty.png").write_bytes(b"")
    return {"truncated.jpg": "truncated or corrupt", "notes.jpg": "not an image file",
            "empty.png": "not an image file", "missing.png": "file not found"}


# Modes

@pytest.mark.parametrize("suffix", [".png", ".tif", ".bmp"])
def test_lossless_rgb_is_exact(tmp_path, suffix):
    image = pixels()
    result = read_image(save(image, tmp_path / f"image{suffix}"))
    assert result.dtype == np.float32 and result.shape == (6, 8, 3)
    np.testing.assert_array_equal(result, image / np.float32(255))


def test_jpeg_is_close(tmp_path):
    image = smooth()
    result = read_image(save(image, tmp_path / "ramp.jpg", quality=95))
    assert np.abs(result - image / 255).mean() < 0.01


def test_grey_and_colour_modes(tmp_path):
    grey = pixels(shape=(6, 8))
    path = save(grey, tmp_path / "grey.png")
    as_rgb = read_image(path)
    assert as_rgb.shape == (6, 8, 3) and (as_rgb == (grey / np.float32(255))[..., None]).all()
    np.testing.assert_array_equal(read_image(path, mode="grey"), grey / np.float32(255))
    colour = pixels()
    result = read_image(save(colour, tmp_path / "colour.png"), mode="grey")
    assert result.shape == (6, 8) and result.dtype == np.float32
    np.testing.assert_allclose(result, rgb2gray(colour / 255), atol=1e-6)


def test_alpha_composited_on_white_or_dropped(tmp_path):
    rgba = np.zeros((2, 3, 4), np.uint8)
    rgba[..., :3] = RED
    rgba[..., 3] = [[0, 255, 255], [51, 255, 255]]  # transparent, opaque; 20 % opaque
    path = save(rgba, tmp_path / "rgba.png")
    white = read_image(path)
    np.testing.assert_array_equal(white[0, 0], [1, 1, 1])
    np.testing.assert_array_equal(white[0, 1], [1, 0, 0])
    np.testing.assert_allclose(white[1, 0], [1, 0.8, 0.8], atol=1 / 255)
    np.testing.assert_array_equal(read_image(path, alpha="drop"),
                                  np.broadcast_to([1, 0, 0], (2, 3, 3)))
    grey_alpha = Image.fromarray(np.array([[0, 0]], np.uint8)).convert("LA")
    grey_alpha.putalpha(Image.fromarray(np.array([[0, 255]], np.uint8)))
    np.testing.assert_allclose(read_image(save(grey_alpha, tmp_path / "la.png"), mode="grey"),
                               [[1, 0]], atol=1e-6)


def test_palette_with_and_without_transparency(tmp_path):
    palette = Image.new("P", (3, 2))
    palette.putpalette([*RED, *BLUE] + [0] * (256 * 3 - 6))
    palette.putpixel((0, 0), 1)
    plain = read_image(save(palette, tmp_path / "palette.png"))
    np.testing.assert_array_equal(plain[0, :2], [[0, 0, 1], [1, 0, 0]])
    gif = save(palette, tmp_path / "palette.gif", transparency=1)  # blue is transparent
    np.testing.assert_array_equal(read_image(gif)[0, :2], [[1, 1, 1], [1, 0, 0]])
    np.testing.assert_array_equal(read_image(gif, alpha="drop")[0, :2], [[0, 0, 1], [1, 0, 0]])


@pytest.mark.parametrize("suffix", [".tif", ".jpg"])
def test_cmyk(tmp_path, suffix):
    path = save(Image.new("CMYK", (4, 3), (0, 255, 255, 0)), tmp_path / f"cmyk{suffix}")
    np.testing.assert_allclose(read_image(path), np.broadcast_to([1, 0, 0], (3, 4, 3)),
                               atol=2 / 255)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_grey_keeps_its_depth(tmp_path, suffix):
    deep = np.array([[0, 257, 32768, 65535]], np.uint16)
    path = save(deep, tmp_path / f"deep{suffix}")
    assert Image.open(path).mode.startswith("I")
    result = read_image(path, mode="grey")
    np.testing.assert_allclose(result, deep / 65535, rtol=1e-6)
    assert read_image(path).shape == (1, 4, 3)


def test_bilevel_and_float_images(tmp_path):
    bilevel = Image.new("1", (3, 2), 1)
    bilevel.putpixel((0, 0), 0)
    np.testing.assert_array_equal(read_image(save(bilevel, tmp_path / "bits.png"), mode="grey"),
                                  [[0, 1, 1], [1, 1, 1]])
    floats = np.array([[0.25, 1.5, -1.0]], np.float32)  # values outside [0, 1] are clipped
    np.testing.assert_array_equal(read_image(save(floats, tmp_path / "float.tif"), mode="grey"),
                                  [[0.25, 1, 0]])


# Resizing

def test_resize_takes_height_then_width(tmp_path):
    path = save(smooth(48, 64), tmp_path / "ramp.png")
    assert read_image(path, size=(24, 16)).shape == (24, 16, 3)
    assert read_image(path, size=10, mode="grey").shape == (10, 10)


def test_resize_is_antialiased(tmp_path):
    checkerboard = (np.indices((64, 64)).sum(axis=0) % 2 * 255).astype(np.uint8)
    result = read_image(save(checkerboard, tmp_path / "check.png"), size=8, mode="grey")
    np.testing.assert_allclose(result, 0.5, atol=0.01)  # not 0s and 1s as in subsampling


def test_crop_keeps_the_centre_and_its_aspect(tmp_path):
    stripes = np.zeros((20, 40, 3), np.uint8)  # red | green | blue, 10 | 20 | 10 columns
    stripes[:, :10, 0] = stripes[:, 10:30, 1] = stripes[:, 30:, 2] = 255
    path = save(stripes, tmp_path / "stripes.png")
    cropped = read_image(path, size=5, crop=True)  # the green square; the filter's edge
    np.testing.assert_array_equal(cropped[:, 1:4], np.broadcast_to([0, 1, 0], (5, 3, 3)))
    assert cropped[..., 1].min() > 0.8  # samples a little beyond the crop box
    squashed = read_image(path, size=5)  # without crop all three stripes remain
    assert squashed[:, 0, 0].min() > 0.5 and squashed[:, -1, 2].min() > 0.5


def test_jpeg_draft_decoding_matches_a_full_decode(tmp_path):
    path = save(smooth(256, 256), tmp_path / "big.jpg", quality=95)
    full = Image.open(path).convert("RGB").resize((32, 32), Image.Resampling.BILINEAR)
    np.testing.assert_allclose(read_image(path, size=32), np.asarray(full) / 255, atol=0.02)


@pytest.mark.parametrize("options, message", [
    ({"mode": "bgr"}, "mode must be one of"), ({"alpha": "black"}, "alpha must be one of"),
    ({"size": (0, 4)}, "size must be positive"),
])
def test_bad_options(tmp_path, options, message):
    path = save(pixels(), tmp_path / "image.png")
    with pytest.raises(ValueError, match=message):
        read_image(path, **options)


# Damaged files

def test_damaged_files_raise_naming_the_file(tmp_path, bad_files):
    for name, problem in bad_files.items():
        with pytest.raises(ImageReadError, match=problem) as caught:
            read_image(tmp_path / name)
        assert caught.value.path == str(tmp_path / name)
        assert str(caught.value).startswith(f"{tmp_path / name}: ")
    with pytest.raises(ImageReadError, match="cannot read the file"):
        read_image(tmp_path)


def test_image_read_error_pickles():
    error = pickle.loads(pickle.dumps(ImageReadError("a/b.jpg", "truncated")))
    assert isinstance(error, ValueError)
    assert (error.path, error.problem) == ("a/b.jpg", "truncated")
    assert str(error) == "a/b.jpg: truncated"


# Many files

@pytest.fixture()
def mixed_paths(tmp_path, bad_files):
    """Seven paths: good images at 0, 2, 4, 6 (two sizes), damaged files between."""
    good = [save(pixels(seed, (10 + seed, 12, 3)), tmp_path / f"good{seed}.png")
            for seed in range(4)]
    return [good[0], tmp_path / "truncated.jpg", good[1], tmp_path / "notes.jpg", good[2],
            tmp_path / "missing.png", good[3]]


def test_read_images_skips_and_reports(mixed_paths):
    images, kept, problems = read_images(mixed_paths, size=(8, 8), mode="grey")
    assert images.shape == (4, 8, 8) and images.dtype == np.float32
    assert kept.tolist() == [0, 2, 4, 6]
    assert [path for path, _ in problems] == [str(mixed_paths[i]) for i in (1, 3, 5)]
    np.testing.assert_array_equal(images[1], read_image(mixed_paths[2], (8, 8), "grey"))
    with pytest.raises(ImageReadError, match="truncated.jpg"):
        read_images(mixed_paths, size=8, on_error="raise")


def test_read_images_without_size_needs_one_size(mixed_paths):
    images, kept, problems = read_images(mixed_paths[:2])
    assert images.shape == (1, 10, 12, 3) and kept.tolist() == [0]
    images, kept, problems = read_images([mixed_paths[0], mixed_paths[2]])
    assert kept.tolist() == [0] and "is 11x12, not 10x12" in problems[0][1]


def test_read_images_with_no_good_file(mixed_paths):
    images, kept, problems = read_images([mixed_paths[1]], size=(4, 5))
    assert images.shape == (0, 4, 5, 3) and kept.shape == (0,) and len(problems) == 1


def test_batches_bound_memory_and_keep_global_positions(mixed_paths):
    batches = list(iter_image_batches(mixed_paths, batch_size=3, size=8))
    assert [kept.tolist() for kept, _, _ in batches] == [[0, 2], [4], [6]]
    assert [len(images) for _, images, _ in batches] == [2, 1, 1]
    assert [len(problems) for _, _, problems in batches] == [1, 2, 0]
    whole, _, _ = read_images(mixed_paths, size=8)
    np.testing.assert_array_equal(np.concatenate([images for _, images, _ in batches]), whole)
    with pytest.raises(ValueError, match="batch_size"):
        next(iter_image_batches(mixed_paths, batch_size=0))


def test_reading_counts_what_it_did_to_each_image(tmp_path):
    rng = np.random.default_rng(0)
    stored = {"square.png": (8, 8, "RGB"), "wide.png": (16, 8, "RGB"),  # (width, height)
              "grey.png": (10, 10, "L"), "narrow.jpg": (8, 12, "RGB")}
    for name, (width, height, mode) in stored.items():
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        Image.fromarray(pixels).convert(mode).save(tmp_path / name)
    (tmp_path / "broken.png").write_bytes(b"not an image")
    paths = [tmp_path / name for name in [*stored, "broken.png"]]
    noted = ImageAdaptations()
    images, kept, problems = read_images(paths, (8, 8), crop=True, adaptations=noted)
    assert len(kept) == 4 and len(problems) == 1  # the broken file is not counted
    # wide: an 8x8 centre crop, no resize; grey: resized, copied to three channels;
    # narrow: cropped to 8x8; square: as stored
    assert (noted.centre_cropped, noted.resized, noted.grey_to_colour) == (2, 1, 1)
    assert noted.sizes == {(8, 8): 1, (16, 8): 1, (10, 10): 1, (8, 12): 1}
    assert dict(noted.modes) == {"RGB": 3, "L": 1}
    stretched = ImageAdaptations()
    read_images(paths[:2], (8, 8), adaptations=stretched)  # no crop: the wide one is resized
    assert (stretched.centre_cropped, stretched.resized) == (0, 1)
    grey = ImageAdaptations()
    read_images(paths[:3], mode="grey", size=(8, 8), adaptations=grey)
    assert (grey.colour_to_grey, grey.grey_to_colour) == (2, 0)
    # counts add up across batches and processes, and survive JSON
    total = ImageAdaptations.from_dict(noted.to_dict()) + stretched
    assert total.summary() == {
        "images": 6, "distinct_sizes": 4,
        "common_sizes": [["8x8", 2], ["16x8", 2], ["10x10", 1], ["8x12", 1]],
        "smallest": "8x8", "largest": "16x8", "modes": {"RGB": 5, "L": 1},
        "centre_cropped": 2, "resized": 2, "grey_to_colour": 1, "colour_to_grey": 0}
    assert describe_adaptations(total.summary()).startswith(
        "6 images of 4 size(s) (8x8: 2, 16x8: 2, 10x10: 1, 8x12: 1; smallest 8x8, "
        "largest 16x8); 2 centre-cropped, 2 resized, 1 grey copied to three channels")
