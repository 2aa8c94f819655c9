"""Patches as ``.npy`` shards: written once, loaded by the worker that holds them, and the
per-shard partial sums of the RICA objective that a worker computes."""
from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
from dask.sizeof import sizeof

from terafeat.atomic_files import atomic_write
from terafeat.learning.rica_objective import SparsityKernel
from terafeat.validation import check_array

# ----------------------------------------------------------------------------- shards

class ShardError(RuntimeError):
    """A shard file that is missing, unreadable or malformed; the message names it."""


def write_shards(X, folder, rows_per_shard: int, prefix: str = "shard") -> list[Path]:
    """Write X (m, d) as ``ceil(m / rows_per_shard)`` files ``folder/<prefix>-00000.npy`` ...

    Each file is written atomically (temporary file, then rename), in X's
    float dtype (integers become float32).  Returns the paths in row order.
    """
    X = np.asarray(X)
    X = check_array(X, dtype=X.dtype if X.dtype == np.float64 else np.float32, name="X")
    rows_per_shard = int(rows_per_shard)
    if rows_per_shard < 1:
        raise ValueError(f"rows_per_shard must be >= 1, got {rows_per_shard}")
    folder = Path(folder)
    paths = []
    for index, start in enumerate(range(0, X.shape[0], rows_per_shard)):
        path = folder / f"{prefix}-{index:05d}.npy"
        atomic_write(path, lambda file, block=X[start:start + rows_per_shard]: np.save(file, block))
        paths.append(path)
    return paths


def load_shard(path, dtype=np.float32, mapped: bool = False) -> np.ndarray:
    """The (m_s, d) array of one shard file, as C-contiguous ``dtype``; runs on workers.
    mapped: memory-mapped read-only as stored instead (no copy, no dtype conversion, no
    NaN check: for repeated passes over shards already checked once).

    Raises ShardError naming the file when it is missing, unreadable, not a
    2-D numeric array, or holds NaN / infinite values.
    """
    try:
        X = np.load(path, mmap_mode="r" if mapped else None, allow_pickle=False)
    except FileNotFoundError:
        raise ShardError(f"shard file {path} does not exist") from None
    except (OSError, ValueError, EOFError) as error:
        raise ShardError(f"shard file {path} is unreadable or corrupt: {error}") from None
    if mapped:
        if X.ndim != 2:
            raise ShardError(f"shard file {path} must be 2-D (n_samples, n_features), got "
                             f"shape {X.shape}")
        return X
    try:
        return check_array(X, dtype=dtype, name=f"shard file {path}")
    except ValueError as error:
        raise ShardError(str(error)) from None


class LoadedShard:
    """A shard loaded on a worker: X (m_s, d) and sparsity kernels over it.

    The kernel (``rica.SparsityKernel``: block buffers of (b, k) and (k, d))
    is kept across evaluations; rebuilding it per call costs 6-12% of the
    evaluation in a Dask worker, whose ``MALLOC_TRIM_THRESHOLD_`` makes every
    large allocation a fresh mmap.  Evaluations running at once (portions of
    the shard on a worker's threads) each borrow their own kernel.
    """

    def __init__(self, X: np.ndarray):
        self.X = X
        self._lock = threading.Lock()
        self._idle: list[tuple[int, np.ndarray | None, SparsityKernel]] = []

    def __reduce__(self):
        return LoadedShard, (self.X,)  # the data, not the kernels or the lock

    def sparsity_terms(self, W: np.ndarray, eps: float, pool,
                       rows: tuple[int, int] | None = None) -> tuple[float, np.ndarray]:
        """``rica.sparsity_terms(W, X, eps, pool)`` with a cached kernel, over all rows or
        rows [start, stop)."""
        kernel = self._borrow(W.shape[0], pool)
        try:
            return kernel(W, eps, rows)
        finally:
            with self._lock:
                self._idle.append((W.shape[0], pool, kernel))

    def _borrow(self, k: int, pool) -> SparsityKernel:
        with self._lock:
            # kernels for another k or pooling are dropped
            self._idle = [entry for entry in self._idle if entry[0] == k and (
                (pool is None and entry[1] is None) or (
                    pool is not None and entry[1] is not None and np.array_equal(pool, entry[1])))]
            if self._idle:
                return self._idle.pop()[2]
        return SparsityKernel(self.X, k, pool)

    def portion(self, start: int, stop: int) -> "ShardPortion":
        return ShardPortion(self, start, stop)


class ShardPortion:
    """Rows [start, stop) of a loaded shard; a shard function takes it in place of the shard
    (``X`` is a view; the sparsity sums come from the shard's own kernels)."""

    def __init__(self, shard: LoadedShard, start: int, stop: int):
        self.shard, self.rows = shard, (int(start), int(stop))
        self.X = shard.X[start:stop]

    def sparsity_terms(self, W: np.ndarray, eps: float, pool) -> tuple[float, np.ndarray]:
        return self.shard.sparsity_terms(W, eps, pool, self.rows)


def portion_bounds(n_rows: int, n_portions: int) -> list[tuple[int, int]]:
    """``n_portions`` contiguous row ranges [start, stop) covering ``n_rows`` rows once, sizes
    within one of each other (fewer if there are fewer rows)."""
    edges = [n_rows * i // n_portions for i in range(n_portions + 1)]
    return [(start, stop) for start, stop in zip(edges, edges[1:]) if stop > start]


sizeof.register(LoadedShard)(lambda shard: shard.X.nbytes)


def load_pinned_shard(path, dtype) -> LoadedShard:
    return LoadedShard(load_shard(path, dtype))


def shard_shape(shard: LoadedShard) -> tuple[int, int]:
    return shard.X.shape


def shard_gram(shard: LoadedShard) -> tuple[np.ndarray, int]:
    """(X^T X in float64 (d, d), m_s) of one shard."""
    X64 = shard.X.astype(np.float64, copy=False)
    return X64.T @ X64, len(X64)


def shard_sparsity(shard: LoadedShard, W: np.ndarray, eps: float, pool) -> tuple[float, np.ndarray, int]:
    """(penalty sum, its gradient (k, d), m_s) of one shard: ``rica.sparsity_terms``."""
    return (*shard.sparsity_terms(W, eps, pool), len(shard.X))


def run_portion(func: Callable, args: tuple, shard: LoadedShard, start: int, stop: int) -> tuple:
    """``func(rows [start, stop) of shard, *args)``: one Sandblaster work portion."""
    return func(shard.portion(start, stop), *args)


def map_sum(func: Callable, args: tuple, *shards: LoadedShard) -> tuple:
    """Sum of ``func(shard, *args)`` over the shards held by one worker thread."""
    return sum_partials(*(func(shard, *args) for shard in shards))


def sum_partials(*partials: tuple) -> tuple:
    """Element-wise sum of tuples of numbers and arrays: one node of the reduction tree."""
    return tuple(sum(items[1:], start=items[0]) for items in zip(*partials))


def objective_from_terms(reconstruction: tuple[float, np.ndarray], penalty_sum: float,
               penalty_grad: np.ndarray, m: int) -> tuple[float, np.ndarray]:
    """J and dJ/dW (k, d) from the reconstruction term and the penalty sums over m rows.

    The same arithmetic as ``RicaLoss.__call__``, so a sharded evaluation is
    bit-for-bit the single-process one up to the order of the sums.
    """
    value, grad = reconstruction
    grad += penalty_grad * grad.dtype.type(1.0 / m)
    return value + penalty_sum / m, grad


