"""Per-patch DC removal and PCA / ZCA whitening (fit / transform / inverse).

Products run on one BLAS thread: the same bits on every machine (``terafeat.blas``).
"""
from __future__ import annotations

from numbers import Real
from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from terafeat.blas import one_blas_thread
from terafeat.validation import (
    check_array,
    check_dtype,
    check_fitted_input,
    check_second_moments,
)

METHODS = ("pca", "zca")
#: Eigenvalues below this fraction of the largest count as zero variance.
ZERO_VARIANCE = 1e-12


def remove_dc(X: np.ndarray) -> np.ndarray:
    """Each row (patch) minus its own mean: (m, d) -> new (m, d) array."""
    return X - X.mean(axis=1, keepdims=True)


class Whitener(TransformerMixin, BaseEstimator):
    """PCA or ZCA whitening with optional dimension reduction.

    Parameters (keyword-only)
    ----------
    method : "zca" (output in input space, d dims) or "pca" (output in the
        eigenbasis, ``n_components`` dims).
    n_components : eigenvectors kept, largest variance first (None: all d); a float
        in (0, 1): as many as it takes to keep that fraction of the variance.
    eps : added to every eigenvalue before the inverse square root
        (absolute, in the data's squared units); damps the smallest components.
    remove_dc : subtract each row's own mean first (brightness of a patch).
    dtype : float32 (default) or float64 of the fitted matrices and outputs.

    Attributes
    ----------
    mean_ : (d,) mean of the (DC-removed) training rows.
    components_ : (n_components, d) principal axes, rows of unit norm.
    explained_variance_ : (n_components,) their variances (eigenvalues).
    whitening_ : (d, n_out) matrix applied to centred rows; n_out is
        n_components for PCA and d for ZCA.  ``dewhitening_`` : (n_out, d).
    n_features_in_ : d.
    """

    _parameter_constraints: ClassVar[dict] = {
        "method": [StrOptions(set(METHODS))],
        "eps": [Interval(Real, 0, None, closed="left")],
        "remove_dc": ["boolean"],
    }

    def __init__(self, *, method: str = "zca", n_components: int | None = None,
                 eps: float = 1e-4, remove_dc: bool = True, dtype=np.float32):
        self.method = method
        self.n_components = n_components
        self.eps = eps
        self.remove_dc = remove_dc
        self.dtype = dtype

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = [np.dtype(self.dtype).name]
        return tags

    def fit(self, X, y=None) -> "Whitener":
        """Fit on X (m, d); y is ignored."""
        with one_blas_thread():
            return self._fit(X)

    def _fit(self, X) -> "Whitener":
        self._validate_params()
        dtype = check_dtype(self.dtype)
        X = check_array(X, dtype=np.float64, name="X")
        check_second_moments(X, dtype)
        if self.remove_dc:
            X = remove_dc(X)
        m, d = X.shape
        mean = X.mean(axis=0)
        centred = X - mean
        eigenvalues, eigenvectors = np.linalg.eigh((centred.T @ centred) / m)
        # round-off leaves tiny (or negative) eigenvalues where the data have none
        eigenvalues[eigenvalues < ZERO_VARIANCE * eigenvalues.max()] = 0.0
        n_components = self._count_components(np.sort(eigenvalues)[::-1])
        order = np.argsort(eigenvalues)[::-1][:n_components]
        eigenvalues = eigenvalues[order]
        U = eigenvectors[:, order]
        # a deterministic sign: the largest entry of every axis is positive
        U *= np.sign(U[np.abs(U).argmax(axis=0), np.arange(n_components)])
        scale = eigenvalues + self.eps
        if np.any(scale <= 0):
            raise ValueError("the data have zero variance along some axes: use eps > 0 "
                             "or fewer n_components")
        whitening = U / np.sqrt(scale)
        dewhitening = (U * np.sqrt(scale)).T
        if self.method == "zca":
            whitening = whitening @ U.T
            dewhitening = U @ dewhitening
        self.mean_ = mean.astype(dtype)
        self.components_ = U.T.astype(dtype)
        self.explained_variance_ = eigenvalues.astype(dtype)
        self.whitening_ = whitening.astype(dtype)
        self.dewhitening_ = dewhitening.astype(dtype)
        self.n_features_in_ = d
        return self

    def _count_components(self, variances: np.ndarray) -> int:
        """Components to keep, from ``n_components`` and the sorted variances (d,)."""
        d = len(variances)
        wanted = self.n_components
        if isinstance(wanted, float) and not wanted.is_integer():
            if not 0 < wanted < 1:
                raise ValueError(f"n_components must be a count or a variance fraction in "
                                 f"(0, 1), got {wanted}")
            kept = np.cumsum(variances) / max(variances.sum(), np.finfo(float).tiny)
            return int(min(np.searchsorted(kept, wanted) + 1, d))
        n_components = d if wanted is None else int(wanted)
        if not 1 <= n_components <= d:
            raise ValueError(f"n_components must be in [1, {d}] or a variance fraction in "
                             f"(0, 1), got {wanted}")
        return n_components

    def transform(self, X) -> np.ndarray:
        """Whiten X (m, d) -> (m, n_out) in the fitted dtype."""
        check_is_fitted(self)
        X = check_fitted_input(self, X, np.float64)
        X = (remove_dc(X) if self.remove_dc else X).astype(self.whitening_.dtype)
        X -= self.mean_
        with one_blas_thread():
            return X @ self.whitening_

    def fit_transform(self, X, y=None) -> np.ndarray:
        return self.fit(X).transform(X)

    def inverse_transform(self, Y) -> np.ndarray:
        """Back to input space: (m, n_out) -> (m, d).

        Exact for the DC-removed data when no component was dropped; the
        per-patch DC removed by ``remove_dc`` is not restored.
        """
        check_is_fitted(self)
        Y = check_array(Y, dtype=self.whitening_.dtype, name="Y",
                        n_features=self.whitening_.shape[1])
        with one_blas_thread():
            return Y @ self.dewhitening_ + self.mean_

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Fitted state and parameters as arrays (for ``np.savez``)."""
        check_is_fitted(self)
        return {"method": np.array(self.method), "eps": np.array(self.eps),
                "remove_dc": np.array(self.remove_dc), "mean": self.mean_,
                "components": self.components_, "explained_variance": self.explained_variance_,
                "whitening": self.whitening_, "dewhitening": self.dewhitening_}

    @classmethod
    def from_arrays(cls, arrays) -> "Whitener":
        """Inverse of ``to_arrays`` (accepts an ``np.load`` of a saved .npz)."""
        components = np.asarray(arrays["components"])
        whitener = cls(method=str(arrays["method"]), n_components=components.shape[0],
                       eps=float(arrays["eps"]), remove_dc=bool(arrays["remove_dc"]),
                       dtype=components.dtype)
        whitener.mean_ = np.asarray(arrays["mean"])
        whitener.components_ = components
        whitener.explained_variance_ = np.asarray(arrays["explained_variance"])
        whitener.whitening_ = np.asarray(arrays["whitening"])
        whitener.dewhitening_ = np.asarray(arrays["dewhitening"])
        whitener.n_features_in_ = components.shape[1]
        return whitener


def principal_filters(whitener: Whitener, n_filters: int) -> np.ndarray:
    """The leading ``n_filters`` principal axes of a fitted ``Whitener`` as unit-norm filters
    (n_filters, d_white) in its whitened space (the PCA peer of learned filters): filter i
    applied to a whitened patch gives the patch's coordinate on axis i, whitened."""
    check_is_fitted(whitener)
    n = min(int(n_filters), len(whitener.components_))
    filters = whitener.components_[:n].astype(np.float64) @ whitener.whitening_
    return (filters / np.linalg.norm(filters, axis=1, keepdims=True)).astype(np.float32)
