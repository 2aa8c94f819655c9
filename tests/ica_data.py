"""ICA-like patches for the distributed tests, the difference measure they use, a free port."""
from __future__ import annotations

import socket

import numpy as np

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
