"""Feature shards streamed from disk: the rows of each shard, their moments, the
standardisation the classifiers fit on, and the rows held out for choosing a regulariser.

Features of n examples live in shard files ((n_s, f) float32 ``.npy``).  Only the first
pass (``feature_moments``) reads and checks whole shards; later passes map the files
(``np.load(mmap_mode="r")``), so the page cache serves them without a copy.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from terafeat.distributed.shards import load_shard


def iter_masked_shards(paths: Sequence, labels: Sequence[np.ndarray],
                       masks: Sequence[np.ndarray] | None = None
                       ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """(features (n_s, f), labels (n_s,), rows (n_s,) bool or None: the rows that count)
    of each shard, memory-mapped (``load_shard`` with ``mapped``: ``feature_moments``
    checks every shard once) and whole: no copy of the rows that count."""
    for index, path in enumerate(paths):
        X, y = load_shard(path, mapped=True), np.asarray(labels[index])
        if len(X) != len(y):
            raise ValueError(f"{path}: {len(X)} feature rows but {len(y)} labels")
        yield X, y, None if masks is None else np.asarray(masks[index], bool)


def iter_shards(paths: Sequence, labels: Sequence[np.ndarray],
                masks: Sequence[np.ndarray] | None = None
                ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(features (n_s, f), labels (n_s,)) of each shard's rows where ``masks`` is True
    (``iter_masked_shards``, the rows copied out)."""
    for X, y, rows in iter_masked_shards(paths, labels, masks):
        yield (X, y) if rows is None else (X[rows], y[rows])


def feature_moments(paths: Sequence) -> tuple[np.ndarray, np.ndarray, int]:
    """(mean (f,), std (f,), n) of the rows of all shards, float64, in one pass that
    checks every shard (``load_shard``: a ShardError names a bad or non-finite one)."""
    total, squares, n = 0.0, 0.0, 0
    for path in paths:
        X = load_shard(path)
        total = total + X.sum(axis=0, dtype=np.float64)
        squares = squares + np.einsum("ij,ij->j", X, X, dtype=np.float64)
        n += len(X)
    if n == 0:
        raise ValueError("no feature rows in the shards")
    mean = total / n
    return mean, np.sqrt(np.maximum(squares / n - mean ** 2, 0)), n


class Standardizer:
    """x -> (x - mean) / sqrt(var + eps), with a constant 1 appended for the bias.

    eps regularises near-constant features (in the features' squared units).
    """

    def __init__(self, mean: np.ndarray, std: np.ndarray, eps: float = 1e-2):
        self.mean = np.asarray(mean, np.float64)
        self.scale = np.sqrt(np.asarray(std, np.float64) ** 2 + eps)

    def augment(self, X: np.ndarray) -> np.ndarray:
        """(n, f) raw -> (n, f + 1) float32 standardised, last column 1."""
        out = np.ones((len(X), X.shape[1] + 1), np.float32)
        np.subtract(X, self.mean.astype(np.float32), out=out[:, :-1])
        out[:, :-1] /= self.scale.astype(np.float32)
        return out

    def fold(self, weights: np.ndarray) -> np.ndarray:
        """Weights (f + 1, c) on standardised features -> the same scores on raw ones."""
        raw = weights[:-1] / self.scale[:, None]
        return np.vstack([raw, weights[-1:] - self.mean @ raw])


def targets(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """One-vs-rest targets: (n, n_classes) float32, +1 for the label, -1 elsewhere."""
    Y = -np.ones((len(labels), n_classes), np.float32)
    Y[np.arange(len(labels)), labels] = 1
    return Y


def validation_masks(groups: Sequence[np.ndarray], fraction: float,
                     random_state: int) -> list[np.ndarray]:
    """Per shard, a boolean mask of the rows held out for validation (seeded).

    groups: per shard, each row's image id (ints >= 0): every row of one image falls
    on the same side, so an image listed twice cannot be both fitted and validated.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"validation fraction must be in (0, 1), got {fraction}")
    groups = [np.asarray(g, np.int64) for g in groups]
    n_groups = max((int(g.max()) + 1 for g in groups if len(g)), default=0)
    held_out = np.random.default_rng(random_state).random(n_groups) < fraction
    return [held_out[g] for g in groups]


def row_groups(labels: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Every row its own group, numbered across shards (rows of distinct images)."""
    offsets = np.cumsum([0] + [len(y) for y in labels])
    return [np.arange(start, stop) for start, stop in zip(offsets[:-1], offsets[1:])]
