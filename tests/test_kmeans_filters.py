"""k-means filters (terafeat.learning.kmeans)."""
import numpy as np
import pytest

from terafeat.learning.kmeans import kmeans_filters


def test_centroids_are_unit_rows_pointing_at_the_clusters():
    rng = np.random.default_rng(0)
    centres = np.linalg.qr(rng.standard_normal((6, 6)))[0][:3] * 5
    patches = np.repeat(centres, 400, axis=0) + rng.normal(0, 0.1, (1200, 6))
    filters = kmeans_filters(patches, 3, random_state=1, batch_size=256)
    assert filters.shape == (3, 6) and filters.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(filters, axis=1), 1, rtol=1e-5)
    # each true direction has a filter within a few degrees of it
    assert np.all(np.abs(filters @ (centres / 5).T).max(axis=0) > 0.99)
    np.testing.assert_array_equal(filters,
                                  kmeans_filters(patches, 3, random_state=1, batch_size=256))


def test_more_centroids_than_patches_is_refused():
    with pytest.raises(ValueError, match="cannot fit 5 centroids to 4 patches"):
        kmeans_filters(np.zeros((4, 3)), 5)
