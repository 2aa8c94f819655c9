"""Checks at the edge of the core: arrays, dtypes, seeds."""
from __future__ import annotations

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_dtype(dtype) -> np.dtype:
    """float32 or float64 as a numpy dtype; anything else is a ValueError."""
    dtype = np.dtype(dtype)
    if dtype not in FLOAT_DTYPES:
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    return dtype


def check_array(X, dtype=np.float32, name: str = "X", n_features: int | None = None) -> np.ndarray:
    """X as a C-contiguous 2-D finite array of ``dtype``.

    Raises ValueError naming ``name`` and the problem (dimensions, non-numeric
    dtype, NaN/inf, wrong number of columns, no rows).
    """
    X = np.asarray(X)
    if X.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers, got dtype {X.dtype}")
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {X.shape}")
    if X.shape[0] == 0:
        raise ValueError(f"{name} has no rows")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(f"{name} has {X.shape[1]} features per row, expected {n_features}")
    X = np.ascontiguousarray(X, dtype=check_dtype(dtype))
    if not np.isfinite(X).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return X


def check_random_state(seed) -> np.random.Generator:
    """A numpy Generator from an int seed, a Generator, or None (fresh entropy)."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)
