"""Face-detection data at frame size: lfw_subset's faces in two halves, non-face crops of the
bundled natural images, unlabelled training frames with a few faces mixed in.

scikit-image's ``lfw_subset`` has 100 face crops (25 x 25); the first 50 are the
*training half* (for mixing into unlabelled training data), the last 50 the *test half*
(held out for scoring units; with ``face_detection_splits`` the training half, labelled,
chooses the unit and the test half scores it).  Non-faces are random square crops of the
bundled natural images that hold no human face (``NONFACE_IMAGES``: the "astronaut" and
"camera" pictures are left out).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from terafeat.datasets.bundled import NATURAL_IMAGES, grey_images, lfw_faces
from terafeat.validation import check_random_state

#: Bundled natural images without a human face: the source of non-face crops.
NONFACE_IMAGES = tuple(name for name in NATURAL_IMAGES if name not in ("astronaut", "camera"))
#: lfw_subset's 100 faces split in two: indices of each half.
FACE_HALVES = {"train": slice(0, 50), "test": slice(50, 100)}

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


def face_detection_splits(size: int, n_nonfaces_per_face: float = 4.0, random_state: int = 0,
                          nonfaces: tuple[np.ndarray, np.ndarray] | None = None
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Faces vs non-faces in two parts: one to choose units on, one held out.

    Selection part: lfw_subset's training half (50 faces; jittered crops of
    them may sit unlabelled among the training frames, their labels serve
    only to choose a unit and its threshold).  Held-out part: the test half
    (50 faces never seen).  Each part adds ``round(50 * n_nonfaces_per_face)``
    random crops (side size .. 4 * size) of ``NONFACE_IMAGES``, one seeded
    draw split in two, so the parts share no crop; or ``nonfaces``: (selection,
    held-out) non-face images (k, size, size) given.  Returns (images (n, size,
    size) float32 in [0, 1], is_face (n,) bool, held_out (n,) bool), the
    selection part first.
    """
    if not n_nonfaces_per_face > 0:
        raise ValueError(f"n_nonfaces_per_face must be > 0, got {n_nonfaces_per_face}")
    parts = [lfw_face_half("train", size), lfw_face_half("test", size)]
    if nonfaces is None:
        n_nonfaces = max(1, int(round(len(parts[0]) * n_nonfaces_per_face)))
        crops = image_crops(grey_images(NONFACE_IMAGES), 2 * n_nonfaces, size, random_state)
        nonfaces = crops[:n_nonfaces], crops[n_nonfaces:]
    images = np.clip(np.concatenate([parts[0], nonfaces[0], parts[1], nonfaces[1]]), 0.0, 1.0)
    is_face = np.concatenate([np.r_[np.ones(len(faces), bool), np.zeros(len(others), bool)]
                              for faces, others in zip(parts, nonfaces)])
    held_out = np.r_[np.zeros(len(parts[0]) + len(nonfaces[0]), bool),
                     np.ones(len(parts[1]) + len(nonfaces[1]), bool)]
    return images, is_face, held_out


