"""Camera changes of clips (terafeat.media.camera), on real videos encoded with OpenCV."""
import numpy as np
import pytest
from video_fixtures import SQUARE, SQUARE_TOP, square_column, write_video

from terafeat.media.camera import (KINDS, MAX_BRIGHTNESS, MAX_SHIFT, MAX_SPEED, MAX_ZOOM,
                                   CameraChange, camera_change)
from terafeat.media.video import read_clip


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """The red square moving right one pixel per frame, 24 frames of 64 x 64, as decoded."""
    path = write_video(tmp_path_factory.mktemp("camera") / "square.avi", 24, 64, 64)
    return read_clip(path)


def square_row(frame: np.ndarray) -> float:
    return float(np.nonzero(frame > 0.5 * frame.max())[0].mean())


def test_no_change_keeps_the_clip(clip):
    np.testing.assert_array_equal(CameraChange().apply(clip), clip)
    np.testing.assert_array_equal(camera_change("combined", 0.0, 3).apply(clip), clip)


def test_translation_moves_the_frame_by_its_fraction(clip):
    moved = CameraChange(shift=(0.25, -0.125)).apply(clip)
    assert moved.shape == clip.shape and moved.dtype == np.float32
    for t in (10, 16):
        assert square_row(moved[t]) == pytest.approx(square_row(clip[t]) + 16, abs=0.5)
        assert square_column(moved[t]) == pytest.approx(square_column(clip[t]) - 8, abs=0.5)


def test_zoom_scales_distances_from_the_centre(clip):
    zoomed = CameraChange(zoom=MAX_ZOOM).apply(clip)
    centre = (64 - 1) / 2
    for t in (14, 20):
        assert square_column(zoomed[t]) - centre == pytest.approx(
            (square_column(clip[t]) - centre) * MAX_ZOOM, abs=0.6)
    assert square_row(zoomed[14]) - centre == pytest.approx(
        (SQUARE_TOP + (SQUARE - 1) / 2 - centre) * MAX_ZOOM, abs=0.6)


def test_speed_resamples_time_with_interpolation(clip):
    fast = CameraChange(speed=MAX_SPEED).apply(clip)
    assert len(fast) == 16  # 24 / 1.5
    np.testing.assert_allclose(fast[2], clip[3], atol=1e-6)  # time 3.0
    np.testing.assert_allclose(fast[1], (clip[1] + clip[2]) / 2, atol=1e-6)  # time 1.5
    slow = CameraChange(speed=1 / MAX_SPEED).apply(clip)
    assert len(slow) == 36
    # the square's speed in pixels per frame follows the playback rate
    step = np.diff([square_column(frame) for frame in (fast[2], fast[8])])[0] / 6
    assert step == pytest.approx(1.5, abs=0.1)


def test_contrast_about_mid_grey_then_brightness_then_clipping():
    frames = np.array([[[0.6, 0.2, 1.0]]] * 3, np.float32)
    changed = CameraChange(contrast=1.5, brightness=0.1).apply(frames)
    np.testing.assert_allclose(changed[0, 0], [0.75, 0.15, 1.0], atol=1e-6)


def test_camera_change_draws_seeded_directions_at_the_strength():
    for kind in KINDS:
        assert camera_change(kind, 0.7, 5) == camera_change(kind, 0.7, 5)
    draws = [camera_change("combined", 1.0, seed) for seed in range(40)]
    for change in draws:
        assert np.hypot(*change.shift) == pytest.approx(MAX_SHIFT)
        assert change.zoom in (pytest.approx(MAX_ZOOM), pytest.approx(1 / MAX_ZOOM))
        assert change.speed in (pytest.approx(MAX_SPEED), pytest.approx(1 / MAX_SPEED))
        assert abs(change.brightness) == pytest.approx(MAX_BRIGHTNESS)
    assert len({change.zoom for change in draws}) == 2  # both directions occur
    half = camera_change("scale", 0.5, 1)
    assert half.zoom in (pytest.approx(MAX_ZOOM ** 0.5), pytest.approx(MAX_ZOOM ** -0.5))
    assert (half.shift, half.speed, half.contrast, half.brightness) == ((0.0, 0.0), 1.0, 1.0, 0.0)
    speed = camera_change("speed", 1.0, 2)
    assert speed.zoom == 1.0 and speed.shift == (0.0, 0.0)


@pytest.mark.parametrize("call, message", [
    (lambda: camera_change("shear", 0.5), "unknown camera change 'shear'"),
    (lambda: camera_change("scale", 1.5), "strength must be in"),
    (lambda: CameraChange(zoom=0), "zoom must be > 0"),
    (lambda: CameraChange().apply(np.zeros((1, 8, 8))), "expected a \\(T >= 2, H, W\\)"),
])
def test_bad_changes_are_refused(call, message):
    with pytest.raises(ValueError, match=message):
        call()
