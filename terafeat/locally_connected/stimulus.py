"""Input gradients of the locally connected network: what the optimal-stimulus search
(``terafeat.analysis.optimal_stimulus.optimal_stimulus``) needs to maximise one top-layer unit.

Backward passes, each the adjoint of a forward step of ``terafeat.locally_connected``:
LCN (:func:`contrast_backward`), L2 pooling and the local filters
(:func:`stage_input_gradient`), stacked in :func:`unit_gradient`.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from terafeat.locally_connected.geometry import LayerGeometry
from terafeat.locally_connected.maps import (
    contrast_parts,
    local_contrast_normalize,
    local_mean,
    overlap_add,
    sum_pool_adjoint,
)
from terafeat.locally_connected.network import UNIT_KINDS, filter_and_pool, network_input
from terafeat.locally_connected.tile_objective import EPS, encoder_weights

__all__ = ["contrast_backward", "stage_input_gradient", "unit_gradient", "unit_functions"]


def contrast_backward(maps: np.ndarray, grad: np.ndarray, size: int, floor: float = 1e-4) -> np.ndarray:
    """Gradient w.r.t. maps (n, h, w, c) of ``sum(grad * local_contrast_normalize(maps))``."""
    centred, spread, mean_spread, divisor = contrast_parts(maps, size, floor)
    n, h, w, c = maps.shape
    g_centred = grad / divisor[..., None]
    g_divisor = -(grad * centred).sum(axis=3) / divisor ** 2
    by_spread = (spread >= mean_spread) & (spread > floor)
    by_mean = ~by_spread & (mean_spread > floor)
    g_spread = g_divisor * by_spread + (g_divisor * by_mean).sum(axis=(1, 2), keepdims=True) / (h * w)
    g_variance = np.divide(g_spread, 2 * spread, out=np.zeros_like(g_spread), where=spread > 0)
    g_centred += local_mean(g_variance, size, adjoint=True)[..., None] * (2 / c) * centred
    return g_centred - local_mean(g_centred.sum(axis=3), size, adjoint=True)[..., None] / c


def stage_input_gradient(frames: np.ndarray, W1: np.ndarray, geometry: LayerGeometry,
                         grad: np.ndarray, eps: float = EPS, on: str = "output") -> np.ndarray:
    """Gradient w.r.t. frames (n, H, W, c) of ``sum(grad * encode_layer(frames))``
    (grad (n, *geometry.output_shape)), or with ``on="simple"`` of ``sum(grad *
    responses)``, grad (L, n, k) on the local filters' responses."""
    g = geometry
    if on == "simple":
        g_responses = grad
    else:
        responses, pooled = filter_and_pool(frames, W1, g, eps)
        g_pooled = contrast_backward(pooled, grad, g.lcn_size).transpose(1, 2, 0, 3) / \
            pooled.transpose(1, 2, 0, 3)
        g_responses = responses * sum_pool_adjoint(g_pooled, g.pool, g.pool_stride,
                                                   g.grid).reshape(responses.shape)
    region = overlap_add(np.matmul(g_responses, W1), g.field, g.stride, *g.grid, g.input_shape[2])
    g_frames = np.zeros(frames.shape, dtype=region.dtype)
    g_frames[:, :g.covered[0], :g.covered[1]] = region.transpose(2, 0, 1, 3)
    return g_frames


def unit_gradient(images: np.ndarray, layers, unit: int,
                  kind: str = "simple") -> tuple[np.ndarray, np.ndarray]:
    """(responses (n,), gradients (n, H, W)) of top-layer unit ``unit`` of ``kind``
    (index as in ``terafeat.locally_connected.network.unit_responses``) w.r.t. grey images (n, H, W)."""
    if kind not in UNIT_KINDS:
        raise ValueError(f"kind must be one of {UNIT_KINDS}, got {kind!r}")
    dtype = layers[0][1].dtype
    images = np.asarray(images, dtype=dtype)
    inputs = [images[..., None]]
    frames = network_input(images, layers[0][0].lcn_size, dtype)
    filters = [encoder_weights(V)[0] for _, V in layers]
    for (geometry, _), W1 in zip(layers, filters):
        inputs.append(frames)
        responses, pooled = filter_and_pool(frames, W1, geometry)
        frames = local_contrast_normalize(pooled, geometry.lcn_size)
    top = frames if kind == "output" else responses.transpose(1, 0, 2)
    top = top.reshape(len(images), -1)
    if not 0 <= unit < top.shape[1]:
        raise ValueError(f"unit {unit} is not one of the {top.shape[1]} top-layer {kind} units")
    grad = np.zeros_like(top)
    grad[:, unit] = 1
    grad = grad.reshape(frames.shape) if kind == "output" else \
        grad.reshape(len(images), *responses.shape[::2]).transpose(1, 0, 2)
    stages = list(zip(layers, filters, inputs[1:]))
    for i, ((geometry, _), W1, below) in enumerate(reversed(stages)):
        grad = stage_input_gradient(below, W1, geometry, grad, on=kind if i == 0 else "output")
    grad = contrast_backward(inputs[0], grad, layers[0][0].lcn_size)
    return top[:, unit], grad[..., 0]


def unit_functions(layers, unit: int, shape: tuple[int, int],
                   kind: str = "simple") -> tuple[Callable, Callable]:
    """(response(x) -> float, gradient(x) -> (H*W,)) of one unit over a flat image x,
    the callables ``terafeat.analysis.optimal_stimulus.optimal_stimulus`` takes."""
    def response(x: np.ndarray) -> float:
        return float(unit_gradient(x.reshape(1, *shape), layers, unit, kind)[0][0])

    def gradient(x: np.ndarray) -> np.ndarray:
        return unit_gradient(x.reshape(1, *shape), layers, unit, kind)[1].ravel().astype(
            np.float64)

    return response, gradient
