"""ICA-like patches for the distributed tests and their fixtures (the shards, the undisturbed
single-process fit), the difference measure they use, a free port."""
from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from terafeat.distributed.shards import write_shards
from terafeat.learning.rica import RICA

#: RICA hyper-parameters of the distributed tests (k=32 on d=16).
PARAMS = {"n_features": 32, "lam": 0.5, "eps": 1e-2, "random_state": 0}


def make_patches(m: int, d: int = 16, seed: int = 0) -> np.ndarray:
    """(m, d) unit-variance Laplace sources mixed by a random rotation, row means removed."""
    rng = np.random.default_rng(seed)
    sources = rng.laplace(size=(m, d)) / np.sqrt(2)
    patches = sources @ np.linalg.qr(rng.standard_normal((d, d)))[0].T
    return patches - patches.mean(axis=1, keepdims=True)


def relative_difference(A: np.ndarray, B: np.ndarray) -> float:
    return float(np.linalg.norm(A - B) / np.linalg.norm(B))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(autouse=True)
def one_blas_thread():
    """The reference fits run in the test process, beside busy workers on two cores."""
    with threadpool_limits(1, "blas"):
        yield


@pytest.fixture(scope="module")
def patches() -> np.ndarray:
    return make_patches(4000)


@pytest.fixture(scope="module")
def shards(patches, tmp_path_factory) -> list[Path]:
    """``patches`` as four shard files of 1000 rows."""
    return write_shards(patches, tmp_path_factory.mktemp("shards"), rows_per_shard=1000)


@pytest.fixture(scope="module")
def reference(patches) -> RICA:
    """The undisturbed fit: single-process L-BFGS, float64, 60 iterations."""
    with threadpool_limits(1, "blas"):
        return RICA(**PARAMS, max_iter=60, dtype=np.float64).fit(patches)
