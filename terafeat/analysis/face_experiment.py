"""The face-neuron experiment's images: unlabelled training frames and the labelled
detection set (a selection part and a held-out part), with distractors that are either
crops of the bundled natural images (the default a fresh clone can run) or object images
(Le et al., ICML 2012, used ImageNet objects; here an image set in ``train/<class>/`` and
``test/<class>/`` folders, such as CIFAR-10 extracted), grey and resized to the frame size.

No image sits on both sides: held-out faces are lfw_subset's test half (training frames
take jittered crops of the training half), held-out objects come from the test split,
and the training frames and the selection part draw disjoint images of the training
split.  The bundled crops of both sides are cut from the same few pictures (there are no
others), so only with object images are the distractors themselves unseen.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from terafeat.analysis.face_data import FACE_HALVES, face_detection_splits, training_frames
from terafeat.validation import check_random_state

#: Grey conversion weights of R, G, B (ITU-R BT.601, as OpenCV's and PIL's).
GREY_WEIGHTS = np.array([0.299, 0.587, 0.114], np.float32)


def is_object_set(root) -> bool:
    """Whether ``root`` holds ``train/`` and ``test/`` folders (an object image set)."""
    return root is not None and all((Path(root) / split).is_dir() for split in ("train", "test"))


def object_images(root, split: str, n: int, size: int, random_state=None,
                  skip: int = 0) -> np.ndarray:
    """``n`` images of ``split`` of the image set under ``root``, drawn without replacement
    in a seeded order after its first ``skip`` (so calls with the same seed and disjoint
    ``[skip, skip + n)`` share no image), grey, resized to (n, size, size) float32 in [0, 1].

    Reads with :func:`terafeat.datasets.image_sets.list_image_set` ("folders" layout) and
    :func:`~terafeat.datasets.image_sets.read_listed_images`.  Raises ValueError naming
    ``root`` when the split holds fewer than ``skip + n`` images, or an image is unreadable.
    """
    from terafeat.datasets.image_sets import list_image_set, read_listed_images

    listing = list_image_set("folders", root)
    rows = listing[listing["split"] == split]
    if len(rows) < skip + n:
        raise ValueError(f"data_root {root}: {split}/ holds {len(rows)} images, {skip + n} "
                         "needed (object images in train/<class>/ and test/<class>/ folders)")
    order = check_random_state(random_state).permutation(len(rows))[skip:skip + n]
    images, kept, problems = read_listed_images(rows.iloc[order], size)
    if problems:
        raise ValueError(f"data_root {root}: {len(problems)} unreadable images, first "
                         f"{problems[0][0]}: {problems[0][1]}")
    return images @ GREY_WEIGHTS


def face_experiment_images(size: int, n_frames: int, face_fraction: float,
                           n_nonfaces_per_face: float, random_state: int = 0,
                           crop_sources: Sequence[np.ndarray] = (),
                           object_root=None) -> dict[str, np.ndarray]:
    """Training frames and the detection set, same seed, no image on both sides.

    crop_sources: grey (h, w) pictures (bundled images, video frames) cropped into
    training frames; object_root: None for the bundled distractors
    (:func:`~terafeat.analysis.face_data.face_detection_splits`), else an object image set:
    the training frames' non-faces are its training-split images (each whole) with any
    ``crop_sources`` crops, the selection part's non-faces other training-split images,
    the held-out part's test-split images.  Faces: ``face_fraction`` of the frames are
    jittered lfw training-half faces.  Returns {"frames" (n_frames, size, size),
    "frame_is_face" (n_frames,) (diagnostics only), "images" (m, size, size), "is_face" (m,),
    "held_out" (m,)}: float32 in [0, 1] and bool.
    """
    n_faces = int(round(n_frames * face_fraction))
    if object_root is None:
        sources = list(crop_sources)
        if not sources:
            raise ValueError("crop_sources: no pictures to crop frames from")
        images, is_face, held_out = face_detection_splits(size, n_nonfaces_per_face,
                                                          random_state)
    else:
        if not is_object_set(object_root):
            raise ValueError(f"data_root {object_root}: no train/ and test/ folders of "
                             "object images")
        n_faces_half = FACE_HALVES["train"].stop - FACE_HALVES["train"].start
        n_nonfaces = max(1, int(round(n_faces_half * n_nonfaces_per_face)))
        n_objects = n_frames - n_faces
        train = object_images(object_root, "train", n_objects + n_nonfaces, size, random_state)
        test = object_images(object_root, "test", n_nonfaces, size, random_state)
        sources = list(train[:n_objects]) + list(crop_sources)
        images, is_face, held_out = face_detection_splits(
            size, n_nonfaces_per_face, random_state, nonfaces=(train[n_objects:], test))
    frames, frame_is_face = training_frames(sources, n_frames, size, face_fraction,
                                            random_state)
    return {"frames": frames, "frame_is_face": frame_is_face, "images": images,
            "is_face": is_face, "held_out": held_out}
