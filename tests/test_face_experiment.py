"""The face-neuron experiment's images (object distractors, no image on both sides), the
verdict over seeds and the optimal stimulus's correlation with the mean face."""
import cv2
import numpy as np
import pytest

from terafeat.analysis.face_data import lfw_face_half
from terafeat.analysis.face_experiment import face_experiment_images, is_object_set, object_images
from terafeat.analysis.optimal_stimulus import optimal_stimulus, template_correlation
from terafeat.analysis.verdict import face_neuron_verdict

SIZE = 12


@pytest.fixture(scope="module")
def object_root(tmp_path_factory):
    """A CIFAR-10-like folder: train/ and test/ of 2 classes, distinct random 8x8 RGB PNGs
    (PNG: lossless, so an image read twice is the same pixels)."""
    root = tmp_path_factory.mktemp("objects")
    rng = np.random.default_rng(0)
    for split, n in (("train", 40), ("test", 20)):
        for label in ("ship", "truck"):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(n):
                cv2.imwrite(str(folder / f"{i:04d}.png"), rng.integers(0, 256, (8, 8, 3),
                                                                        dtype=np.uint8))
    return root


def _rows_in(images, pool):
    """Index in ``pool`` (m, s, s) of each of ``images`` (n, s, s), -1 where absent."""
    distances = ((images[:, None] - pool[None]) ** 2).sum(axis=(2, 3))
    return np.where(distances.min(axis=1) == 0, distances.argmin(axis=1), -1)


def test_object_images_are_grey_seeded_and_disjoint_by_skip(object_root):
    first = object_images(object_root, "train", 10, SIZE, random_state=3)
    assert first.shape == (10, SIZE, SIZE) and first.dtype == np.float32
    assert 0 <= first.min() and first.max() <= 1
    np.testing.assert_array_equal(first, object_images(object_root, "train", 10, SIZE, 3))
    after = object_images(object_root, "train", 30, SIZE, random_state=3, skip=10)
    assert (_rows_in(after, first) == -1).all()
    with pytest.raises(ValueError, match=r"test/ holds 40 images, 41 needed"):
        object_images(object_root, "test", 41, SIZE)
    assert is_object_set(object_root) and not is_object_set(object_root / "train")
    assert not is_object_set(None)


def test_object_distractors_never_put_one_image_on_both_sides(object_root):
    data = face_experiment_images(SIZE, n_frames=40, face_fraction=0.25, n_nonfaces_per_face=0.4,
                                  random_state=1, object_root=object_root)
    frames, held_out, is_face, images = (data[key] for key in ("frames", "held_out", "is_face",
                                                               "images"))
    assert frames.shape == (40, SIZE, SIZE) and data["frame_is_face"].sum() == 10
    assert (is_face.sum(), held_out.sum(), (~is_face & held_out).sum()) == (100, 70, 20)
    train = object_images(object_root, "train", 80, SIZE, random_state=1)
    test = object_images(object_root, "test", 40, SIZE, random_state=1)
    object_frames = frames[~data["frame_is_face"]]
    assert (_rows_in(object_frames, train) >= 0).all()  # whole training-split images
    held_out_objects = images[~is_face & held_out]
    assert (_rows_in(held_out_objects, test) >= 0).all()  # from the test split
    selection_objects = images[~is_face & ~held_out]
    assert (_rows_in(selection_objects, train) >= 0).all()
    # nothing held out, and no selection distractor, is a training frame
    for part in (images[held_out], selection_objects):
        assert (_rows_in(part, frames) == -1).all()
    # nor a face of the held-out half among the (jittered) training-half faces' sources
    distances = ((lfw_face_half("train", SIZE)[:, None] - images[is_face & held_out][None]) ** 2)
    assert distances.sum(axis=(2, 3)).min() > 1e-3
    again = face_experiment_images(SIZE, 40, 0.25, 0.4, 1, object_root=object_root)
    np.testing.assert_array_equal(again["frames"], frames)
    with pytest.raises(ValueError, match="no train/ and test/ folders"):
        face_experiment_images(SIZE, 40, 0.25, 0.4, object_root=object_root / "train")


def test_bundled_distractors_crop_the_given_pictures():
    picture = np.random.default_rng(0).random((60, 60)).astype(np.float32)
    data = face_experiment_images(SIZE, 20, 0.5, 0.2, 0, crop_sources=[picture])
    assert data["frames"].shape == (20, SIZE, SIZE) and data["frame_is_face"].sum() == 10
    assert data["held_out"].sum() == 60 and data["is_face"].sum() == 100
    with pytest.raises(ValueError, match="crop_sources"):
        face_experiment_images(SIZE, 20, 0.5, 0.2, 0)


def test_the_verdict_says_yes_only_above_the_spread_over_seeds():
    yes = face_neuron_verdict([0.90, 0.88, 0.91], [0.70, 0.72, 0.69],
                              {"random unit": [0.5, 0.5, 0.51]})
    assert yes["face_neuron"] is True and yes["verdict"].startswith("face neuron")
    assert yes["margins"] == pytest.approx([0.20, 0.16, 0.22])
    assert yes["spread"] == pytest.approx(np.std([0.70, 0.72, 0.69], ddof=1))
    assert [row["network"] for row in yes["rows"]] == ["trained", "no faces", "random unit"]
    assert yes["rows"][2]["margin"] == pytest.approx(np.mean([0.40, 0.38, 0.40]))
    # above the control on average, but one seed's margin lies within the spread
    no = face_neuron_verdict([0.80, 0.74, 0.86], [0.72, 0.73, 0.70])
    assert no["face_neuron"] is False and no["verdict"].startswith("no face neuron")
    one = face_neuron_verdict([0.9], [0.6])
    assert one["face_neuron"] is None and one["verdict"].startswith("needs seeds")
    assert one["rows"][0]["std"] is None
    with pytest.raises(ValueError, match="same seeds"):
        face_neuron_verdict([0.9, 0.8], [0.6])
    with pytest.raises(ValueError, match="untrained"):
        face_neuron_verdict([0.9], [0.6], {"untrained": [float("nan")]})


def test_optimal_stimulus_of_a_mean_face_unit_correlates_with_the_mean_face():
    faces = lfw_face_half("test", SIZE)
    centred = faces.mean(axis=0) - faces.mean()
    stimulus = optimal_stimulus(lambda x: float(centred.ravel() @ x),
                                lambda x: centred.ravel(), (SIZE, SIZE), n_starts=1, max_iter=50)
    assert template_correlation(stimulus, faces) > 0.99
    noise = np.random.default_rng(0).standard_normal((SIZE, SIZE))
    assert abs(template_correlation(noise, faces)) < 0.3
    assert template_correlation(-stimulus, faces) < -0.99
    with pytest.raises(ValueError, match="are not"):
        template_correlation(stimulus, faces[:, :4])
