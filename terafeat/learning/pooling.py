"""ISA / TICA pooling: fixed pooling matrices and L2 pooling of simple units."""
from __future__ import annotations

import numpy as np


def subspace_pooling(n_features: int, group_size: int, dtype=np.float32) -> np.ndarray:
    """ISA pooling matrix V of shape (n_features // group_size, n_features).

    Row i is 1 on the simple units ``i*group_size ... (i+1)*group_size - 1``.
    """
    if group_size < 1 or n_features % group_size:
        raise ValueError(f"group_size={group_size} must divide n_features={n_features}")
    n_groups = n_features // group_size
    return np.kron(np.eye(n_groups, dtype=dtype), np.ones((1, group_size), dtype=dtype))


def l2_pool(responses: np.ndarray, pool: np.ndarray, eps: float) -> np.ndarray:
    """Pooling units ``sqrt(eps + (responses^2) V^T)``.

    responses: (m, k) simple-unit outputs; pool: V of shape (p, k).  Returns (m, p).
    """
    if pool.ndim != 2 or pool.shape[1] != responses.shape[-1]:
        raise ValueError(f"pooling matrix of shape {pool.shape} does not match "
                         f"{responses.shape[-1]} simple units")
    pooled = np.square(responses) @ pool.T.astype(responses.dtype, copy=False)
    pooled += eps
    return np.sqrt(pooled, out=pooled)
