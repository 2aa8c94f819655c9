"""Sampling square patches from images, and dense patch grids for encoding."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from terafeat.validation import check_dtype, check_random_state


def as_float_image(image, index: int = 0, dtype=np.float32) -> np.ndarray:
    """One image as a float array, integers scaled to [0, 1].

    image: (h, w) grey or (h, w, c) colour, of an integer or float dtype.
    Raises ValueError naming image ``index`` for any other dtype, shape, or
    NaN / infinite pixels.
    """
    image = np.asarray(image)
    if image.ndim not in (2, 3):
        raise ValueError(f"image {index}: expected (h, w) or (h, w, c), got shape {image.shape}")
    if image.dtype.kind == "u" or image.dtype.kind == "i":
        info = np.iinfo(image.dtype)
        return (image.astype(dtype) - info.min) / dtype(info.max - info.min)
    if image.dtype.kind != "f":
        raise ValueError(f"image {index}: pixels must be integers or floats, got dtype {image.dtype}")
    image = image.astype(dtype)
    if not np.isfinite(image).all():
        raise ValueError(f"image {index}: contains NaN or infinite pixels")
    return image


def check_images(images: Sequence, patch_size: int, dtype=np.float32) -> list[np.ndarray]:
    """Validate images for patch sampling; returns float copies.

    images: a list of (h, w[, c]) arrays, one (h, w) array, or an (n, h, w[, c])
    stack.
    All images must share their channel count and be at least
    ``patch_size`` x ``patch_size``.
    """
    if patch_size < 1:
        raise ValueError(f"patch_size must be >= 1, got {patch_size}")
    if isinstance(images, np.ndarray) and images.ndim == 2:
        images = [images]
    if len(images) == 0:
        raise ValueError("no images given")
    checked = [as_float_image(image, i, dtype) for i, image in enumerate(images)]
    channels = {image.shape[2:] for image in checked}
    if len(channels) > 1:
        raise ValueError(f"images mix channel layouts {sorted(channels)}: convert them first")
    for i, image in enumerate(checked):
        if image.shape[0] < patch_size or image.shape[1] < patch_size:
            raise ValueError(f"image {i} of size {image.shape[0]}x{image.shape[1]} is smaller "
                             f"than the {patch_size}x{patch_size} patch")
    return checked


def sample_patches(images: Sequence, n_patches: int, patch_size: int,
                   random_state=None, dtype=np.float32) -> np.ndarray:
    """Random square patches, uniform over all positions in all images.

    images: list of (h, w) or (h, w, c) arrays (integers are scaled to
    [0, 1]).  Returns (n_patches, patch_size * patch_size * c) in ``dtype``,
    rows flattened in (row, column, channel) order.  Same seed, same patches.
    """
    dtype = check_dtype(dtype)
    images = check_images(images, patch_size, dtype.type)
    if n_patches < 1:
        raise ValueError(f"n_patches must be >= 1, got {n_patches}")
    rng = check_random_state(random_state)
    positions = np.array([(im.shape[0] - patch_size + 1) * (im.shape[1] - patch_size + 1)
                          for im in images], dtype=np.int64)
    flat = rng.integers(0, positions.sum(), size=n_patches)
    owner = np.searchsorted(np.cumsum(positions), flat, side="right")
    offset = flat - (np.cumsum(positions) - positions)[owner]
    d = patch_size * patch_size * (images[0].shape[2] if images[0].ndim == 3 else 1)
    patches = np.empty((n_patches, d), dtype)
    for index in np.unique(owner):
        rows = np.flatnonzero(owner == index)
        windows = grid_windows(images[index], patch_size)
        r, c = np.divmod(offset[rows], windows.shape[1])
        patches[rows] = windows[r, c].reshape(len(rows), d)
    return patches


def grid_windows(image: np.ndarray, patch_size: int, stride: int = 1) -> np.ndarray:
    """View of all patches of an (h, w[, c]) image on a grid with ``stride``.

    Returns a (rows, cols, patch_size, patch_size[, c]) read-only view.
    """
    windows = sliding_window_view(image, (patch_size, patch_size), axis=(0, 1))
    if image.ndim == 3:  # (rows, cols, c, p, p) -> (rows, cols, p, p, c)
        windows = np.moveaxis(windows, 2, -1)
    return windows[::stride, ::stride]


def dense_patches(image: np.ndarray, patch_size: int, stride: int = 1) -> np.ndarray:
    """All patches of one image on a grid, flattened: (rows, cols, d) copy."""
    windows = grid_windows(image, patch_size, stride)
    return windows.reshape(windows.shape[0], windows.shape[1], -1)
