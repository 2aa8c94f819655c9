"""Single units scored as detectors: thresholds and accuracy chosen on one split and measured
on another, ROC area, the random-unit margin, a label-trained linear ceiling, a template unit.

Units come as response arrays (n_images, n_units), so any network serves."""
from __future__ import annotations

import numpy as np


def _check_scores(responses, is_face) -> tuple[np.ndarray, np.ndarray]:
    responses = np.asarray(responses, dtype=np.float64)
    if responses.ndim == 1:
        responses = responses[:, None]
    is_face = np.asarray(is_face, dtype=bool)
    if responses.ndim != 2 or is_face.shape != (responses.shape[0],):
        raise ValueError(f"responses of shape {responses.shape} do not match is_face of shape "
                         f"{is_face.shape}: expected (n, units) and (n,)")
    return responses, is_face


def _class_weights(is_face: np.ndarray, balanced: bool) -> tuple[float, float]:
    """Weight of each face and of each non-face in an accuracy: 1 / n (plain), or
    1 / (2 * class size) (balanced: the mean of the hit rate and the correct-rejection rate)."""
    if not balanced:
        return 1.0 / len(is_face), 1.0 / len(is_face)
    n_faces = int(is_face.sum())
    if n_faces in (0, len(is_face)):
        raise ValueError("balanced accuracy needs faces and non-faces, got only one class")
    return 0.5 / n_faces, 0.5 / (len(is_face) - n_faces)


def thresholded_accuracy(responses, thresholds, is_face, balanced: bool = False) -> np.ndarray:
    """Accuracy (units,) of each unit saying "face" where its response (n, units) exceeds
    its threshold (units,); balanced: the mean of the rates on faces and on non-faces."""
    responses, is_face = _check_scores(responses, is_face)
    face_weight, nonface_weight = _class_weights(is_face, balanced)
    weights = np.where(is_face, face_weight, nonface_weight)
    return weights @ ((responses > thresholds) == is_face[:, None])


def best_thresholds(responses, is_face, balanced: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Best single-threshold accuracy of each unit as a face detector.

    responses: (n, units) (or (n,) for one unit); is_face: (n,) bool.  A unit
    says "face" when its response exceeds the threshold (high response =
    face, as in Le et al. 2012; a unit is not allowed to flip polarity).
    Every cut between distinct sorted responses is tried, plus the two that
    call everything face or nothing, so the worst unit scores at least the
    majority-class rate (0.5 when ``balanced``: accuracy is then the mean of
    the rates on faces and on non-faces, so that many non-faces do not drown
    the faces).  Returns (accuracy (units,), threshold (units,)): the
    threshold is the midpoint of the best cut (+-inf at the ends).
    """
    responses, is_face = _check_scores(responses, is_face)
    face_weight, nonface_weight = _class_weights(is_face, balanced)
    n, units = responses.shape
    order = np.argsort(responses, axis=0, kind="stable")
    ranked = np.take_along_axis(responses, order, axis=0)
    faces_sorted = is_face[order]
    # cut c (0..n): the lowest c responses are called non-face
    nonfaces_below = np.vstack([np.zeros((1, units)), np.cumsum(~faces_sorted, axis=0)])
    faces_above = is_face.sum() - np.vstack([np.zeros((1, units)), np.cumsum(faces_sorted, axis=0)])
    correct = nonface_weight * nonfaces_below + face_weight * faces_above
    valid = np.ones((n + 1, units), bool)
    valid[1:n] = ranked[1:] > ranked[:-1]  # no cut between tied responses
    correct[~valid] = -1
    best = correct.argmax(axis=0)
    padded = np.vstack([np.full((1, units), -np.inf), ranked, np.full((1, units), np.inf)])
    columns = np.arange(units)
    low, high = padded[best, columns], padded[best + 1, columns]
    threshold = np.where(np.isinf(low) | np.isinf(high), np.where(np.isinf(low), low, high),
                         (low + high) / 2)
    return correct[best, columns], threshold


def detection_accuracy(responses, is_face, balanced: bool = False) -> np.ndarray:
    """Best single-threshold face-detection accuracy per unit, (units,); see
    :func:`best_thresholds` (high response = face)."""
    return best_thresholds(responses, is_face, balanced)[0]


def unit_auc(responses, is_face) -> np.ndarray:
    """Area under the ROC curve of each unit (n, units) as a face detector, (units,):
    the chance that a random face gets a higher response than a random non-face (ties
    count half; high response = face), threshold-free; 0.5 for an uninformative unit."""
    from scipy.stats import rankdata

    responses, is_face = _check_scores(responses, is_face)
    n_faces = int(is_face.sum())
    n_nonfaces = len(is_face) - n_faces
    if not n_faces or not n_nonfaces:
        raise ValueError("the ROC area needs faces and non-faces, got only one class")
    ranks = rankdata(responses, axis=0)
    return (ranks[is_face].sum(axis=0) - n_faces * (n_faces + 1) / 2) / (n_faces * n_nonfaces)


def _split(is_face: np.ndarray, random_state, held_out=None) -> tuple[np.ndarray, np.ndarray]:
    """(selection, evaluation) indices: the images not ``held_out`` and those held out
    ((n,) bool), or without it two stratified halves, seeded."""
    from sklearn.model_selection import train_test_split
    if held_out is None:
        return train_test_split(np.arange(len(is_face)), test_size=0.5, stratify=is_face,
                                random_state=random_state)
    held_out = np.asarray(held_out, dtype=bool)
    if held_out.shape != is_face.shape:
        raise ValueError(f"held_out of shape {held_out.shape} does not match is_face of shape "
                         f"{is_face.shape}")
    for name, part in (("selection", ~held_out), ("held-out", held_out)):
        if len(np.unique(is_face[part])) < 2:
            raise ValueError(f"the {name} part needs faces and non-faces")
    return np.flatnonzero(~held_out), np.flatnonzero(held_out)


def linear_ceiling(responses, is_face, random_state=0, held_out=None,
                   balanced: bool = False) -> float:
    """Held-out accuracy (balanced: the mean of the rates on faces and on non-faces) of a
    label-trained linear classifier on all units (n, units; balanced: classes weighted
    inversely to their size, C chosen by balanced accuracy): fit on the selection part of
    :func:`score_face_units`, scored on its evaluation part: how much face information the
    units hold together.  With few labelled images and many uninformative units it can
    fall below the best single unit."""
    from sklearn.metrics import balanced_accuracy_score

    from terafeat.classification.protocols import linear_classifier

    responses, is_face = _check_scores(responses, is_face)
    selection, evaluation = _split(is_face, random_state, held_out)
    model = linear_classifier(random_state=random_state, balanced=balanced).fit(
        responses[selection], is_face[selection])
    if balanced:
        return float(balanced_accuracy_score(is_face[evaluation],
                                             model.predict(responses[evaluation])))
    return float(model.score(responses[evaluation], is_face[evaluation]))


def random_unit_margin(scores: dict, n_std: float = 2.0) -> float:
    """How far the chosen unit's held-out accuracy lies above the random-unit baseline
    plus ``n_std`` of its spread: ``best_unit_accuracy - (random_unit_accuracy + n_std *
    random_unit_std)`` of :func:`score_face_units`' scores; > 0: the unit beats the
    baseline by more than the units' own spread."""
    return float(scores["best_unit_accuracy"]
                 - (scores["random_unit_accuracy"] + n_std * scores["random_unit_std"]))


def template_unit(images: np.ndarray, templates: np.ndarray) -> np.ndarray:
    """Responses (n,) of one linear unit whose filter is the mean of ``templates``
    (m, ...) to ``images`` (n, ...) of the same shape: with the training-half faces as
    templates, a single unit that is a face detector by construction (a reference for
    what one unit can score on the held-out set, not something learnt)."""
    images, templates = np.asarray(images), np.asarray(templates)
    if images.shape[1:] != templates.shape[1:]:
        raise ValueError(f"images of shape {images.shape[1:]} do not match templates of shape "
                         f"{templates.shape[1:]}")
    return images.reshape(len(images), -1).astype(np.float64) @ \
        templates.reshape(len(templates), -1).mean(axis=0, dtype=np.float64)


def score_face_units(responses, is_face, random_state=0, held_out=None,
                     balanced: bool = False, linear: bool = True) -> dict:
    """Every unit as a face detector, with the unit and threshold chosen on one part
    of the labelled set and the accuracy measured on the other.

    responses: (n, units); is_face: (n,) bool; held_out: (n,) bool, the
    evaluation part (the rest is the selection part), or None: two stratified
    halves (seeded).  balanced: accuracy is the mean of the rates on faces and
    on non-faces (:func:`best_thresholds`).  Returns a dict:
    ``unit_accuracy`` (units,) best-threshold accuracy of each unit on the
    whole set (in-sample, as Le et al. 2012 report their best neuron);
    ``best_unit``, chosen by its best-threshold accuracy on the selection part,
    and its ``best_unit_accuracy`` on the evaluation part with the selection
    threshold; ``random_unit_accuracy``: the same held-out accuracy averaged
    over all units (what a unit picked at random scores), with its std;
    ``best_unit_auc``, ``random_unit_auc`` and ``random_unit_auc_std``: the
    same on the held-out ROC area (:func:`unit_auc`, threshold-free);
    ``linear_accuracy``: a label-trained linear classifier on all units (fit on
    the selection part, the ceiling; None without ``linear``); ``majority_accuracy`` (what calling every
    image the larger class scores: 0.5 when balanced); ``in_sample_best``.
    """
    responses, is_face = _check_scores(responses, is_face)
    selection, evaluation = _split(is_face, random_state, held_out)
    chosen_accuracy, thresholds = best_thresholds(responses[selection], is_face[selection],
                                                  balanced)
    held_out_accuracy = thresholded_accuracy(responses[evaluation], thresholds,
                                             is_face[evaluation], balanced)
    auc = unit_auc(responses[evaluation], is_face[evaluation])
    best = int(np.argmax(chosen_accuracy))
    unit_accuracy = detection_accuracy(responses, is_face, balanced)
    face_rate = is_face[evaluation].mean()
    return {"unit_accuracy": unit_accuracy, "held_out_accuracy": held_out_accuracy,
            "best_unit": best, "best_unit_threshold": float(thresholds[best]),
            "best_unit_accuracy": float(held_out_accuracy[best]),
            "best_unit_selection_accuracy": float(chosen_accuracy[best]),
            "random_unit_accuracy": float(held_out_accuracy.mean()),
            "random_unit_std": float(held_out_accuracy.std()),
            "best_unit_auc": float(auc[best]), "random_unit_auc": float(auc.mean()),
            "random_unit_auc_std": float(auc.std()),
            "linear_accuracy": linear_ceiling(responses, is_face, random_state, held_out,
                                              balanced) if linear else None,
            "majority_accuracy": 0.5 if balanced else float(max(face_rate, 1 - face_rate)),
            "balanced": bool(balanced),
            "in_sample_best": float(unit_accuracy.max()), "in_sample_best_unit":
                int(np.argmax(unit_accuracy)),
            "n_selection": int(len(selection)), "n_evaluation": int(len(evaluation))}


