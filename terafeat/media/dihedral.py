"""The dihedral group of the square: the 8 rotations and flips of an image.

Element ``e`` in 0..7 flips the image left to right when ``e >= 4``, then rotates it by
``(e % 4) * 90`` degrees counter-clockwise (``np.rot90`` over the row and column axes).
Tissue has no orientation, so every element of a histology tile is as much a tile as the
original: training copies, test-time averaging and the invariance check use them.
"""
from __future__ import annotations

import numpy as np

N_ELEMENTS = 8
#: Element -> name ("original" is the identity).
NAMES = ("original", "rot90", "rot180", "rot270", "flip", "flip+rot90", "flip+rot180",
         "flip+rot270")


def dihedral(images: np.ndarray, element: int) -> np.ndarray:
    """images (n, h, w, c) -> the same images transformed by ``element`` (a view)."""
    if not 0 <= element < N_ELEMENTS:
        raise ValueError(f"dihedral element must be in 0..{N_ELEMENTS - 1}, got {element}")
    if element >= 4:
        images = images[:, :, ::-1]
    return np.rot90(images, element % 4, axes=(1, 2))


def dihedral_rows(images: np.ndarray, elements: np.ndarray) -> np.ndarray:
    """images (n, h, w, c), elements (n,) -> a new array, row i transformed by elements[i]
    (square images: every element keeps the shape)."""
    elements = np.asarray(elements, np.int64)
    out = np.array(images, copy=True)
    for element in np.unique(elements):
        rows = elements == element
        out[rows] = dihedral(images[rows], int(element))
    return out


def training_elements(n_tiles: int, copies: int, random_state: int) -> np.ndarray:
    """(n_tiles, copies) elements: the original first, then ``copies - 1`` distinct other
    elements per tile, drawn at random (seeded)."""
    if not 1 <= copies <= N_ELEMENTS:
        raise ValueError(f"dihedral copies must be in 1..{N_ELEMENTS}, got {copies}")
    rng = np.random.default_rng(random_state)
    others = np.argsort(rng.random((n_tiles, N_ELEMENTS - 1)), axis=1)[:, :copies - 1] + 1
    return np.column_stack([np.zeros(n_tiles, np.int64), others])
