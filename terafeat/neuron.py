"""What a single unit responds to: face-detection scoring, optimal stimulus,
invariance curves and the invariance score of Goodfellow et al. (NIPS 2009).

Every function here takes a unit (or many) as arrays or as callables over
image arrays, so it serves any network: global RICA layers, locally connected
ones, a hand-made linear filter in a test.

Face data: scikit-image's ``lfw_subset`` has 100 face crops (25 x 25); the
first 50 are the *training half* (for mixing into unlabelled training data),
the last 50 the *test half* (held out for scoring units; with
``face_detection_splits`` the training half, labelled, chooses the unit and
the test half scores it).  Non-faces are
random square crops of the bundled natural images that hold no human face
(``NONFACE_IMAGES``: the "astronaut" and "camera" pictures are left out).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from scipy.optimize import minimize

from terafeat.datasets.bundled import NATURAL_IMAGES, grey_images, lfw_faces
from terafeat.validation import check_random_state

__all__ = [
    "NONFACE_IMAGES", "FACE_HALVES", "resize_images", "image_crops", "lfw_face_half",
    "training_frames", "face_detection_set", "face_detection_splits", "best_thresholds",
    "thresholded_accuracy", "detection_accuracy", "unit_auc", "optimal_stimulus",
    "transform_images", "invariance_curves", "invariance_score", "DEFAULT_TRANSFORMS",
    "score_face_units", "linear_ceiling", "random_unit_margin", "template_unit",
    "patch_trajectories",
]

#: Bundled natural images without a human face: the source of non-face crops.
NONFACE_IMAGES = tuple(name for name in NATURAL_IMAGES if name not in ("astronaut", "camera"))
#: lfw_subset's 100 faces split in two: indices of each half.
FACE_HALVES = {"train": slice(0, 50), "test": slice(50, 100)}
#: Default transformation ranges of ``invariance_curves``: horizontal shift in
#: pixels, scale factor, in-plane rotation in degrees.
DEFAULT_TRANSFORMS = {"translation": tuple(range(-6, 7)),
                      "scale": (0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4),
                      "rotation": tuple(range(-60, 61, 10))}


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """(n, h, w) images resized to (n, size, size) float32 (area filter when shrinking)."""
    import cv2
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 3:
        raise ValueError(f"expected (n, h, w) grey images, got shape {images.shape}")
    shrink = images.shape[1] > size
    interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return np.stack([cv2.resize(image, (size, size), interpolation=interpolation)
                     for image in images]) if len(images) else np.zeros((0, size, size), np.float32)


def image_crops(images: Sequence[np.ndarray], n: int, size: int, random_state=None,
                min_side: int | None = None, max_side: int | None = None) -> np.ndarray:
    """``n`` random square crops of grey images, resized to (n, size, size) float32.

    Each crop picks an image uniformly, a side uniformly in [min_side, max_side]
    pixels (default: size .. 4 * size, clipped to the image) and a position
    uniformly; same seed, same crops.
    """
    import cv2
    rng = check_random_state(random_state)
    min_side = size if min_side is None else int(min_side)
    max_side = 4 * size if max_side is None else int(max_side)
    if not 1 <= min_side <= max_side:
        raise ValueError(f"crop sides need 1 <= min_side <= max_side, got {min_side}, {max_side}")
    crops = np.empty((n, size, size), np.float32)
    for i in range(n):
        image = images[rng.integers(len(images))]
        side = int(min(rng.integers(min_side, max_side + 1), *image.shape[:2]))
        top = rng.integers(image.shape[0] - side + 1)
        left = rng.integers(image.shape[1] - side + 1)
        crop = np.ascontiguousarray(image[top:top + side, left:left + side], dtype=np.float32)
        crops[i] = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA
                              if side > size else cv2.INTER_LINEAR)
    return crops


def lfw_face_half(half: str, size: int) -> np.ndarray:
    """The "train" or "test" half of lfw_subset's faces: (50, size, size) float32 in [0, 1]."""
    if half not in FACE_HALVES:
        raise ValueError(f"half must be one of {tuple(FACE_HALVES)}, got {half!r}")
    images, labels = lfw_faces()
    faces = images[labels == 1][FACE_HALVES[half]]
    return resize_images(faces, size)


def training_frames(images: Sequence[np.ndarray], n: int, size: int, face_fraction: float = 0.05,
                    random_state=None) -> tuple[np.ndarray, np.ndarray]:
    """Unlabelled training frames: crops of ``images`` with faces mixed in.

    images: grey (h, w) arrays (bundled natural images, video frames).  A
    fraction ``face_fraction`` of the ``n`` frames are faces from lfw_subset's
    training half, each a random crop of side 21..25 of the 25 x 25 face,
    mirrored with probability 1/2 (jitter in position and scale); the rest are
    ``image_crops`` (side size .. 4 * size).  Frames come shuffled.  Returns
    (frames (n, size, size) float32 in [0, 1], is_face (n,) bool), the
    second for diagnostics only: training never sees it.
    """
    import cv2
    if not 0 <= face_fraction <= 1:
        raise ValueError(f"face_fraction must be in [0, 1], got {face_fraction}")
    rng = check_random_state(random_state)
    n_faces = int(round(n * face_fraction))
    faces, labels = lfw_faces()
    faces = faces[labels == 1][FACE_HALVES["train"]]
    jittered = np.empty((n_faces, size, size), np.float32)
    for i in range(n_faces):
        face = faces[rng.integers(len(faces))]
        side = int(rng.integers(21, face.shape[0] + 1))
        top, left = rng.integers(face.shape[0] - side + 1, size=2)
        crop = np.ascontiguousarray(face[top:top + side, left:left + side])
        crop = crop[:, ::-1] if rng.random() < 0.5 else crop
        jittered[i] = cv2.resize(np.ascontiguousarray(crop), (size, size),
                                 interpolation=cv2.INTER_AREA if side > size else cv2.INTER_LINEAR)
    frames = np.concatenate([jittered, image_crops(images, n - n_faces, size, rng)])
    is_face = np.r_[np.ones(n_faces, bool), np.zeros(n - n_faces, bool)]
    order = rng.permutation(n)
    return np.clip(frames[order], 0.0, 1.0), is_face[order]


def face_detection_set(size: int, n_nonfaces_per_face: float = 1.0,
                       seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Held-out faces vs non-faces for scoring units as face detectors.

    Faces: lfw_subset's test half (50), resized to size x size.  Non-faces:
    ``round(50 * n_nonfaces_per_face)`` random crops (side size .. 4 * size)
    of ``NONFACE_IMAGES``, seeded.  Returns (images (n, size, size) float32
    in [0, 1], is_face (n,) bool), faces first.
    """
    if not n_nonfaces_per_face > 0:
        raise ValueError(f"n_nonfaces_per_face must be > 0, got {n_nonfaces_per_face}")
    faces = lfw_face_half("test", size)
    n_nonfaces = max(1, int(round(len(faces) * n_nonfaces_per_face)))
    nonfaces = image_crops(grey_images(NONFACE_IMAGES), n_nonfaces, size, seed)
    images = np.clip(np.concatenate([faces, nonfaces]), 0.0, 1.0)
    is_face = np.r_[np.ones(len(faces), bool), np.zeros(n_nonfaces, bool)]
    return images, is_face


def face_detection_splits(size: int, n_nonfaces_per_face: float = 4.0,
                          seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Faces vs non-faces in two parts: one to choose units on, one held out.

    Selection part: lfw_subset's training half (50 faces; jittered crops of
    them may sit unlabelled among the training frames, their labels serve
    only to choose a unit and its threshold).  Held-out part: the test half
    (50 faces never seen).  Each part adds ``round(50 * n_nonfaces_per_face)``
    random crops (side size .. 4 * size) of ``NONFACE_IMAGES``, one seeded
    draw split in two, so the parts share no crop.  Returns (images (n, size,
    size) float32 in [0, 1], is_face (n,) bool, held_out (n,) bool), the
    selection part first.
    """
    if not n_nonfaces_per_face > 0:
        raise ValueError(f"n_nonfaces_per_face must be > 0, got {n_nonfaces_per_face}")
    parts = [lfw_face_half("train", size), lfw_face_half("test", size)]
    n_nonfaces = max(1, int(round(len(parts[0]) * n_nonfaces_per_face)))
    crops = image_crops(grey_images(NONFACE_IMAGES), 2 * n_nonfaces, size, seed)
    images = np.clip(np.concatenate([parts[0], crops[:n_nonfaces], parts[1], crops[n_nonfaces:]]),
                     0.0, 1.0)
    is_face = np.concatenate([np.r_[np.ones(len(faces), bool), np.zeros(n_nonfaces, bool)]
                              for faces in parts])
    held_out = np.r_[np.zeros(len(parts[0]) + n_nonfaces, bool),
                     np.ones(len(parts[1]) + n_nonfaces, bool)]
    return images, is_face, held_out


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


def optimal_stimulus(response: Callable[[np.ndarray], float],
                     gradient: Callable[[np.ndarray], np.ndarray], shape: tuple[int, ...],
                     n_starts: int = 4, max_iter: int = 300, random_state=0) -> np.ndarray:
    """The input of unit L2 norm that maximises a unit's response.

    response(x) -> float and gradient(x) -> (d,) take a flat input x (d,),
    d = prod(shape).  The constraint ``||x||_2 = 1`` is built in: L-BFGS runs
    over an unconstrained v with x = v / ||v||, whose gradient is the
    tangential part of ``gradient(x)`` divided by ||v||.  The best of
    ``n_starts`` seeded random starts is returned, reshaped to ``shape``.
    """
    d = int(np.prod(shape))
    rng = check_random_state(random_state)

    def negative(v: np.ndarray):
        norm = np.linalg.norm(v)
        x = v / norm
        grad = np.asarray(gradient(x), dtype=np.float64).ravel()
        tangential = grad - (grad @ x) * x
        return -float(response(x)), -tangential / norm

    best_x, best_value = None, -np.inf
    for _ in range(max(1, int(n_starts))):
        v0 = rng.standard_normal(d)
        result = minimize(negative, v0 / np.linalg.norm(v0), jac=True, method="L-BFGS-B",
                          options={"maxiter": int(max_iter), "gtol": 1e-9, "ftol": 1e-14})
        x = result.x / np.linalg.norm(result.x)
        value = float(response(x))
        if value > best_value:
            best_x, best_value = x, value
    return best_x.reshape(shape)


def transform_images(images: np.ndarray, shift: float = 0.0, scale: float = 1.0,
                     angle: float = 0.0) -> np.ndarray:
    """Images (n, h, w) shifted right by ``shift`` pixels, zoomed by ``scale`` and
    rotated by ``angle`` degrees (anticlockwise) about their centre; borders reflect.
    Returns (n, h, w) float32."""
    import cv2
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 3:
        raise ValueError(f"expected (n, h, w) grey images, got shape {images.shape}")
    if not scale > 0:
        raise ValueError(f"scale must be > 0, got {scale}")
    h, w = images.shape[1:]
    matrix = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), float(angle), float(scale))
    matrix[0, 2] += shift
    return np.stack([cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REFLECT_101) for image in images])


def invariance_curves(respond: Callable[[np.ndarray], np.ndarray], images: np.ndarray,
                      transforms: dict[str, Sequence[float]] | None = None) -> dict[str, dict]:
    """A unit's response to images under translation, scaling and in-plane rotation.

    respond: (n, h, w) images -> (n,) responses of the unit; images: its top
    stimuli (n, h, w).  transforms: name -> values, for the names
    "translation" (horizontal shift, pixels), "scale" (factor) and "rotation"
    (degrees); default ``DEFAULT_TRANSFORMS``.  Returns name -> {"values":
    [...], "responses": (len(values), n) array}.
    """
    transforms = DEFAULT_TRANSFORMS if transforms is None else transforms
    keyword = {"translation": "shift", "scale": "scale", "rotation": "angle"}
    curves = {}
    for name, values in transforms.items():
        if name not in keyword:
            raise ValueError(f"unknown transformation {name!r}; known: {tuple(keyword)}")
        responses = np.stack([np.asarray(respond(transform_images(images, **{keyword[name]: v})),
                                         dtype=np.float64).ravel() for v in values])
        curves[name] = {"values": [float(v) for v in values], "responses": responses}
    return curves


def invariance_score(base: np.ndarray, transformed: np.ndarray,
                     firing_rate: float = 0.01) -> np.ndarray:
    """Invariance score of Goodfellow, Le, Saxe, Lee and Ng (NIPS 2009), per unit.

    base: (n, units) responses to n stimuli; transformed: (t, n, units)
    responses to t transformed copies of each stimulus (a trajectory).  Each
    unit's threshold is set so that it fires (response > threshold) on
    ``firing_rate`` of the base stimuli: its global firing rate G.  The local
    firing rate L is the fraction of the transformed copies of the stimuli
    it fires on for which it still fires.  Score = L / G: 1 / firing_rate for
    a perfectly invariant unit, about 1 for one whose transformed responses
    are unrelated to the original ones.  Returns (units,) float64.
    """
    base = np.asarray(base, dtype=np.float64)
    transformed = np.asarray(transformed, dtype=np.float64)
    if base.ndim != 2 or transformed.ndim != 3 or transformed.shape[1:] != base.shape:
        raise ValueError(f"expected base (n, units) and transformed (t, n, units), got "
                         f"{base.shape} and {transformed.shape}")
    if not 0 < firing_rate < 1:
        raise ValueError(f"firing_rate must be in (0, 1), got {firing_rate}")
    threshold = np.quantile(base, 1.0 - firing_rate, axis=0)
    fires = base > threshold
    global_rate = fires.mean(axis=0)
    still = (transformed > threshold) & fires[None]
    local_rate = still.sum(axis=(0, 1)) / np.maximum(fires.sum(axis=0) * transformed.shape[0], 1)
    return np.where(global_rate > 0, local_rate / np.maximum(global_rate, 1e-300), 0.0)


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

    from terafeat.classify import linear_classifier

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
                     balanced: bool = False) -> dict:
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
    the selection part, the ceiling); ``majority_accuracy`` (what calling every
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
                                              balanced),
            "majority_accuracy": 0.5 if balanced else float(max(face_rate, 1 - face_rate)),
            "balanced": bool(balanced),
            "in_sample_best": float(unit_accuracy.max()), "in_sample_best_unit":
                int(np.argmax(unit_accuracy)),
            "n_selection": int(len(selection)), "n_evaluation": int(len(evaluation))}


def patch_trajectories(images: Sequence[np.ndarray], n: int, patch_size: int,
                       shifts: Sequence[int] = (1, 2, 3), angles: Sequence[float] = (10, 20, 30),
                       random_state=None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Patches and their transformed copies, cut from the same place in natural images.

    For each of ``n`` seeded positions: the base patch (patch_size^2,), its
    translations by each shift along both axes both ways (4 * len(shifts)
    copies: the window moved in the image, no borders invented) and its
    in-plane rotations by +-each angle about the patch centre (2 * len(angles)
    copies, bilinear).  Returns (base (n, d), {"translation": (t, n, d),
    "rotation": (r, n, d)}), float32.
    """
    import cv2
    rng = check_random_state(random_state)
    p = int(patch_size)
    # a window of side 2 * half around the centre holds every shifted and rotated patch
    half = int(np.ceil(p / 2 * np.sqrt(2))) + max(shifts, default=0) + 1
    moves = [(dy * s, dx * s) for s in shifts for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0))]
    turns = [sign * a for a in angles for sign in (1, -1)]
    base = np.empty((n, p * p), np.float32)
    translated = np.empty((len(moves), n, p * p), np.float32)
    rotated = np.empty((len(turns), n, p * p), np.float32)
    usable = [image for image in images if min(image.shape[:2]) > 2 * half]
    if not usable:
        raise ValueError(f"no image is larger than the {2 * half}-pixel window of "
                         f"{p}x{p} patch trajectories")
    lo = half - p // 2
    for i in range(n):
        image = usable[rng.integers(len(usable))]
        cy = rng.integers(half, image.shape[0] - half)
        cx = rng.integers(half, image.shape[1] - half)
        window = np.ascontiguousarray(image[cy - half:cy + half, cx - half:cx + half],
                                      dtype=np.float32)
        base[i] = window[lo:lo + p, lo:lo + p].ravel()
        for j, (dy, dx) in enumerate(moves):
            translated[j, i] = window[lo + dy:lo + dy + p, lo + dx:lo + dx + p].ravel()
        for j, angle in enumerate(turns):
            matrix = cv2.getRotationMatrix2D((lo + (p - 1) / 2, lo + (p - 1) / 2), angle, 1.0)
            turned = cv2.warpAffine(window, matrix, window.shape[::-1], flags=cv2.INTER_LINEAR)
            rotated[j, i] = turned[lo:lo + p, lo:lo + p].ravel()
    return base, {"translation": translated, "rotation": rotated}
