"""k-means filters (Coates, Lee & Ng, AISTATS 2011): the single-layer learner RICA is
compared with, fitted on the same whitened patches."""
from __future__ import annotations

import numpy as np
from sklearn.cluster import MiniBatchKMeans

from terafeat.learning.rica import normalize_rows


def kmeans_filters(whitened: np.ndarray, n_filters: int, random_state=0,
                   batch_size: int = 4096, max_iter: int = 100) -> np.ndarray:
    """Centroids of mini-batch k-means on whitened patches (m, d), each row scaled to
    unit length: (n_filters, d) float32, a filter bank on RICA's footing (unit rows, so
    one soft threshold suits both).  random_state: as scikit-learn's MiniBatchKMeans takes it."""
    whitened = np.asarray(whitened, np.float32)
    if not 1 <= n_filters <= len(whitened):
        raise ValueError(f"cannot fit {n_filters} centroids to {len(whitened)} patches")
    model = MiniBatchKMeans(n_filters, batch_size=batch_size, max_iter=max_iter, n_init=1,
                            random_state=random_state).fit(whitened)
    return normalize_rows(model.cluster_centers_.astype(np.float64))[0].astype(np.float32)
