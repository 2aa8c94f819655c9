"""Invariance of units: responses under translation, scaling and rotation, and the invariance
score of Goodfellow et al. (NIPS 2009) over trajectories of transformed patches."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from terafeat.validation import check_random_state

#: Default transformation ranges of ``invariance_curves``: horizontal shift in
#: pixels, scale factor, in-plane rotation in degrees.
DEFAULT_TRANSFORMS = {"translation": tuple(range(-6, 7)),
                      "scale": (0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4),
                      "rotation": tuple(range(-60, 61, 10))}


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


def top_invariance(scores: np.ndarray, top: float = 0.2) -> float:
    """Mean of the top ``top`` fraction of units' invariance scores (Goodfellow et al.)."""
    ranked = np.sort(np.asarray(scores))[::-1]
    return float(ranked[:max(1, int(round(top * len(ranked))))].mean())


def unit_set_invariance(unit_sets: dict[str, Callable[[np.ndarray], np.ndarray]],
                        trajectories: tuple[np.ndarray, dict[str, np.ndarray]],
                        firing_rate: float = 0.01, top: float = 0.2) -> dict[str, dict[str, float]]:
    """Invariance score of each set of units on the same patch trajectories.

    unit_sets: name -> responses of raw patches (N, d) -> (N, units);
    trajectories: ``patch_trajectories``' (base (n, d), {transformation: (t, n, d)}).
    Returns name -> {transformation: mean score of the set's top ``top``
    fraction of units} (``invariance_score`` with ``firing_rate``).
    """
    base, transformed = trajectories
    scores = {}
    for name, respond in unit_sets.items():
        base_responses = respond(base)
        scores[name] = {
            transformation: top_invariance(invariance_score(
                base_responses, np.stack([respond(copy) for copy in copies]), firing_rate), top)
            for transformation, copies in transformed.items()}
    return scores
