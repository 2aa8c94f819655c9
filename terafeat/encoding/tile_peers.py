"""The peers of learned tile features, as encoders over tile batches: each maps
(b, h, w, 3) float32 RGB tiles in [0, 1] to (b, f) float32 features, so memory holds one
batch, and runs wherever :func:`terafeat.encoding.sharded.encode_shard` is sent.

* pixels: the tile downsampled to ``pixel_size`` x ``pixel_size`` x 3;
* hand-crafted: HOG of the grey tile, HSV colour histograms and a uniform
  LBP histogram (scikit-image).

(PCA and k-means filters are filter banks of the convolutional encoder, like RICA's.)
"""
from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
from skimage.color import rgb2gray, rgb2hsv
from skimage.feature import hog, local_binary_pattern
from skimage.transform import resize

HSV_BINS = 16
LBP_POINTS, LBP_RADIUS = 8, 1


def pixel_features(tiles: np.ndarray, pixel_size: int = 16) -> np.ndarray:
    """Tiles (n, h, w, 3) downsampled (antialiased) to (n, pixel_size**2 * 3) float32."""
    n, _, _, c = tiles.shape
    small = resize(tiles, (n, pixel_size, pixel_size, c), anti_aliasing=True, preserve_range=True)
    return small.reshape(n, -1).astype(np.float32)


def handcrafted_features(tiles: np.ndarray) -> np.ndarray:
    """HOG of the grey tile + HSV histograms + uniform LBP histogram: (n, f) float32.

    HOG: 9 orientations, cells of 1/6 of the tile side, 2x2 blocks (L2-Hys);
    HSV: ``HSV_BINS`` bins per channel, densities; LBP: 8 neighbours at radius
    1, rotation-invariant uniform codes (10 bins), densities.
    """
    rows = []
    cell = max(2, tiles.shape[1] // 6)
    for tile in tiles:
        grey = rgb2gray(tile)
        hsv = rgb2hsv(tile)
        grey_bytes = np.round(grey * 255).astype(np.uint8)
        lbp = local_binary_pattern(grey_bytes, LBP_POINTS, LBP_RADIUS, method="uniform")
        rows.append(np.concatenate([
            hog(grey, orientations=9, pixels_per_cell=(cell, cell), cells_per_block=(2, 2)),
            *[np.histogram(hsv[..., c], HSV_BINS, (0, 1))[0] / grey.size for c in range(3)],
            np.histogram(lbp, LBP_POINTS + 2, (0, LBP_POINTS + 2))[0] / grey.size]))
    return np.asarray(rows, dtype=np.float32)


def peer_encoder(spec: str) -> Callable[[np.ndarray], np.ndarray] | None:
    """The encoder a peer ``spec`` names: "handcrafted", or "pixels:<side>" (pixels
    downsampled to side x side); None for any other string."""
    name, _, side = str(spec).partition(":")
    if name == "handcrafted" and not side:
        return handcrafted_features
    if name == "pixels" and side.isdigit() and int(side) >= 1:
        return functools.partial(pixel_features, pixel_size=int(side))
    return None
