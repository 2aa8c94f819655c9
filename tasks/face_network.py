"""Stages of the face-neuron network's layers (RICA + L2 pooling, trained layer by layer
through ``tasks.training.train_rica_layer``): each layer's whitened input, and the
network assembled from the trained layers."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from prefect import task

from tasks.logs import stage_logger
from terafeat.atomic_files import load_array, save_array, save_arrays
from terafeat.learning.pooled_network import (
    PooledNetwork,
    assemble_pooled_network,
    fit_layer_whitener,
    frame_rows,
    next_layer_input,
)
from terafeat.learning.whitening import Whitener


def load_network(path: str) -> PooledNetwork:
    with np.load(path) as arrays:
        return PooledNetwork.from_arrays(arrays)


def _load_whitener(path: str) -> Whitener:
    with np.load(path) as arrays:
        return Whitener.from_arrays(arrays)


@task(name="whiten-face-layer")
def whiten_face_layer(*, run_dir: str, layer: int, frames_path: str, normalize_frames: bool,
                      lcn: bool, n_components: int | None, whitening_eps: float, eps: float,
                      lower: dict | None = None, without_faces: str | None = None,
                      prefix: str = "") -> dict:
    """Layer ``layer``'s (1-based) input, whitened: layer 1 reads the frames (n, s, s)
    (``without_faces``: path of their is_face flags, dropped: the control network),
    contrast-normalised when ``normalize_frames``; a higher layer reads the layer below's
    pooled units (``lower``: its ``whitened`` and ``W`` paths, ``group_size``),
    contrast-normalised when ``lcn``.  Writes ``<prefix>whitener<layer>.npz`` and
    ``<prefix>whitened<layer>.npy`` (m, n_out) float64."""
    if lower is None:
        frames = load_array(frames_path)
        if without_faces is not None:
            frames = frames[~load_array(without_faces)]
        X = frame_rows(frames, normalize_frames)
    else:
        X = next_layer_input(load_array(lower["whitened"]), load_array(lower["W"]),
                             lower["group_size"], eps, lcn)
    whitener, whitened = fit_layer_whitener(X, layer - 1, n_components, whitening_eps)
    run = Path(run_dir)
    stage_logger().info("%slayer %d: %d rows, %d -> %d whitened dimensions", prefix, layer,
                        len(X), X.shape[1], whitened.shape[1])
    return {"whitener": str(save_arrays(run / f"{prefix}whitener{layer}.npz",
                                        whitener.to_arrays())),
            "whitened": str(save_array(run / f"{prefix}whitened{layer}.npy", whitened)),
            "n_rows": len(X), "n_inputs": int(X.shape[1]),
            "n_whitened": int(whitened.shape[1])}


@task(name="build-face-network")
def build_face_network(*, run_dir: str, frame_size: int, whitening: list[dict],
                       training: list[dict], group_sizes: list[int], eps: float,
                       normalize_frames: bool, lcn: bool, max_iter: int,
                       prefix: str = "") -> dict:
    """The network of the trained layers (per layer: ``whiten-face-layer``'s and
    ``train-rica``'s outputs), written as ``<prefix>network.npz``; returns it with
    the layers' training summary (objective curves, iterations, stopping messages)."""
    logger = stage_logger()
    layers = [(_load_whitener(w["whitener"]), load_array(t["W"]), group_size, eps)
              for w, t, group_size in zip(whitening, training, group_sizes)]
    network = assemble_pooled_network((frame_size, frame_size), layers, normalize_frames, lcn)
    curves = [load_array(t["objective"]) for t in training]
    iterations = [len(curve) - 1 for curve in curves]
    messages = [t["optimizer_message"] for t in training]
    for layer, (n_iter, message) in enumerate(zip(iterations, messages)):
        if n_iter < max_iter and "ABNORMAL" in message:
            logger.warning("%slayer %d stopped after %d of %d iterations (%s): try dtype=float64",
                           prefix, layer + 1, n_iter, max_iter, message)
    return {"network": str(save_arrays(Path(run_dir) / f"{prefix}network.npz",
                                       network.to_arrays())),
            "objectives": [t["objective"] for t in training],
            "seconds": sum(t["seconds"] for t in training),
            "n_frames": whitening[0]["n_rows"],
            "final_objectives": [float(curve[-1]) for curve in curves],
            "iterations": iterations, "optimizer_messages": messages}
