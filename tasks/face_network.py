"""Stage: train the face-neuron network (RICA + L2 pooling, layer by layer)."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from prefect import task

from tasks.logs import stage_logger
from terafeat.atomic_files import load_array, save_array, save_arrays
from terafeat.learning.pooled_network import PooledNetwork, fit_pooled_network

LOG_EVERY = 50


def load_network(path: str) -> PooledNetwork:
    with np.load(path) as arrays:
        return PooledNetwork.from_arrays(arrays)


@task(name="train-face-network")
def train_face_network(frames_path: str, run_dir: str, layers: list[dict], normalize_frames: bool,
                       lcn: bool, dtype: str, seed: int, prefix: str = "",
                       without_faces: str | None = None) -> dict:
    """Greedy unsupervised training on ``frames.npy``; writes ``<prefix>network.npz`` and
    ``<prefix>objective<layer>.npy``. without_faces: path of the frames' is_face
    flags: train only on the frames that are not faces (the control run)."""
    logger = stage_logger()
    frames = load_array(frames_path)
    if without_faces is not None:
        frames = frames[~load_array(without_faces)]
    started = time.perf_counter()

    def report(layer: int, iteration: int, value: float):
        if iteration % LOG_EVERY == 0:
            logger.info("%slayer %d, iteration %d: objective %.6g (%.1f s)", prefix, layer + 1,
                        iteration, value, time.perf_counter() - started)

    network = fit_pooled_network(frames, layers, normalize_frames, lcn, dtype=np.dtype(dtype),
                                 random_state=seed, callback=report)
    seconds = time.perf_counter() - started
    run = Path(run_dir)
    objectives = [str(save_array(run / f"{prefix}objective{i + 1}.npy", curve))
                  for i, curve in enumerate(network.objectives_)]
    iterations = [len(curve) - 1 for curve in network.objectives_]
    logger.info("%snetwork trained on %d frames in %.1f s; L-BFGS iterations per layer %s (%s)",
                prefix, len(frames), seconds, iterations, "; ".join(network.messages_))
    for layer, (n_iter, message) in enumerate(zip(iterations, network.messages_)):
        if n_iter < layers[layer]["max_iter"] and "ABNORMAL" in message:
            logger.warning("%slayer %d stopped after %d of %d iterations (%s): try dtype=float64",
                           prefix, layer + 1, n_iter, layers[layer]["max_iter"], message)
    return {"network": str(save_arrays(run / f"{prefix}network.npz", network.to_arrays())),
            "objectives": objectives, "seconds": seconds, "n_frames": int(len(frames)),
            "final_objectives": [float(curve[-1]) for curve in network.objectives_],
            "iterations": iterations, "optimizer_messages": network.messages_}
