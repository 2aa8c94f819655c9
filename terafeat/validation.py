"""Checks at the edge of the core: arrays, dtypes, random states, fitted estimators."""
from __future__ import annotations

from numbers import Integral

import numpy as np
from scipy import sparse
from sklearn.utils._param_validation import Interval

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

#: ``_parameter_constraints`` entry of a ``random_state``: what :func:`check_random_state` takes.
RANDOM_STATE = [Interval(Integral, 0, None, closed="left"), np.random.RandomState,
                np.random.Generator, None]


def check_dtype(dtype) -> np.dtype:
    """float32 or float64 as a numpy dtype; anything else is a ValueError."""
    dtype = np.dtype(dtype)
    if dtype not in FLOAT_DTYPES:
        raise ValueError(f"dtype must be float32 or float64, got {dtype}")
    return dtype


def check_array(X, dtype=np.float32, name: str = "X", n_features: int | None = None) -> np.ndarray:
    """X as a C-contiguous 2-D finite array of ``dtype``.

    Raises ValueError naming ``name`` and the problem (dimensions, non-numeric
    or complex dtype, NaN/inf, wrong number of columns, no rows or columns);
    TypeError for a sparse matrix or objects that are not numbers.
    """
    if sparse.issparse(X):
        raise TypeError(f"{name} is a sparse matrix: sparse input is not supported, pass a dense array")
    X = np.asarray(X)
    if X.dtype.kind == "O":
        X = X.astype(np.float64)
    if X.dtype.kind == "c":
        raise ValueError(f"{name}: Complex data not supported, got dtype {X.dtype}")
    if X.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers, got dtype {X.dtype}")
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {X.shape}. "
                         "Reshape your data: (-1, 1) for one feature, (1, -1) for one sample")
    if X.shape[0] == 0:
        raise ValueError(f"{name} has no rows")
    if X.shape[1] == 0:
        raise ValueError(f"{name} has 0 feature(s) (shape={X.shape}) while a minimum of 1 is required.")
    if n_features is not None and X.shape[1] != n_features:
        raise ValueError(f"{name} has {X.shape[1]} features per row, expected {n_features}")
    X = np.ascontiguousarray(X, dtype=check_dtype(dtype))
    if not np.isfinite(X).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return X


def check_second_moments(X: np.ndarray, dtype, name: str = "X") -> None:
    """ValueError unless X (m, d)'s second moments fit in ``dtype``.

    The quantity checked is the mean squared row norm ``sum(X**2) / m`` (summed in
    float64), the trace of ``X^T X / m``: it bounds every entry and eigenvalue of that
    (d, d) matrix (RICA's covariance, the Whitener's variances).
    """
    with np.errstate(over="ignore"):
        mean_square = np.einsum("ij,ij->", X, X, dtype=np.float64) / X.shape[0]
    check_mean_square(mean_square, dtype, name)


def check_mean_square(mean_square: float, dtype, name: str = "X") -> None:
    """ValueError unless a mean squared row norm (float64, e.g. the trace of a Gram
    matrix over m) fits in ``dtype``; see ``check_second_moments``."""
    dtype = check_dtype(dtype)
    if mean_square <= np.finfo(dtype).max:
        return
    remedy = (" or use dtype=float64" if dtype == np.float32 and np.isfinite(mean_square)
              else "")
    raise ValueError(f"{name}'s mean squared row norm ({mean_square:.3g}) overflows {dtype} "
                     f"(largest {np.finfo(dtype).max:.3g}): rescale the data{remedy}")


def check_random_state(random_state) -> np.random.Generator | np.random.RandomState:
    """The random numbers of a ``random_state``: an int seed (or None, fresh entropy) gives
    ``np.random.default_rng(random_state)``; a Generator or RandomState is used as given."""
    if isinstance(random_state, (np.random.Generator, np.random.RandomState)):
        return random_state
    return np.random.default_rng(random_state)


def check_fitted_input(estimator, X, dtype) -> np.ndarray:
    """X (m, d) for a fitted estimator's transform: ``check_array`` of ``dtype``, with d the
    ``n_features_in_`` that fit saw (ValueError for another d)."""
    X = check_array(X, dtype=dtype, name="X")
    if X.shape[1] != estimator.n_features_in_:
        raise ValueError(f"X has {X.shape[1]} features, but {type(estimator).__name__} is "
                         f"expecting {estimator.n_features_in_} features as input")
    return X
