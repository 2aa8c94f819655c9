"""Stage: train the locally connected network, stage by stage, tiled and replicated."""
from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path

from prefect import task

from tasks.logs import cached, stage_logger
from terafeat.atomic_files import load_array, save_array
from terafeat.distributed.cluster import get_client
from terafeat.process_memory import workers_peak_rss
from terafeat.distributed.shards import write_shards
from terafeat.locally_connected.geometry import stack_geometries
from terafeat.locally_connected.network import network_input, save_network
from terafeat.locally_connected.parallel import train_network

LOG_EVERY = 25


@task(name="train-local-network")
def train_local_network(*, frames_path: str, run_dir: str, architecture: dict, training: dict,
                        backend: str = "local", dask_address: str | None = None,
                        cache_root: str | None = None, without_faces: str | None = None,
                        prefix: str = "") -> dict:
    """Greedy training on ``frames.npy`` (n, s, s) grey frames; with ``without_faces`` (the
    path of the frames' is-face flags, (n,) bool) on the frames minus the faces, the
    no-face control.

    architecture: ``stack_geometries`` keywords (fields, strides, maps, pool,
    pool_stride, lcn_size); training: ``train_layer`` keywords (partitions,
    replicas, steps, batch_size, learning_rate, lam: the pooled-sparsity weight, eps,
    seed, dtype).
    backend "dask" puts the tiles on the cluster of ``get_client(dask_address)``;
    "local" trains in this process, through the stage cache when ``cache_root``
    is given.  Frames are written as shards (two per replica) under ``shards/``,
    read there by the workers.  Writes ``<prefix>network.npz`` and
    ``<prefix>objective<i>.npy``;
    returns per-layer sizes, throughput and communication (with "dask", "peak_rss": the
    workers' largest peak resident memory, bytes).
    """
    def compute(out: Path) -> dict:
        return _train(frames_path, out, architecture, training, backend, dask_address,
                      without_faces, prefix)

    if backend == "dask":  # the shards stay in the run folder, where the workers read them
        return compute(Path(run_dir))
    inputs = {"frames": frames_path, **({"without_faces": without_faces} if without_faces else {})}
    return cached(cache_root, "train-local-network", {**architecture, **training, "prefix": prefix},
                  inputs, run_dir, compute)


def _train(frames_path: str, run: Path, architecture: dict, training: dict, backend: str,
           dask_address: str | None, without_faces: str | None, prefix: str) -> dict:
    logger = stage_logger()
    frames = load_array(frames_path)
    if without_faces:
        frames = frames[~load_array(without_faces).astype(bool)]
    frames = network_input(frames, architecture["lcn_size"], training["dtype"])
    geometries = stack_geometries(frames.shape[1:], **architecture)
    rows = math.ceil(len(frames) / (2 * int(training["replicas"])))
    shards = write_shards(frames.reshape(len(frames), -1), run / f"{prefix}shards", rows)
    started = time.perf_counter()

    def report(layer: int, step: int, value: float) -> None:
        if step % LOG_EVERY == 0 or step == training["steps"]:
            logger.info("layer %d step %d: objective %.5g (%.1f s)", layer + 1, step, value,
                        time.perf_counter() - started)

    for i, geometry in enumerate(geometries):
        logger.info("layer %d: %s input, %dx%d grid of %dx%d fields x %d maps = %d connections",
                    i + 1, "x".join(map(str, geometry.input_shape)), *geometry.grid,
                    geometry.field, geometry.field, geometry.maps, geometry.n_connections)
    with contextlib.ExitStack() as stack:
        client = stack.enter_context(get_client(dask_address)) if backend == "dask" else None
        results = train_network(shards, geometries, run / f"{prefix}shards", callback=report,
                                client=client, **training)
        workers_peak = workers_peak_rss(client) if client is not None else None
    save_network(run / f"{prefix}network.npz", [(g, r.V) for g, r in zip(geometries, results)])
    layers = []
    for i, (geometry, result) in enumerate(zip(geometries, results)):
        layers.append({
            "layer": i + 1, "input": "x".join(map(str, geometry.input_shape)),
            "grid": "x".join(map(str, geometry.grid)), "field": geometry.field,
            "maps": geometry.maps, "output": "x".join(map(str, geometry.output_shape)),
            "connections": geometry.n_connections, "parameters": geometry.n_parameters,
            "seconds": round(result.seconds, 2),
            "frames_per_second": round(result.frames_per_second, 2),
            "border_bytes_per_step": result.border_bytes_per_step,
            "parameter_bytes_per_step": result.parameter_bytes_per_step,
            "measured_bytes_per_step": result.measured_transfer_per_step,
            "first_objective": float(result.objective[0]),
            "final_objective": float(result.objective[-10:].mean()),
            "objective": str(save_array(run / f"{prefix}objective{i + 1}.npy", result.objective))})
        logger.info("layer %d: %.1f frames/s, %d border bytes and %.0f parameter bytes per step, "
                    "objective %.5g -> %.5g", i + 1, result.frames_per_second,
                    result.border_bytes_per_step, result.parameter_bytes_per_step,
                    layers[-1]["first_objective"], layers[-1]["final_objective"])
    training_seconds = sum(result.seconds for result in results)
    return {"network": str(run / f"{prefix}network.npz"), "layers": layers,
            "n_connections": sum(g.n_connections for g in geometries),
            "n_parameters": sum(g.n_parameters for g in geometries),
            "training_seconds": round(training_seconds, 2),
            "frames_per_second": round(sum(r.frames_per_second * r.seconds for r in results)
                                       / training_seconds / len(results), 2),
            "n_frames": int(len(frames)), "n_shards": len(shards),
            **({"peak_rss": workers_peak} if workers_peak is not None else {})}
