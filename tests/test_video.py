"""Frame streaming from real video files encoded here with OpenCV."""
import pickle
import warnings

import numpy as np
import pytest
from video_fixtures import (
    SQUARE,
    SQUARE_TOP,
    extracted_shared,
    square_column,
    truncated_copy,
    write_video,
)

from terafeat.media.video import (
    TruncatedVideoWarning,
    VideoReadError,
    check_video,
    iter_frames,
    read_clip,
    scan_videos,
    video_info,
)

N_FRAMES, HEIGHT, WIDTH, FPS = 20, 32, 32, 20.0


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """A good AVI (MJPG) and MP4 (mp4v), a truncated AVI and MP4, an empty file, a text file."""
    folder = tmp_path_factory.mktemp("videos")
    avi = write_video(folder / "square.avi", N_FRAMES, HEIGHT, WIDTH, FPS)
    mp4 = write_video(folder / "square.mp4", N_FRAMES, HEIGHT, WIDTH, FPS)
    # Noise makes each frame bigger than the AVI header, so a cut at 60%
    # leaves a container that opens but holds only about half the frames.
    long_avi = write_video(folder / "long.avi", 40, 64, 64, FPS, texture_seed=0)
    (folder / "empty.avi").touch()
    (folder / "notes.mp4").write_text("not a video")
    return {
        "avi": avi,
        "mp4": mp4,
        "truncated_avi": truncated_copy(long_avi, folder / "cut.avi", 0.6),
        "truncated_mp4": truncated_copy(mp4, folder / "cut.mp4", 0.6),
        "empty": folder / "empty.avi",
        "text": folder / "notes.mp4",
        "missing": folder / "missing.avi",
    }


@pytest.mark.parametrize("kind", ["avi", "mp4"])
def test_info_reports_header(videos, kind):
    info = video_info(videos[kind])
    assert (info.n_frames, info.fps, info.width, info.height) == (N_FRAMES, FPS, WIDTH, HEIGHT)
    assert info.path == str(videos[kind])
    assert info.fourcc in {"avi": {"MJPG"}, "mp4": {"mp4v", "FMP4"}}[kind]


@pytest.mark.parametrize("kind", ["avi", "mp4"])
def test_read_clip_gives_grey_frames_in_order(videos, kind):
    clip = read_clip(videos[kind])
    assert clip.shape == (N_FRAMES, HEIGHT, WIDTH) and clip.dtype == np.float32
    assert 0.0 <= clip.min() and clip.max() <= 1.0
    # the square's left edge is at column t, so its centre at t + 3.5
    columns = [square_column(frame) for frame in clip]
    np.testing.assert_allclose(columns, np.arange(N_FRAMES) + (SQUARE - 1) / 2, atol=0.6)


def test_colour_frames_are_rgb(videos):
    clip = read_clip(videos["avi"], grey=False, max_frames=3)
    assert clip.shape == (3, HEIGHT, WIDTH, 3)
    red, green, blue = clip[0, SQUARE_TOP + SQUARE // 2, SQUARE // 2]
    assert red > 0.7 and green < 0.3 and blue < 0.3


def test_iter_frames_streams_lazily(videos):
    frames = iter_frames(videos["avi"])
    first = next(frames)
    assert first.shape == (HEIGHT, WIDTH)
    assert sum(1 for _ in frames) == N_FRAMES - 1


def test_scale_and_size(videos):
    assert read_clip(videos["avi"], scale=0.5).shape == (N_FRAMES, HEIGHT // 2, WIDTH // 2)
    assert read_clip(videos["mp4"], size=(12, 20), max_frames=4).shape == (4, 12, 20)
    assert read_clip(videos["avi"], size=(64, 48), grey=False, max_frames=2).shape == (2, 64, 48, 3)
    halved = read_clip(videos["avi"], scale=0.5)
    np.testing.assert_allclose([square_column(f) for f in halved],
                               (np.arange(N_FRAMES) + (SQUARE - 1) / 2) / 2, atol=0.8)


def test_target_fps_keeps_evenly_spaced_frames(videos):
    full = read_clip(videos["avi"])
    half_rate = read_clip(videos["avi"], target_fps=FPS / 2)
    np.testing.assert_array_equal(half_rate, full[::2])
    # 20 -> 8 fps keeps frames round(k * 2.5): 0, 3, 5, 8, 10, ...
    slow = read_clip(videos["avi"], target_fps=8)
    np.testing.assert_array_equal(slow, full[[0, 3, 5, 8, 10, 13, 15, 18]])
    assert read_clip(videos["avi"], target_fps=100).shape[0] == N_FRAMES  # none invented


def test_max_frames_caps_the_clip(videos):
    assert read_clip(videos["mp4"], max_frames=7).shape == (7, HEIGHT, WIDTH)
    assert read_clip(videos["mp4"], max_frames=500).shape[0] == N_FRAMES
    assert read_clip(videos["avi"], max_frames=3, target_fps=10).shape[0] == 3


@pytest.mark.parametrize("options, message", [
    ({"scale": 0.5, "size": (8, 8)}, "not both"),
    ({"scale": 0}, "scale must be > 0"),
    ({"size": (8, 0)}, "size must be"),
    ({"target_fps": -1}, "target_fps must be > 0"),
    ({"max_frames": 0}, "max_frames must be >= 1"),
])
def test_bad_options_are_rejected(videos, options, message):
    with pytest.raises(ValueError, match=message):
        read_clip(videos["avi"], **options)


@pytest.mark.parametrize("kind, problem", [
    ("missing", "file not found"),
    ("empty", "file is empty"),
    ("text", "cannot open"),
    ("truncated_mp4", "cannot open"),  # mp4v writes its index (moov) last
])
def test_unreadable_files_raise_naming_the_file(videos, kind, problem):
    for read in (video_info, read_clip, check_video, iter_frames):
        with pytest.raises(VideoReadError, match=problem) as caught:
            read(videos[kind])
        assert caught.value.path == str(videos[kind])
        assert str(videos[kind]) in str(caught.value)


def test_truncated_file_decodes_what_it_can_and_warns(videos):
    header = video_info(videos["truncated_avi"]).n_frames
    assert header == 40
    with pytest.warns(TruncatedVideoWarning, match=r"decoded only \d+ of the 40 frames"):
        clip = read_clip(videos["truncated_avi"])
    assert 0 < clip.shape[0] < 36
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # stopping early by choice is not truncation
        read_clip(videos["truncated_avi"], max_frames=5)
    with pytest.raises(VideoReadError, match=r"truncated: decoded only \d+ of the 40"):
        check_video(videos["truncated_avi"])


def test_check_video_counts_decoded_frames(videos):
    info = check_video(videos["mp4"])
    assert info.n_frames == N_FRAMES and info.width == WIDTH


def test_scan_videos_sorts_good_from_bad(videos):
    order = ["avi", "empty", "truncated_avi", "mp4", "text", "missing", "truncated_mp4"]
    good, problems = scan_videos(videos[kind] for kind in order)
    assert [info.path for info in good] == [str(videos["avi"]), str(videos["mp4"])]
    assert [path for path, _ in problems] == [str(videos[kind]) for kind in order
                                              if kind not in ("avi", "mp4")]
    messages = dict(problems)
    assert "empty" in messages[str(videos["empty"])]
    assert "truncated" in messages[str(videos["truncated_avi"])]
    # headers only: the truncated AVI opens, so it passes
    good, problems = scan_videos([videos["truncated_avi"], videos["empty"]], decode=False)
    assert len(good) == 1 and len(problems) == 1


def test_video_read_error_pickles():
    error = pickle.loads(pickle.dumps(VideoReadError("a/b.avi", "file is empty")))
    assert (error.path, error.problem, str(error)) == ("a/b.avi", "file is empty",
                                                      "a/b.avi: file is empty")


@pytest.fixture(scope="module")
def kth_sample(tmp_path_factory):
    return extracted_shared("kth-sample.tar", tmp_path_factory)


def test_real_kth_clips_decode_in_both_containers(kth_sample):
    """The original KTH AVIs (MPEG-4 Part 2) and H.264 MP4s: 160x120 at 25 fps."""
    good, problems = scan_videos(sorted(kth_sample.iterdir()))
    assert problems == []
    assert {(i.width, i.height, i.fps) for i in good} == {(160, 120, 25.0)}
    assert {i.fourcc for i in good} == {"FMP4", "h264"}
    for info in good:  # every frame the header announces decodes
        assert info.n_frames == video_info(info.path).n_frames
    clip = read_clip(kth_sample / "person01_boxing_d2_uncomp.mp4", scale=0.5, max_frames=10)
    assert clip.shape == (10, 60, 80)
