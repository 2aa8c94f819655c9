"""Stage: check that learned features are useful (faces vs non-faces)."""
from __future__ import annotations

import time
from pathlib import Path

from prefect import task

from tasks.logs import cached, stage_logger
from tasks.whitening import load_whitener
from terafeat.atomic_files import load_array
from terafeat.classification.protocols import compare_feature_sets
from terafeat.datasets.bundled import lfw_faces
from terafeat.encoding.pooled_layer import encode_images, layer_features
from terafeat.learning.pooling import subspace_pooling
from terafeat.learning.whitening import Whitener


@task(name="evaluate-faces")
def evaluate_face_features(whitener_path: str, W_path: str, patches_path: str, patch_size: int,
                           group_size: int, eps: float, n_folds: int, seed: int,
                           cache_root: str | None = None, run_dir: str | None = None) -> dict:
    """Cross-validated face/non-face accuracy on scikit-image's ``lfw_subset``.

    Feature sets, each a linear classifier's input: raw pixels; PCA (the
    k / group_size leading PCA-whitening filters of the same training
    patches, |response| sum-pooled over quadrants); RICA pooled units (ISA
    groups of ``group_size``, sum-pooled over quadrants: the same size as
    PCA); RICA simple units |Wx| sum-pooled over quadrants.  With
    ``cache_root`` (and the ``run_dir``), through the stage cache.
    """
    logger = stage_logger()

    def compute(out: Path) -> dict:
        started = time.perf_counter()
        whitener = load_whitener(whitener_path)
        W = load_array(W_path)
        faces, labels = lfw_faces()
        n_pooled = W.shape[0] // group_size
        pca = Whitener(method="pca", n_components=min(n_pooled, W.shape[1]), eps=whitener.eps).fit(
            load_array(patches_path))
        feature_sets = {
            "raw pixels": faces.reshape(len(faces), -1),
            "PCA": encode_images(faces, patch_size, layer_features(pca)),
            "RICA pooled": encode_images(faces, patch_size, layer_features(
                whitener, W, pool=subspace_pooling(W.shape[0], group_size), eps=eps)),
            "RICA simple": encode_images(faces, patch_size, layer_features(whitener, W)),
        }
        results = compare_feature_sets(feature_sets, labels, n_folds, seed)
        for name, scores in results.items():
            logger.info("%-12s %5d features: accuracy %.3f +- %.3f", name, scores["n_features"],
                        scores["mean"], scores["std"])
        return {"accuracy": results, "seconds": time.perf_counter() - started,
                "n_images": int(len(faces)), "n_faces": int(labels.sum())}

    if cache_root is None:
        return compute(Path(run_dir or "."))
    params = {"patch_size": patch_size, "group_size": group_size, "eps": eps,
              "n_folds": n_folds, "seed": seed}
    inputs = {"whitener": whitener_path, "W": W_path, "patches": patches_path}
    return cached(cache_root, "evaluate-faces", params, inputs, run_dir, compute)
