"""Feature extraction: convolutional encoding of images with a learned layer, pooling."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from terafeat.learning.pooling import l2_pool
from terafeat.media.patches import check_images, dense_patches

NONLINEARITIES = ("abs", "split", "none")
POOLINGS = ("sum", "max", "l2")


def layer_features(whitener, W: np.ndarray | None = None, pool: np.ndarray | None = None,
                   eps: float = 1e-2, nonlinearity: str = "abs",
                   alpha: float = 0.0) -> Callable[[np.ndarray], np.ndarray]:
    """Patch -> feature map of one learned layer: whiten, filter with W (k, d_w)
    (None: the whitener's outputs are the responses, e.g. PCA filters), then

    with ``pool`` (p, k): L2-pooled units ``sqrt(eps + V (W x)^2)``, (N, p);
    without: the simple units through ``nonlinearity``: "abs" |Wx|, "split"
    [max(Wx - alpha, 0), max(-Wx - alpha, 0)] (2k; alpha > 0: the Coates–Ng
    soft threshold, in whitened units), or "none".  Input (N, d), output float32.
    """
    if nonlinearity not in NONLINEARITIES:
        raise ValueError(f"nonlinearity must be one of {NONLINEARITIES}, got {nonlinearity!r}")
    if not alpha >= 0:
        raise ValueError(f"alpha must be >= 0, got {alpha}")

    def features(patches: np.ndarray) -> np.ndarray:
        responses = whitener.transform(patches)
        if W is not None:
            responses = responses @ W.T
        if pool is not None:
            return l2_pool(responses, pool, eps)
        if nonlinearity == "abs":
            return np.abs(responses, out=responses)
        if nonlinearity == "split":
            return np.concatenate([np.maximum(responses - alpha, 0),
                                   np.maximum(-responses - alpha, 0)], axis=1)
        return responses

    return features


def pool_grid(maps: np.ndarray, grid: int, pooling: str = "sum") -> np.ndarray:
    """Pool feature maps over a grid x grid partition of the image.

    maps: (n, rows, cols, f).  Returns (n, grid * grid * f), cells in
    row-major order (grid=2: the four quadrants).
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    n, rows, cols, f = maps.shape
    if grid < 1 or grid > min(rows, cols):
        raise ValueError(f"a {grid}x{grid} pooling grid does not fit {rows}x{cols} maps")
    cells = []
    for row_block in np.array_split(np.arange(rows), grid):
        for col_block in np.array_split(np.arange(cols), grid):
            cell = maps[:, row_block[0]:row_block[-1] + 1, col_block[0]:col_block[-1] + 1]
            if pooling == "sum":
                cells.append(cell.sum(axis=(1, 2)))
            elif pooling == "max":
                cells.append(cell.max(axis=(1, 2)))
            else:
                cells.append(np.sqrt(np.square(cell).sum(axis=(1, 2))))
    return np.concatenate(cells, axis=1)


def encode_images(images, patch_size: int, features: Callable[[np.ndarray], np.ndarray],
                  stride: int = 1, grid=2, pooling: str = "sum",
                  batch_size: int = 64) -> np.ndarray:
    """Convolutional encoding: features of every patch on a grid, pooled per cell.

    images: (n, h, w[, c]) array or list of equal-sized images.  ``features``
    maps (N, d) patches to (N, f).  Images are processed ``batch_size`` at a
    time, so memory is bounded by a batch.  ``grid``: an int, or a sequence
    of ints for a spatial pyramid (each grid's cells in turn, concatenated).  Returns
    (n, sum of grid * grid over the grids * f) float32.
    """
    images = check_images(images, patch_size)
    shapes = {image.shape for image in images}
    if len(shapes) > 1:
        raise ValueError(f"images differ in size {sorted(shapes)}: resize them first")
    encoded = []
    for start in range(0, len(images), batch_size):
        batch = np.stack([dense_patches(image, patch_size, stride)
                          for image in images[start:start + batch_size]])
        n, rows, cols, d = batch.shape
        maps = features(batch.reshape(-1, d)).reshape(n, rows, cols, -1)
        grids = (grid,) if np.isscalar(grid) else tuple(grid)
        encoded.append(np.concatenate([pool_grid(maps, int(g), pooling) for g in grids],
                                      axis=1).astype(np.float32))
    return np.concatenate(encoded)


def bag_of_words(descriptors: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """L1-normalised histogram of the nearest centroid of each descriptor.

    descriptors: (n, f) of one clip; centroids: (k, f) vocabulary. Returns
    (k,) float64 summing to 1 (all zeros for a clip without descriptors).
    """
    if descriptors.ndim != 2 or descriptors.shape[1] != centroids.shape[1]:
        raise ValueError(f"descriptors of shape {descriptors.shape} do not fit a vocabulary "
                         f"of {centroids.shape[1]}-dimensional words")
    counts = np.zeros(len(centroids))
    if len(descriptors):
        distances = (np.einsum("kf,kf->k", centroids, centroids)[None, :]
                     - 2 * descriptors.astype(centroids.dtype) @ centroids.T)
        counts += np.bincount(distances.argmin(axis=1), minlength=len(centroids))
        counts /= counts.sum()
    return counts


def motion_energy_image(clip: np.ndarray, size: int = 16) -> np.ndarray:
    """Mean absolute difference of consecutive grey frames, resized to size x size.

    clip: (T, H, W) grey frames, T >= 2. Returns (size * size,) float32, the
    classic motion-energy descriptor (area-averaged when shrinking).
    """
    import cv2
    clip = np.asarray(clip, dtype=np.float32)
    if clip.ndim != 3 or len(clip) < 2:
        raise ValueError(f"motion energy needs (T >= 2, H, W) grey frames, got shape {clip.shape}")
    energy = np.abs(np.diff(clip, axis=0)).mean(axis=0)
    shrink = size * size < energy.size
    return cv2.resize(energy, (size, size), interpolation=cv2.INTER_AREA if shrink
                      else cv2.INTER_LINEAR).ravel()
