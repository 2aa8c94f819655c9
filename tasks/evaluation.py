"""Stages: check that learned features are useful (faces vs non-faces), and how invariant
their units are to translation and rotation of natural-image patches."""
from __future__ import annotations

import time
from pathlib import Path

from prefect import task

from tasks.logs import cached, stage_logger
from tasks.whitening import load_whitener
from terafeat.analysis.invariance import patch_trajectories, unit_set_invariance
from terafeat.atomic_files import load_array
from terafeat.classification.protocols import compare_feature_sets
from terafeat.datasets.bundled import grey_images, lfw_faces
from terafeat.encoding.pooled_layer import encode_images, layer_features
from terafeat.learning.pooling import subspace_pooling
from terafeat.learning.whitening import Whitener

#: Translations (pixels, along both axes both ways) and rotations (degrees, both ways) of
#: the invariance check's patch trajectories (those of the "Why RICA?" comparison).
SHIFTS, ANGLES = (1, 2, 3), (10, 20, 30, 40)
#: The invariance score's firing rate and the fraction of top units it averages
#: (Goodfellow et al., NIPS 2009).
FIRING_RATE, TOP_UNITS = 0.01, 0.2


def quickstart_units(whitener: Whitener, W, patches_path: str, group_size: int,
                     eps: float) -> dict:
    """The quickstart's three sets of units, each raw patches (N, d) -> responses (N, units):
    "PCA" (|response| of the k / group_size leading PCA-whitening filters of the training
    patches), "RICA pooled" (ISA groups of ``group_size`` consecutive units) and "RICA
    simple" (|Wx|)."""
    n_pooled = W.shape[0] // group_size
    pca = Whitener(method="pca", n_components=min(n_pooled, W.shape[1]), eps=whitener.eps).fit(
        load_array(patches_path))
    return {"PCA": layer_features(pca),
            "RICA pooled": layer_features(whitener, W, pool=subspace_pooling(W.shape[0],
                                                                             group_size), eps=eps),
            "RICA simple": layer_features(whitener, W)}


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
        units = quickstart_units(whitener, W, patches_path, group_size, eps)
        feature_sets = {"raw pixels": faces.reshape(len(faces), -1),
                        **{name: encode_images(faces, patch_size, respond)
                           for name, respond in units.items()}}
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


def predicted_order(scores: dict[str, dict[str, float]]) -> dict[str, dict[str, bool]]:
    """Per transformation, whether the scores follow the order Goodfellow et al. predict
    (pooled units above the single-layer ones): {"pooled > simple", "pooled > PCA"}."""
    return {name: {"pooled > simple": scores["RICA pooled"][name] > scores["RICA simple"][name],
                   "pooled > PCA": scores["RICA pooled"][name] > scores["PCA"][name]}
            for name in scores["RICA pooled"]}


@task(name="score-invariance")
def score_unit_invariance(whitener_path: str, W_path: str, patches_path: str, images: list[str],
                          patch_size: int, group_size: int, eps: float, n_trajectories: int,
                          seed: int, cache_root: str | None = None,
                          run_dir: str | None = None) -> dict:
    """Invariance score (Goodfellow et al., NIPS 2009) of the PCA, RICA simple and RICA
    pooled units of ``quickstart_units`` under translation and rotation.

    ``n_trajectories`` patches of the bundled ``images`` at seeded positions
    (seed + 1: not the training draw), each translated by ``SHIFTS`` pixels
    and rotated by ``ANGLES`` degrees; each unit fires on its top
    ``FIRING_RATE`` of the untransformed patches; a set's score is the mean
    over its top ``TOP_UNITS`` of units.  Returns {"scores": set ->
    {transformation: score}, "order": ``predicted_order``, "settings",
    "seconds"}.  With ``cache_root``, through the stage cache.
    """
    logger = stage_logger()

    def compute(out: Path) -> dict:
        started = time.perf_counter()
        units = quickstart_units(load_whitener(whitener_path), load_array(W_path), patches_path,
                                 group_size, eps)
        trajectories = patch_trajectories(grey_images(list(images)), n_trajectories, patch_size,
                                          SHIFTS, ANGLES, seed + 1)
        scores = unit_set_invariance(units, trajectories, FIRING_RATE, TOP_UNITS)
        for name, by_transformation in scores.items():
            logger.info("%-12s invariance: %s", name, ", ".join(
                f"{t} {score:.2f}" for t, score in by_transformation.items()))
        return {"scores": scores, "order": predicted_order(scores),
                "settings": {"shifts": list(SHIFTS), "angles": list(ANGLES),
                             "firing_rate": FIRING_RATE, "top_units": TOP_UNITS,
                             "n_trajectories": n_trajectories},
                "seconds": time.perf_counter() - started}

    if cache_root is None:
        return compute(Path(run_dir or "."))
    params = {"images": list(images), "patch_size": patch_size, "group_size": group_size,
              "eps": eps, "n_trajectories": n_trajectories, "seed": seed}
    inputs = {"whitener": whitener_path, "W": W_path, "patches": patches_path}
    return cached(cache_root, "score-invariance", params, inputs, run_dir, compute)
