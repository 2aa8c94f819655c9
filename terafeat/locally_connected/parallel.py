"""Model and data parallelism for the locally connected network (DistBelief, Dean et al. 2012).

Model parallelism: a layer's receptive-field grid is split into ``partitions``
tiles (:class:`terafeat.locally_connected.geometry.Tiling`).  Each tile lives on one Dask worker
(or in this process for ``backend="local"``): its weights, its optimiser
state, and per step only the input region under it, read from the data shard
files by the worker itself.  A step is one forward task per tile, small tasks
that cut out what each neighbour needs (squared responses under pooling units
crossing the border, partial reconstructions of shared pixel rows), and one
backward task per tile that receives them, computes the tile's exact share of
the gradient and updates the tile's weights where they are: weights never
travel.

Data parallelism: ``replicas`` copies of the partitioned model train on
disjoint data shards, asynchronously (Downpour SGD): the parameter server is
sharded by the same tiles, one :class:`terafeat.distributed.downpour.ParameterServer`
actor per tile holding that tile's weights and Adagrad state; each replica's
tile pushes its gradient to its tile's server and fetches the tile's weights
every ``n_fetch`` steps.  With one replica the tile's optimiser is a plain
``ParameterServer`` object inside the tile (synchronous, deterministic).

Greedy stacking (:func:`train_network`): each stage is trained on the outputs
(filter, pool, LCN) of the trained stages below, written as new shard files.
"""
from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from terafeat.distributed.cluster import worker_transfer_bytes
from terafeat.distributed.downpour import ParameterServer
from terafeat.distributed.shards import ShardError, write_shards
from terafeat.locally_connected.geometry import LayerGeometry, Tiling
from terafeat.locally_connected.network import encode_layer
from terafeat.locally_connected.tile_objective import (
    EPS,
    LAMBDA,
    encoder_weights,
    initial_weights,
    tile_backward,
    tile_forward,
    tile_region,
)
from terafeat.validation import check_dtype

__all__ = ["LayerTraining", "read_frames", "train_layer", "train_network"]

#: Tiles living in this process (a Dask worker, or the client for backend="local").
_TILES: dict[str, "_Tile"] = {}
#: Snapshots are not used here: a push count no run reaches.
_NO_SNAPSHOTS = 1 << 62


# ----------------------------------------------------------------------------- data shards

def _open_shard(path, frame_shape: tuple[int, int, int]) -> np.ndarray:
    """A shard file (m, H*W*c) memory-mapped as (m, H, W, c); ShardError naming the file."""
    try:
        rows = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise ShardError(f"shard file {path} does not exist") from None
    except (OSError, ValueError) as error:
        raise ShardError(f"shard file {path} is unreadable or corrupt: {error}") from None
    if rows.ndim != 2 or rows.shape[1] != int(np.prod(frame_shape)) or rows.dtype.kind != "f":
        raise ShardError(f"shard file {path} holds {rows.dtype} {rows.shape}, expected float rows "
                         f"of {int(np.prod(frame_shape))} = frames of shape {frame_shape}")
    return rows.reshape(len(rows), *frame_shape)


def read_frames(path, frame_shape: tuple[int, int, int], indices=None, rows=None, dtype=np.float32):
    """Frames ``indices`` (all if None) of a shard, pixel rows ``rows`` = (start, stop)
    only (all if None): (n, rows, W, c) ``dtype``.  Reads only those bytes."""
    frames = _open_shard(path, frame_shape)
    start, stop = rows if rows is not None else (0, frame_shape[0])
    chosen = frames[np.sort(indices)] if indices is not None else frames
    return np.asarray(chosen[:, start:stop], dtype=dtype)


def _shard_lengths(paths: Sequence, frame_shape) -> list[int]:
    return [len(_open_shard(path, frame_shape)) for path in paths]


# ----------------------------------------------------------------------------- tiles

@dataclass
class _Tile:
    """One tile of one replica: its weights V (2, L_t, k, D), its optimiser (a local
    ParameterServer or the tile's server actor), and the forward pass in progress."""

    tiling: Tiling
    index: int
    shards: list
    dtype: np.dtype
    server: object
    remote: bool
    lam: float
    eps: float
    n_fetch: int
    V: np.ndarray = None
    forward: object = None
    steps: int = 0
    pushing: object = None


def _value(result):
    """The value of an actor call (a future) or of a plain call."""
    return result.result() if hasattr(result, "result") else result


def _tile_open(key: str, tiling: Tiling, index: int, shards: list, dtype: str, server,
               lam: float, eps: float, n_fetch: int, learning_rate: float, seed: int) -> int:
    """Create tile ``index`` in this process; ``server`` None makes a local optimiser
    (from the seeded start of the tile's rows).  Returns the tile's parameter count."""
    remote = server is not None
    if not remote:
        rows = tiling.bands[index]
        server = ParameterServer(initial_weights(tiling.geometry, rows, seed, np.float64), None,
                                 learning_rate, snapshot_every=_NO_SNAPSHOTS)
    tile = _Tile(tiling, index, list(shards), check_dtype(dtype), server, remote, lam, eps,
                 int(n_fetch))
    tile.V = np.asarray(_value(server.fetch()), dtype=tile.dtype)
    _TILES[key] = tile
    return tile.V.size


def _tile(key: str) -> _Tile:
    try:
        return _TILES[key]
    except KeyError:
        raise RuntimeError(f"tile {key} is not in this process (its worker restarted?)") from None


def _tile_forward(key: str, shard: int, indices: np.ndarray) -> dict:
    """Forward pass of a tile on frames ``indices`` of shard ``shard``; keeps what the
    backward pass needs; returns {neighbour: border message}."""
    tile = _tile(key)
    g, t = tile.tiling.geometry, tile.index
    start, stop = tile.tiling.pixel_rows(t)
    frames = read_frames(tile.shards[shard], g.input_shape, indices, (start, stop), tile.dtype)
    region = tile_region(frames, g, (0, stop - start))
    tile.forward, outgoing = tile_forward(tile.V, region, tile.tiling, t)
    return outgoing


def _pick(outgoing: dict, receiver: int):
    """The part of a tile's outgoing borders addressed to ``receiver``."""
    return outgoing[receiver]


def _tile_backward(key: str, after_forward, senders: tuple, *messages) -> float:
    """Backward pass and update of a tile given the neighbours' messages; returns its
    share of the objective.  ``after_forward``: the tile's own forward result, an
    argument only so that this task waits for it."""
    tile = _tile(key)
    value, grad = tile_backward(tile.V, tile.forward, dict(zip(senders, messages)), tile.tiling,
                                tile.index, tile.lam, tile.eps)
    tile.forward = None
    tile.steps += 1
    if tile.pushing is not None:
        _value(tile.pushing)
    tile.pushing = tile.server.push(grad, 1)
    if not tile.remote or tile.steps % tile.n_fetch == 0:
        if tile.remote:
            _value(tile.pushing)
        tile.V = np.asarray(_value(tile.server.fetch()), dtype=tile.dtype)
    return value


def _tile_weights(key: str) -> np.ndarray:
    """The tile's current weights (from its server)."""
    tile = _tile(key)
    if tile.pushing is not None:
        _value(tile.pushing)
    return np.asarray(_value(tile.server.fetch()), dtype=tile.dtype)


def _tile_close(key: str) -> None:
    _TILES.pop(key, None)


# ----------------------------------------------------------------------------- where tasks run

class _InProcess:
    """Runs the tile tasks in this process, at once (backend="local")."""

    workers = ["local"]

    def submit(self, func: Callable, *args, worker=None):
        return func(*args)

    def gather(self, values):
        return values

    def actor(self, cls, *args, worker=None):
        return cls(*args)


class _OnDask:
    """Runs each tile task on the worker holding the tile."""

    def __init__(self, client):
        self.client = client
        self.workers = sorted(client.scheduler_info(n_workers=-1)["workers"])

    def submit(self, func: Callable, *args, worker=None):
        return self.client.submit(func, *args, workers=[worker], allow_other_workers=False,
                                  pure=False)

    def gather(self, futures):
        return self.client.gather(futures)

    def actor(self, cls, *args, worker=None):
        return self.client.submit(cls, *args, actor=True, workers=[worker]).result()


# ----------------------------------------------------------------------------- training

@dataclass
class LayerTraining:
    """What :func:`train_layer` returns.

    V: (2, L, k, D) trained weights (``encoder_weights(V)[0]`` are the filters).
    objective: (steps,) minibatch objective of replica 0 at each of its steps.
    seconds: wall time of the steps; frames_per_second: frames all replicas
    processed per second.  border_bytes_per_step: bytes the tiles of one
    replica exchange per step (geometry: ``Tiling.border_bytes``);
    parameter_bytes_per_step: gradient pushes and weight fetches between one
    replica's tiles and the tile servers per step (0 with one replica);
    measured_transfer_per_step: bytes the Dask workers served per replica step
    (None in-process).
    """

    V: np.ndarray
    objective: np.ndarray
    seconds: float
    frames_per_second: float
    border_bytes_per_step: int
    parameter_bytes_per_step: float
    measured_transfer_per_step: float | None
    partitions: int
    replicas: int
    n_parameters: int = field(default=0)


def train_layer(shard_paths: Sequence, geometry: LayerGeometry, *, partitions: int = 1,
                replicas: int = 1, steps: int = 100, batch_size: int = 16,
                learning_rate: float = 0.05, lam: float = LAMBDA, eps: float = EPS, seed: int = 0,
                dtype="float32", n_fetch: int = 1, client=None,
                callback: Callable[[int, float], None] | None = None) -> LayerTraining:
    """Train one locally connected layer by minibatch Adagrad on frame shards.

    shard_paths: .npy files of frames, each (m_s, H*W*c) (:func:`write_shards`
    of frames flattened), H, W, c = ``geometry.input_shape``.  Replica r trains
    on shards r, r + replicas, ...; each step draws ``batch_size`` frames of
    one of its shards (seeded: the same seed gives the same data order).
    client: a ``distributed.Client`` (tiles on its workers, replica r's tile t
    on worker ``(r * partitions + t) % n_workers``), or None for this process
    (replicas then take turns step by step).  callback(step, objective) after
    each step of replica 0.
    """
    dtype = check_dtype(dtype)
    shard_paths = [str(path) for path in shard_paths]
    if int(replicas) < 1 or len(shard_paths) < int(replicas):
        raise ValueError(f"replicas must be between 1 and the {len(shard_paths)} data shards, "
                         f"got {replicas}")
    if int(batch_size) < 1 or int(steps) < 1 or int(n_fetch) < 1:
        raise ValueError("batch_size, steps and n_fetch must be >= 1")
    tiling = Tiling(geometry, partitions)
    runner = _InProcess() if client is None else _OnDask(client)
    P, R = len(tiling), int(replicas)
    place = {(r, t): runner.workers[(r * P + t) % len(runner.workers)]
             for r in range(R) for t in range(P)}
    run_id = uuid.uuid4().hex[:12]
    keys = {(r, t): f"{run_id}-r{r}-t{t}" for r in range(R) for t in range(P)}
    servers = {t: None for t in range(P)}
    if R > 1:
        servers = {t: runner.actor(
            ParameterServer, runner.submit(initial_weights, geometry, tiling.bands[t], seed,
                                           np.float64, worker=place[0, t]),
            None, learning_rate, _NO_SNAPSHOTS, worker=place[0, t]) for t in range(P)}
    replica_shards = [shard_paths[r::R] for r in range(R)]
    opened = runner.gather([runner.submit(
        _tile_open, keys[r, t], tiling, t, replica_shards[r], dtype.name, servers[t], lam, eps,
        n_fetch, learning_rate, seed, worker=place[r, t]) for r in range(R) for t in range(P)])
    lengths = [_shard_lengths(shards, geometry.input_shape) for shards in replica_shards]
    rngs = np.random.default_rng(seed).spawn(R)
    n_frames = min(int(batch_size), min(min(sizes) for sizes in lengths))
    objective = [[] for _ in range(R)]

    def step(r: int) -> float:
        sizes = np.asarray(lengths[r])
        shard = int(rngs[r].choice(len(sizes), p=sizes / sizes.sum()))
        indices = rngs[r].choice(sizes[shard], size=n_frames, replace=False)
        outgoing = [runner.submit(_tile_forward, keys[r, t], shard, indices, worker=place[r, t])
                    for t in range(P)]
        inbox = {t: ([], []) for t in range(P)}
        for u in range(P):
            for t in {v for v, _, _ in tiling.response_sends[u] + tiling.reconstruction_sends[u]}:
                inbox[t][0].append(u)
                inbox[t][1].append(runner.submit(_pick, outgoing[u], t, worker=place[r, u]))
        shares = [runner.submit(_tile_backward, keys[r, t], outgoing[t], tuple(inbox[t][0]),
                                *inbox[t][1],
                                worker=place[r, t]) for t in range(P)]
        value = float(sum(runner.gather(shares)))
        objective[r].append(value)
        if r == 0 and callback is not None:
            callback(len(objective[0]), value)
        return value

    transfer_before = worker_transfer_bytes(client) if client is not None else None
    started = time.perf_counter()
    try:
        if client is None or R == 1:
            for _ in range(int(steps)):
                for r in range(R):
                    step(r)
        else:
            threads = [threading.Thread(target=lambda r=r: [step(r) for _ in range(int(steps))])
                       for r in range(R)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            if any(len(values) < int(steps) for values in objective):
                raise RuntimeError("a replica stopped early; see the worker logs")
        seconds = time.perf_counter() - started
        measured = None
        if client is not None:
            measured = (worker_transfer_bytes(client) - transfer_before) / (int(steps) * R)
        V = np.concatenate(runner.gather(
            [runner.submit(_tile_weights, keys[0, t], worker=place[0, t]) for t in range(P)]),
            axis=1)
    finally:
        runner.gather([runner.submit(_tile_close, key, worker=place[where])
                       for where, key in keys.items()])
    itemsize = dtype.itemsize
    parameter_bytes = 0.0
    if R > 1:
        tile_sizes = [2 * (b - a) * geometry.grid[1] * geometry.maps * geometry.patch_dim
                      for a, b in tiling.bands]
        parameter_bytes = sum(size * (itemsize + 8 / int(n_fetch)) for size in tile_sizes)
    return LayerTraining(
        V=V, objective=np.asarray(objective[0]), seconds=seconds,
        frames_per_second=int(steps) * R * n_frames / seconds,
        border_bytes_per_step=tiling.border_bytes(n_frames, itemsize),
        parameter_bytes_per_step=parameter_bytes, measured_transfer_per_step=measured,
        partitions=P, replicas=R, n_parameters=int(sum(opened[:P])))


# ----------------------------------------------------------------------------- stacking

def train_network(shard_paths: Sequence, geometries: Sequence[LayerGeometry], folder,
                  callback: Callable[[int, int, float], None] | None = None,
                  **training) -> list[LayerTraining]:
    """Greedy layer-wise training: stage i on the outputs of stages < i.

    shard_paths: the frames' shards (see :func:`train_layer`); each trained
    stage's outputs are written as shards under ``folder/layer<i>/`` (same
    split) for the next.  training: keyword arguments of :func:`train_layer`.
    callback(layer, step, objective).  Returns one LayerTraining per stage.
    """
    results = []
    dtype = check_dtype(training.get("dtype", "float32"))
    for i, geometry in enumerate(geometries):
        if i and tuple(geometry.input_shape) != tuple(geometries[i - 1].output_shape):
            raise ValueError(f"layer {i}'s input {geometry.input_shape} is not layer {i - 1}'s "
                             f"output {geometries[i - 1].output_shape}")
        report = None if callback is None else (lambda s, v, i=i: callback(i, s, v))
        results.append(train_layer(shard_paths, geometry, callback=report, **training))
        if i + 1 < len(geometries):
            W1 = encoder_weights(results[-1].V)[0]
            outputs = [encode_layer(read_frames(path, geometry.input_shape, dtype=dtype), W1,
                                    geometry) for path in shard_paths]
            shard_paths = [write_shards(out.reshape(len(out), -1), Path(folder) / f"layer{i + 1}",
                                        len(out), prefix=f"shard{s:05d}")[0]
                           for s, out in enumerate(outputs)]
    return results
