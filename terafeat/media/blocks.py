"""Space-time blocks of grey video clips: seeded sampling, dense grids, sizes that fit.

A clip is a (T, H, W) float array (frames, rows, columns), as
:func:`terafeat.media.video.read_clip` returns it. A block shape is
``(frames, height, width)``: Le et al.'s layer-1 block of 16x16 pixels over 10
frames is ``(10, 16, 16)``. Flattened blocks are rows of length
``frames * height * width`` in (frame, row, column) order.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from terafeat.validation import check_random_state

#: Le et al. (CVPR 2011): layer-1 blocks, the stride of layer 1 inside a
#: layer-2 block, and how many layer-1 blocks a layer-2 block holds per axis.
LAYER1_BLOCK = (10, 16, 16)
LAYER1_STRIDE = (4, 4, 4)
SUBBLOCKS = (2, 2, 2)


def check_shape(shape: Sequence[int], name: str = "block shape") -> tuple[int, int, int]:
    """A (frames, height, width) triple of ints >= 1; ValueError naming ``name`` otherwise."""
    shape = tuple(int(n) for n in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"{name} must be (frames, height, width) of ints >= 1, got {shape}")
    return shape


def check_clip(clip, block_shape: Sequence[int], name: str = "clip") -> np.ndarray:
    """``clip`` as a finite (T, H, W) float32 array at least ``block_shape`` big.

    Raises ValueError naming ``name`` (a file, or "clip 3") and the problem.
    """
    clip = np.asarray(clip)
    if clip.ndim != 3:
        raise ValueError(f"{name}: expected grey frames (T, H, W), got shape {clip.shape}")
    if clip.dtype.kind != "f":
        raise ValueError(f"{name}: frames must be floats in [0, 1], got dtype {clip.dtype}")
    if any(c < b for c, b in zip(clip.shape, check_shape(block_shape))):
        raise ValueError(f"{name}: clip of shape {clip.shape} (frames, height, width) is "
                         f"smaller than the {tuple(block_shape)} block")
    clip = np.ascontiguousarray(clip, dtype=np.float32)
    if not np.isfinite(clip).all():
        raise ValueError(f"{name}: contains NaN or infinite pixels")
    return clip


def grid_shape(clip_shape: Sequence[int], block_shape: Sequence[int],
               stride: Sequence[int]) -> tuple[int, int, int]:
    """Number of block positions per axis of a (T, H, W) clip on a grid with ``stride``."""
    return tuple(max(0, (c - b) // s + 1) for c, b, s in zip(clip_shape, block_shape, stride))


def block_windows(clip: np.ndarray, block_shape: Sequence[int],
                  stride: Sequence[int] = (1, 1, 1)) -> np.ndarray:
    """Read-only view of the blocks of a (T, H, W) clip on a grid.

    Returns (nt, nh, nw, frames, height, width): block (i, j, l) starts at
    frame ``i * stride[0]``, row ``j * stride[1]``, column ``l * stride[2]``.
    """
    windows = sliding_window_view(clip, tuple(block_shape), axis=(-3, -2, -1))
    return windows[..., ::stride[0], ::stride[1], ::stride[2], :, :, :]


def dense_blocks(clip, block_shape: Sequence[int], stride: Sequence[int] | None = None,
                 name: str = "clip") -> np.ndarray:
    """All blocks of a clip on a grid, flattened: (n_positions, frames * height * width) copy.

    stride: default half the block on every axis (50% overlap, as Le et al.).
    Positions are in (frame, row, column) grid order.
    """
    block_shape = check_shape(block_shape)
    stride = check_shape(stride or overlap_stride(block_shape, 0.5), "stride")
    windows = block_windows(check_clip(clip, block_shape, name), block_shape, stride)
    return windows.reshape(-1, int(np.prod(block_shape)))


def overlap_stride(block_shape: Sequence[int], overlap: float) -> tuple[int, int, int]:
    """Grid stride giving neighbouring blocks ``overlap`` (0 <= overlap < 1) of their extent."""
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    return tuple(max(1, round(b * (1 - overlap))) for b in check_shape(block_shape))


def block_counts(clip_shapes: Sequence[Sequence[int]], n_blocks: int, block_shape: Sequence[int],
                 random_state=None) -> np.ndarray:
    """How many of ``n_blocks`` uniformly drawn blocks fall in each clip: (n_clips,) ints.

    clip_shapes: (T, H, W) of every clip. A block position is equally likely
    anywhere in any clip (a multinomial draw weighted by each clip's count of
    positions), so clips can then be read and sampled one at a time.
    """
    if n_blocks < 1:
        raise ValueError(f"n_blocks must be >= 1, got {n_blocks}")
    block_shape = check_shape(block_shape)
    positions = np.array([np.prod(grid_shape(shape, block_shape, (1, 1, 1)))
                          for shape in clip_shapes], dtype=np.float64)
    if positions.sum() == 0:
        raise ValueError(f"no clip holds a {block_shape} block (clip shapes {list(clip_shapes)})")
    return check_random_state(random_state).multinomial(n_blocks, positions / positions.sum())


def sample_blocks(clip, n_blocks: int, block_shape: Sequence[int] = LAYER1_BLOCK,
                  random_state=None, name: str = "clip") -> np.ndarray:
    """Blocks at positions drawn uniformly (with replacement) from one (T, H, W) clip.

    Returns (n_blocks, frames * height * width) float32. Same seed, same blocks.
    """
    block_shape = check_shape(block_shape)
    windows = block_windows(check_clip(clip, block_shape, name), block_shape)
    rng = check_random_state(random_state)
    index = tuple(rng.integers(0, n, size=int(n_blocks)) for n in windows.shape[:3])
    return windows[index].reshape(int(n_blocks), -1)


def subblock_offsets(stride: Sequence[int] = LAYER1_STRIDE,
                     subblocks: Sequence[int] = SUBBLOCKS) -> np.ndarray:
    """Start (frame, row, column) of each layer-1 block inside a layer-2 block: (n_sub, 3)."""
    grids = np.meshgrid(*[np.arange(n) * s for n, s in zip(subblocks, stride)], indexing="ij")
    return np.stack([grid.ravel() for grid in grids], axis=1)


def layer2_shape(block_shape: Sequence[int] = LAYER1_BLOCK, stride: Sequence[int] = LAYER1_STRIDE,
                 subblocks: Sequence[int] = SUBBLOCKS) -> tuple[int, int, int]:
    """The layer-2 block covered by ``subblocks`` layer-1 blocks ``stride`` apart.

    Le et al.: (10, 16, 16) blocks, stride 4, 2x2x2 of them -> (14, 20, 20).
    """
    return tuple(b + s * (n - 1) for b, s, n in zip(block_shape, stride, subblocks))


def fit_to_clips(min_clip_shape: Sequence[int], block_shape: Sequence[int] = LAYER1_BLOCK,
                 stride: Sequence[int] = LAYER1_STRIDE, subblocks: Sequence[int] = SUBBLOCKS
                 ) -> tuple[tuple[int, int, int], tuple[int, int, int], float]:
    """Layer-1 block and stride scaled down so that a layer-2 block fits the smallest clip.

    min_clip_shape: the smallest (T, H, W) over the clips. Returns (block
    shape, stride, factor); factor 1.0 means the sizes were kept. Spatial
    axes share one factor (blocks stay square); time is scaled on its own.
    """
    block_shape, stride = check_shape(block_shape), check_shape(stride, "stride")
    needed = layer2_shape(block_shape, stride, subblocks)
    time_factor = min(1.0, min_clip_shape[0] / needed[0])
    space_factor = min(1.0, min(min_clip_shape[1] / needed[1], min_clip_shape[2] / needed[2]))
    factors = (time_factor, space_factor, space_factor)
    if min(factors) == 1.0:
        return block_shape, stride, 1.0
    scaled_block = tuple(max(1, int(b * f)) for b, f in zip(block_shape, factors))
    scaled_stride = tuple(max(1, int(s * f)) for s, f in zip(stride, factors))
    return scaled_block, scaled_stride, float(min(factors))
