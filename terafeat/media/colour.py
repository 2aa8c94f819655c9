"""Colour spaces of tiles before patch sampling: RGB, H&E stain densities, grey.

H&E colour deconvolution (Ruifrok & Johnston 2001, scikit-image's ``rgb2hed``)
turns RGB into optical densities of haematoxylin (nuclei), eosin (stroma,
cytoplasm) and DAB.  "hed" keeps the three channels; "he" drops DAB, a stain
H&E sections do not carry (its channel holds what the two-stain model leaves
unexplained).  Patches of every mode are (h, w, c) with c = 3 ("rgb", "hed"),
2 ("he") or 1 ("grey") and flatten to ``patch_size**2 * c`` values in (row,
column, channel) order, as :func:`terafeat.media.patches.sample_patches` and
``dense_patches`` do.
"""
from __future__ import annotations

import numpy as np
from skimage.color import rgb2gray, rgb2hed, rgb_from_hed

COLOUR_MODES = ("rgb", "hed", "he", "grey")
CHANNELS = {"rgb": 3, "hed": 3, "he": 2, "grey": 1}
#: Largest stain density of an 8-bit tile (black, 1/255 in every channel):
#: "hed" tiles are divided by it, so their values lie in about [0, 1] like RGB's.
HED_MAX = float(rgb2hed(np.full((1, 1, 3), 1 / 255)).max())


def n_channels(mode: str) -> int:
    """Channels of a tile in colour ``mode``: 3 for "rgb" and "hed", 2 for "he", 1 for "grey"."""
    check_colour_mode(mode)
    return CHANNELS[mode]


def check_colour_mode(mode: str) -> None:
    if mode not in COLOUR_MODES:
        raise ValueError(f"colour_mode must be one of {COLOUR_MODES}, got {mode!r}")


def convert_tiles(tiles: np.ndarray, mode: str) -> np.ndarray:
    """RGB tiles (n, h, w, 3) in [0, 1] -> (n, h, w, c) float32 in colour ``mode``.

    "rgb": unchanged; "hed": stain optical densities (``rgb2hed``) / ``HED_MAX``;
    "he": the same without DAB, c = 2; "grey": luminance (``rgb2gray``), c = 1.
    """
    check_colour_mode(mode)
    tiles = np.asarray(tiles)
    if tiles.ndim != 4 or tiles.shape[3] != 3:
        raise ValueError(f"expected RGB tiles (n, h, w, 3), got shape {tiles.shape}")
    if mode == "rgb":
        return tiles.astype(np.float32, copy=False)
    if mode in ("hed", "he"):
        densities = rgb2hed(tiles, channel_axis=-1)[..., :n_channels(mode)]
        return (densities / HED_MAX).astype(np.float32)
    return rgb2gray(tiles, channel_axis=-1)[..., None].astype(np.float32)


def filters_for_display(W: np.ndarray, patch_size: int, mode: str) -> tuple[np.ndarray, tuple]:
    """Filters W (k, p*p*c) as RGB-viewable arrays: (filters (k, d'), patch shape).

    "rgb": as learned, (p, p, 3); "grey": (p, p); "hed" and "he": each pixel's
    stain densities mapped back to RGB optical density through the stain
    matrix (``rgb_from_hed``), so a haematoxylin filter shows blue-purple.
    """
    c = n_channels(mode)
    if mode == "grey":
        return W, (patch_size, patch_size)
    if mode in ("hed", "he"):
        W = (W.reshape(-1, c) @ rgb_from_hed[:c]).reshape(len(W), -1)
    return W, (patch_size, patch_size, 3)
