"""Inference through a trained locally connected network: encode a layer, the whole stack,
saved and loaded networks, unit responses, an untrained (random) network."""
from __future__ import annotations

import numpy as np

from terafeat.atomic_files import save_arrays
from terafeat.locally_connected.geometry import LayerGeometry
from terafeat.locally_connected.maps import extract_patches, l2_pool_maps, local_contrast_normalize
from terafeat.locally_connected.tile_objective import (
    EPS,
    encoder_weights,
    initial_weights,
    tile_region,
)
from terafeat.validation import check_dtype

# ----------------------------------------------------------------------------- inference

def encode_layer(frames: np.ndarray, W1: np.ndarray, geometry: LayerGeometry,
                 eps: float = EPS, chunk: int = 64) -> np.ndarray:
    """One trained stage on frames (n, H, W, c): local filters W1 (L, k, D), L2 pooling,
    LCN.  Returns (n, *geometry.output_shape) in W1's dtype, ``chunk`` frames at a time."""
    g = geometry
    if frames.shape[1:] != tuple(g.input_shape):
        raise ValueError(f"frames of shape {frames.shape[1:]} do not match the layer's input "
                         f"{tuple(g.input_shape)}")
    outputs = [local_contrast_normalize(filter_and_pool(frames[start:start + chunk], W1, g, eps)[1],
                                        g.lcn_size) for start in range(0, len(frames), chunk)]
    return np.concatenate(outputs)


def filter_and_pool(frames: np.ndarray, W1: np.ndarray, geometry: LayerGeometry,
                    eps: float = EPS) -> tuple[np.ndarray, np.ndarray]:
    """(responses (L, n, k), L2-pooled maps (n, rows, cols, k)) of frames (n, H, W, c)."""
    g = geometry
    region = tile_region(frames.astype(W1.dtype, copy=False), g, (0, g.covered[0]))
    responses = np.matmul(extract_patches(region, g.field, g.stride, *g.grid), W1.transpose(0, 2, 1))
    pooled = l2_pool_maps(responses.reshape(*g.grid, *responses.shape[1:]), g.pool,
                          g.pool_stride, eps)
    return responses, pooled.transpose(2, 0, 1, 3)


def network_forward(frames: np.ndarray, layers, eps: float = EPS, chunk: int = 64) -> np.ndarray:
    """Frames (n, H, W, c) through trained stages [(geometry, V)]: the top stage's
    output (n, rows, cols, maps)."""
    for geometry, V in layers:
        frames = encode_layer(frames, encoder_weights(V)[0], geometry, eps, chunk)
    return frames


def network_input(images: np.ndarray, lcn_size: int, dtype=np.float32) -> np.ndarray:
    """Grey images (n, h, w) as the network's input: local contrast normalised (n, h, w, 1)."""
    images = np.asarray(images, dtype=check_dtype(dtype))
    if images.ndim != 3:
        raise ValueError(f"expected grey images (n, h, w), got shape {images.shape}")
    return local_contrast_normalize(images[..., None], lcn_size)


_GEOMETRY_FIELDS = ("field", "stride", "maps", "pool", "pool_stride", "lcn_size")


def save_network(path, layers) -> None:
    """Write stages [(geometry, V)] to one .npz file, atomically."""
    arrays = {}
    for i, (geometry, V) in enumerate(layers):
        arrays[f"V{i}"] = V
        arrays[f"geometry{i}"] = np.array([*geometry.input_shape,
                                           *(getattr(geometry, name) for name in _GEOMETRY_FIELDS)])
    save_arrays(path, arrays)


def load_network(path) -> list[tuple[LayerGeometry, np.ndarray]]:
    """The stages written by :func:`save_network`."""
    with np.load(path) as saved:
        layers = []
        for i in range(sum(name.startswith("V") for name in saved.files)):
            numbers = [int(v) for v in saved[f"geometry{i}"]]
            geometry = LayerGeometry(tuple(numbers[:3]), **dict(zip(_GEOMETRY_FIELDS, numbers[3:])))
            layers.append((geometry, saved[f"V{i}"]))
    return layers


#: The top stage's units that can be scored: its local filters' responses W1^T x
#: (simple units, signed), or its outputs after L2 pooling and LCN.
UNIT_KINDS = ("simple", "output")


def stage_responses(images: np.ndarray, layers, chunk: int = 64) -> list[dict[str, np.ndarray]]:
    """Every stage's units on grey images (n, H, W) (made network input as in training):
    one dict per stage, {"simple": (n, L * k) local filter responses, unit index =
    location * k + map, "output": (n, rows * cols * k) pooled, normalised outputs,
    index = (row * cols + col) * k + map}."""
    frames = network_input(images, layers[0][0].lcn_size, layers[0][1].dtype)
    stages = []
    for geometry, V in layers:
        W1 = encoder_weights(V)[0]
        simple, outputs = [], []
        for start in range(0, len(frames), chunk):
            responses, pooled = filter_and_pool(frames[start:start + chunk], W1, geometry)
            simple.append(responses.transpose(1, 0, 2).reshape(len(pooled), -1))
            outputs.append(local_contrast_normalize(pooled, geometry.lcn_size))
        frames = np.concatenate(outputs)
        stages.append({"simple": np.concatenate(simple),
                       "output": frames.reshape(len(frames), -1)})
    return stages


def unit_responses(images: np.ndarray, layers, kind: str = "simple", chunk: int = 64) -> np.ndarray:
    """Top-stage units' responses to grey images (n, H, W) of ``kind`` ("simple" or
    "output"), indexed as in :func:`stage_responses`."""
    if kind not in UNIT_KINDS:
        raise ValueError(f"kind must be one of {UNIT_KINDS}, got {kind!r}")
    return stage_responses(images, layers, chunk)[-1][kind]


def random_network(geometries, random_state: int,
                   dtype=np.float32) -> list[tuple[LayerGeometry, np.ndarray]]:
    """Untrained stages [(geometry, V)] of the given shapes: the weights that training
    with ``random_state`` starts each stage from (:func:`initial_weights`); the baseline
    network of the same shape."""
    return [(g, initial_weights(g, (0, g.grid[0]), random_state, dtype)) for g in geometries]
