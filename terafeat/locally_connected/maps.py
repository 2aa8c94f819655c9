"""Building blocks over maps: patch extraction and its adjoint, sum and L2 pooling,
local contrast normalisation."""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.ndimage import gaussian_filter

# ----------------------------------------------------------------------------- building blocks

def extract_patches(region: np.ndarray, field: int, stride: int, rows: int, cols: int) -> np.ndarray:
    """Patches of a (P, Q, n, c) region at ``rows x cols`` locations: (rows*cols, n, c*field*field)."""
    windows = sliding_window_view(region, (field, field), axis=(0, 1))
    windows = windows[:(rows - 1) * stride + 1:stride, :(cols - 1) * stride + 1:stride]
    n, c = region.shape[2:]
    return windows.reshape(rows * cols, n, c * field * field)


def overlap_add(patches: np.ndarray, field: int, stride: int, rows: int, cols: int, c: int) -> np.ndarray:
    """Adjoint of :func:`extract_patches`: (rows*cols, n, c*field*field) patches summed into
    a ((rows-1)*stride+field, (cols-1)*stride+field, n, c) region."""
    n = patches.shape[1]
    blocks = patches.reshape(rows, cols, n, c, field, field)
    region = np.zeros(((rows - 1) * stride + field, (cols - 1) * stride + field, n, c),
                      dtype=patches.dtype)
    for u in range(field):
        for v in range(field):
            region[u:u + (rows - 1) * stride + 1:stride,
                   v:v + (cols - 1) * stride + 1:stride] += blocks[..., u, v]
    return region


def sum_pool(values: np.ndarray, size: int, stride: int) -> np.ndarray:
    """Sums over ``size x size`` windows every ``stride`` of a (R, C, ...) grid:
    ((R-size)//stride+1, (C-size)//stride+1, ...)."""
    R, C = values.shape[:2]
    out_rows, out_cols = (R - size) // stride + 1, (C - size) // stride + 1
    pooled = np.zeros((out_rows, out_cols, *values.shape[2:]), dtype=values.dtype)
    for u in range(size):
        for v in range(size):
            pooled += values[u:u + (out_rows - 1) * stride + 1:stride,
                             v:v + (out_cols - 1) * stride + 1:stride]
    return pooled


def sum_pool_adjoint(pooled: np.ndarray, size: int, stride: int, shape: tuple[int, int]) -> np.ndarray:
    """Adjoint of :func:`sum_pool`: each unit's value added to the (R, C) = ``shape``
    grid positions under its window."""
    out_rows, out_cols = pooled.shape[:2]
    values = np.zeros((*shape, *pooled.shape[2:]), dtype=pooled.dtype)
    for u in range(size):
        for v in range(size):
            values[u:u + (out_rows - 1) * stride + 1:stride,
                   v:v + (out_cols - 1) * stride + 1:stride] += pooled
    return values


def l2_pool_maps(responses: np.ndarray, size: int, stride: int, eps: float) -> np.ndarray:
    """L2 pooling of each map over neighbouring locations: (R, C, n, k) responses ->
    ``sqrt(eps + sum_window responses^2)`` of shape (R', C', n, k)."""
    pooled = sum_pool(responses * responses, size, stride)
    pooled += eps
    return np.sqrt(pooled, out=pooled)


def local_mean(values: np.ndarray, size: int, adjoint: bool = False) -> np.ndarray:
    """Gaussian-weighted local mean over axes 1, 2 of (n, h, w) values, about ``size``
    wide; windows are cut at the borders and renormalised.  ``adjoint``: the transposed
    operator (for gradients)."""
    sigma = max(size / 4.0, 0.5)
    options = dict(sigma=sigma, mode="constant", truncate=(size // 2) / sigma)
    weight = gaussian_filter(np.ones(values.shape[1:], dtype=values.dtype), **options)
    if adjoint:
        return gaussian_filter(values / weight, axes=(1, 2), **options)
    return gaussian_filter(values, axes=(1, 2), **options) / weight


def contrast_parts(maps: np.ndarray, size: int, floor: float = 1e-4):
    """(centred (n, h, w, c), spread (n, h, w), mean spread (n, 1, 1), divisor (n, h, w))
    of :func:`local_contrast_normalize`."""
    centred = maps - local_mean(maps.mean(axis=3), size)[..., None]
    spread = np.sqrt(np.maximum(local_mean((centred * centred).mean(axis=3), size), 0))
    mean_spread = spread.mean(axis=(1, 2), keepdims=True)
    return centred, spread, mean_spread, np.maximum(np.maximum(spread, mean_spread), floor)


def local_contrast_normalize(maps: np.ndarray, size: int, floor: float = 1e-4) -> np.ndarray:
    """Subtractive then divisive local contrast normalisation of (n, h, w, c) maps
    (Jarrett et al. 2009), over a Gaussian window about ``size`` wide and all maps.

    ``v = x - G*mean_c(x)``; ``sigma = sqrt(G*mean_c(v^2))``;
    ``y = v / max(mean(sigma), sigma, floor)``, the mean over each frame; G:
    :func:`local_mean`.
    """
    centred, _, _, divisor = contrast_parts(maps, size, floor)
    return (centred / divisor[..., None]).astype(maps.dtype, copy=False)


