"""Unit scoring, optimal stimulus, invariance curves and score (terafeat.analysis)."""
import numpy as np
import pytest

from terafeat.analysis.face_data import face_detection_splits, lfw_face_half
from terafeat.analysis.invariance import (invariance_curves, invariance_score, patch_trajectories,
                                         transform_images, unit_set_invariance)
from terafeat.analysis.optimal_stimulus import optimal_stimulus
from terafeat.analysis.unit_scoring import (
    best_thresholds,
    detection_accuracy,
    linear_ceiling,
    random_unit_margin,
    score_face_units,
    template_unit,
    thresholded_accuracy,
    unit_auc,
)


def test_face_detection_splits_choose_on_the_training_half_and_hold_out_the_test_half():
    images, is_face, held_out = face_detection_splits(16, n_nonfaces_per_face=3.0, random_state=5)
    assert images.shape == (2 * (50 + 150), 16, 16) and images.dtype == np.float32
    assert (is_face.sum(), held_out.sum(), (is_face & held_out).sum()) == (100, 200, 50)
    selection = images[~held_out]
    np.testing.assert_array_equal(selection[is_face[~held_out]], np.clip(
        lfw_face_half("train", 16), 0, 1))
    np.testing.assert_array_equal(images[is_face & held_out], np.clip(
        lfw_face_half("test", 16), 0, 1))
    crops_a, crops_b = images[~is_face & ~held_out], images[~is_face & held_out]
    distances = ((crops_a[:, None] - crops_b[None]) ** 2).sum(axis=(2, 3))
    assert distances.min() > 0  # no crop in both parts
    again = face_detection_splits(16, n_nonfaces_per_face=3.0, random_state=5)
    np.testing.assert_array_equal(again[0], images)
    assert not np.array_equal(face_detection_splits(16, 3.0, random_state=6)[0], images)
    with pytest.raises(ValueError, match="n_nonfaces_per_face"):
        face_detection_splits(16, n_nonfaces_per_face=-1)


def brute_force_accuracy(response, is_face, balanced=False):
    cuts = np.r_[-np.inf, np.unique(response)]
    if balanced:
        return max(((response[is_face] > cut).mean() + (response[~is_face] <= cut).mean()) / 2
                   for cut in cuts)
    return max(np.mean((response > cut) == is_face) for cut in cuts)


def test_balanced_thresholds_match_brute_force_and_chance_is_one_half():
    rng = np.random.default_rng(2)
    is_face = rng.random(80) < 0.2
    responses = np.round(rng.standard_normal((80, 6)) + is_face[:, None] * np.arange(6), 1)
    accuracy, threshold = best_thresholds(responses, is_face, balanced=True)
    for unit in range(6):
        assert accuracy[unit] == pytest.approx(
            brute_force_accuracy(responses[:, unit], is_face, balanced=True))
    np.testing.assert_allclose(thresholded_accuracy(responses, threshold, is_face, True), accuracy)
    # a constant unit: the majority rate plain, one half balanced
    constant = np.zeros((80, 1))
    assert detection_accuracy(constant, is_face)[0] == pytest.approx(1 - is_face.mean())
    assert detection_accuracy(constant, is_face, balanced=True)[0] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="only one class"):
        best_thresholds(responses, np.ones(80, bool), balanced=True)


def test_unit_auc_matches_scikit_learn_with_ties():
    from sklearn.metrics import roc_auc_score
    rng = np.random.default_rng(3)
    is_face = rng.random(70) < 0.3
    responses = np.round(rng.standard_normal((70, 5)) + is_face[:, None] * np.arange(5), 1)
    np.testing.assert_allclose(unit_auc(responses, is_face),
                               [roc_auc_score(is_face, column) for column in responses.T])
    with pytest.raises(ValueError, match="only one class"):
        unit_auc(responses, np.zeros(70, bool))


def test_best_thresholds_match_brute_force_with_ties():
    rng = np.random.default_rng(0)
    is_face = rng.random(60) < 0.4
    responses = np.round(rng.standard_normal((60, 7)) + is_face[:, None] * np.arange(7), 1)
    accuracy, threshold = best_thresholds(responses, is_face)
    for unit in range(7):
        assert accuracy[unit] == pytest.approx(brute_force_accuracy(responses[:, unit], is_face))
        assert np.mean((responses[:, unit] > threshold[unit]) == is_face) == pytest.approx(
            accuracy[unit])
    np.testing.assert_array_equal(detection_accuracy(responses, is_face), accuracy)


def test_polarity_is_high_response_means_face():
    is_face = np.r_[np.ones(10, bool), np.zeros(30, bool)]
    detector = is_face.astype(float)
    accuracy = detection_accuracy(np.c_[detector, -detector, np.zeros(40)], is_face)
    # a perfect detector; its negation and a constant unit only reach the majority rate
    np.testing.assert_allclose(accuracy, [1.0, 0.75, 0.75])
    with pytest.raises(ValueError, match="is_face"):
        detection_accuracy(np.zeros((5, 2)), np.zeros(4, bool))


def test_optimal_stimulus_of_a_linear_unit_is_its_normalised_filter():
    w = np.random.default_rng(1).standard_normal(36)
    x = optimal_stimulus(lambda x: w @ x, lambda x: w, (6, 6), n_starts=2, random_state=0)
    assert x.shape == (6, 6)
    np.testing.assert_allclose(x.ravel(), w / np.linalg.norm(w), atol=1e-6)


def test_optimal_stimulus_of_a_pooled_unit_is_the_top_eigenvector():
    rng = np.random.default_rng(2)
    group = rng.standard_normal((3, 25))  # three simple units pooled by one L2 unit
    eps = 1e-2

    def response(x):
        return np.sqrt(eps + np.sum((group @ x) ** 2))

    def gradient(x):
        z = group @ x
        return group.T @ z / response(x)

    x = optimal_stimulus(response, gradient, (5, 5), random_state=0).ravel()
    eigenvalues, eigenvectors = np.linalg.eigh(group.T @ group)
    top = eigenvectors[:, -1]
    assert abs(x @ top) == pytest.approx(1.0, abs=1e-6)
    assert response(x) == pytest.approx(np.sqrt(eps + eigenvalues[-1]), rel=1e-9)
    again = optimal_stimulus(response, gradient, (5, 5), random_state=0).ravel()
    np.testing.assert_array_equal(x, again)


def test_invariance_score_of_units_with_known_invariance():
    rng = np.random.default_rng(3)
    base = rng.standard_normal((2000, 1))
    invariant = np.repeat(base[None], 5, axis=0)
    unrelated = rng.standard_normal((5, 2000, 1))
    rate = 0.05
    assert invariance_score(base, invariant, rate)[0] == pytest.approx(1 / rate, rel=1e-9)
    assert invariance_score(base, unrelated, rate)[0] == pytest.approx(1.0, abs=0.6)


def test_energy_unit_is_invariant_to_circular_shifts_and_a_linear_unit_is_not():
    # a quadrature pair pooled in L2 (a Fourier energy unit) vs its cosine half alone
    rng = np.random.default_rng(4)
    n, d = 3000, 16
    signals = rng.standard_normal((n, d))
    phase = 2 * np.pi * 3 * np.arange(d) / d
    cosine, sine = np.cos(phase), np.sin(phase)

    def units(x):
        linear = x @ cosine
        return np.c_[np.sqrt(linear ** 2 + (x @ sine) ** 2), linear]

    shifted = np.stack([units(np.roll(signals, s, axis=1)) for s in (1, 2, 3)])
    scores = invariance_score(units(signals), shifted, firing_rate=0.02)
    assert scores[0] == pytest.approx(1 / 0.02, rel=1e-6)  # energy: exactly invariant
    assert scores[1] < 0.5 * scores[0]


def test_unit_sets_on_patch_trajectories_rank_a_blurred_unit_above_single_pixels():
    # on white noise, a unit averaging the patch barely changes when it moves a pixel or
    # turns; units reading one pixel each see unrelated values; a set's score must show it
    image = np.random.default_rng(6).random((96, 96)).astype(np.float32)
    trajectories = patch_trajectories([image], 1500, 8, (1, 2), (10, 20), random_state=0)
    assert trajectories[0].shape == (1500, 64)
    assert {name: copies.shape for name, copies in trajectories[1].items()} == {
        "translation": (8, 1500, 64), "rotation": (4, 1500, 64)}
    sets = {"patch mean": lambda X: X.mean(axis=1, keepdims=True),
            "pixels": lambda X: X[:, [0, 7, 56, 63]]}
    scores = unit_set_invariance(sets, trajectories, firing_rate=0.05, top=1.0)
    for name in ("translation", "rotation"):
        assert scores["patch mean"][name] > 3 * scores["pixels"][name], (name, scores)
    assert scores == unit_set_invariance(sets, trajectories, firing_rate=0.05, top=1.0)


def test_invariance_curves_peak_at_the_template():
    rng = np.random.default_rng(5)
    template = rng.random((1, 15, 15)).astype(np.float32)
    template -= template.mean()

    def respond(images):
        return (images - images.mean(axis=(1, 2), keepdims=True)).reshape(len(images), -1) \
            @ template.ravel()

    curves = invariance_curves(respond, template, {"translation": (-3, 0, 3),
                                                   "rotation": (-30, 0, 30),
                                                   "scale": (0.8, 1.0, 1.25)})
    for name, curve in curves.items():
        responses = curve["responses"]
        assert responses.shape == (3, 1)
        assert responses[1, 0] == pytest.approx(respond(template)[0], rel=1e-5)
        assert responses[1, 0] > responses[[0, 2], 0].max(), name
    with pytest.raises(ValueError, match="unknown transformation"):
        invariance_curves(respond, template, {"shear": (1,)})
    np.testing.assert_allclose(transform_images(template), template, atol=1e-6)


def test_a_planted_face_unit_beats_the_random_unit_baseline_and_noise_does_not():
    rng = np.random.default_rng(0)
    is_face = np.r_[np.ones(50, bool), np.zeros(100, bool)]
    noise = rng.standard_normal((150, 200))
    planted = noise.copy()
    planted[:, 37] = 3.0 * is_face + rng.standard_normal(150)
    scores = score_face_units(planted, is_face, random_state=0)
    assert scores["best_unit"] == 37 and scores["n_evaluation"] == 75
    assert random_unit_margin(scores) > 0.05
    assert random_unit_margin(scores, n_std=0) == pytest.approx(
        scores["best_unit_accuracy"] - scores["random_unit_accuracy"])
    assert scores["linear_accuracy"] == linear_ceiling(planted, is_face, 0)
    assert linear_ceiling(planted[:, 30:40], is_face, 0) > 0.85
    chance = score_face_units(noise, is_face, random_state=0)
    assert random_unit_margin(chance) < 0 and linear_ceiling(noise[:, 30:40], is_face, 0) < 0.75


def test_template_unit_is_the_mean_templates_filter():
    rng = np.random.default_rng(1)
    templates, images = rng.random((4, 3, 5)), rng.random((6, 3, 5))
    np.testing.assert_allclose(template_unit(images, templates),
                               images.reshape(6, -1) @ templates.mean(axis=0).ravel())
    with pytest.raises(ValueError, match="do not match templates"):
        template_unit(images, templates[:, :2])


def test_balanced_linear_ceiling_finds_a_rare_class():
    # 1 face per 20 non-faces, three weakly informative units: a classifier fitted and
    # tuned for plain accuracy calls everything a non-face (balanced accuracy 0.5)
    rng = np.random.default_rng(0)
    is_face = np.r_[np.ones(50, bool), np.zeros(1000, bool)]
    responses = rng.standard_normal((len(is_face), 20))
    responses[is_face, :3] += 1.2
    held_out = rng.random(len(is_face)) < 0.5
    assert linear_ceiling(responses, is_face, 0, held_out, balanced=True) > 0.75
    assert linear_ceiling(responses, is_face, 0, held_out) > 0.9  # plain accuracy: 20 / 21


def test_a_unit_that_only_fits_the_selection_part_fails_on_the_held_out_part():
    rng = np.random.default_rng(4)
    is_face = np.tile(np.r_[np.ones(20, bool), np.zeros(80, bool)], 2)
    held_out = np.r_[np.zeros(100, bool), np.ones(100, bool)]
    responses = rng.standard_normal((200, 50))
    responses[:100, 7] += 4.0 * is_face[:100]  # a face unit on the selection part only
    scores = score_face_units(responses, is_face, 0, held_out=held_out, balanced=True)
    assert (scores["n_selection"], scores["n_evaluation"]) == (100, 100)
    assert scores["best_unit"] == 7 and scores["best_unit_selection_accuracy"] > 0.95
    assert scores["best_unit_accuracy"] < 0.7 and random_unit_margin(scores) < 0
    assert scores["majority_accuracy"] == 0.5 and abs(scores["random_unit_auc"] - 0.5) < 0.05
    responses[100:, 7] += 4.0 * is_face[100:]  # now a face unit on both parts
    scores = score_face_units(responses, is_face, 0, held_out=held_out, balanced=True)
    assert scores["best_unit_accuracy"] > 0.9 and random_unit_margin(scores) > 0.2
    assert scores["best_unit_auc"] > 0.95
    assert scores["linear_accuracy"] == linear_ceiling(responses, is_face, 0, held_out, True)
    with pytest.raises(ValueError, match="held-out part needs faces and non-faces"):
        score_face_units(responses, is_face, 0, held_out=held_out & ~is_face)
    with pytest.raises(ValueError, match="held_out of shape"):
        score_face_units(responses, is_face, 0, held_out=held_out[:10])
