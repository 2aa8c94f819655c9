"""Stage: our transformed-test protocol for video. Classifiers trained on the clips as
filmed score the held-out clips as a moved, zoomed, sped-up or relit camera films them:
the learned features beside a non-learned space-time peer and motion energy."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from prefect import task

from tasks.classification import protocol_inputs
from tasks.features import load_model, model_cache_key, pca_blocks_model
from tasks.logs import cached, report_progress, stage_logger
from tasks.video import clips_fingerprint, load_clips, read_action_clip
from tasks.vocabulary import vocabulary
from terafeat.atomic_files import load_array, save_array
from terafeat.classification.protocols import evaluate_protocol, make_classifier
from terafeat.encoding.pooled_layer import bag_of_words, motion_energy_image
from terafeat.media.camera import camera_change


def difference(first: dict, second: dict) -> dict:
    """``first`` minus ``second`` accuracy, and the standard deviation over folds of their
    per-fold differences (the spread the difference is judged against)."""
    per_fold = np.subtract(first["fold_accuracy"], second["fold_accuracy"])
    return {"difference": first["accuracy"] - second["accuracy"],
            "fold_std": float(np.std(per_fold))}


def _scores(train, test, inputs, model, seed) -> dict:
    result = evaluate_protocol(train, inputs["labels"], inputs["protocol"], model,
                               inputs["groups"], inputs["splits"], inputs["n_folds"], seed,
                               test_features=test)
    folds = result["fold_accuracy"]
    return {"accuracy": result["accuracy"], "fold_accuracy": folds,
            "fold_std": float(np.std(folds))}


#: The feature sets of the transformed test, and which pairs of them it compares.
FEATURE_SETS = ("learned", "PCA blocks", "motion energy")
PAIRS = (("learned", "motion energy"), ("learned", "PCA blocks"),
         ("PCA blocks", "motion energy"))


@task(name="transformed-test")
def transformed_test(*, clips_path: str, run_dir: str, model: dict, vocabulary_path: str,
                     histograms_path: str, motion_energy_path: str, layout: str,
                     classifier: str, C: float, overlap: float, scale: float,
                     max_frames: int | None, motion_energy_size: int, max_descriptors: int,
                     kinds: list[str], strengths: list[float], seed: int,
                     cache_root: str | None = None) -> dict:
    """Accuracy against the strength of each kind of camera change: the learned features
    beside the non-learned "PCA blocks" peer (``pca_blocks_model``: layer 1's PCA of the
    same blocks, its own vocabulary of the same size from at most ``max_descriptors``
    descriptors, the same classifier) and the motion-energy peer.

    Each clip, read as the flow reads it, is changed by
    ``camera_change(kind, strength, default_rng([seed, clip number]))`` (the
    same change for every feature set); under the flow's protocol and folds,
    each classifier (``classifier`` / C for the bags of words, the peer's
    linear SVM with C=1 for the motion-energy images of ``motion_energy_size``)
    trains on the unchanged features of the training clips (the learned ones:
    ``histograms_path``, ``motion_energy_path``) and scores the changed
    held-out clips.  Returns {"kinds", "strengths", "clean": {feature set:
    score, "<a> - <b>": ``difference`` for each of ``PAIRS``}, "conditions":
    [{"kind", "strength", the same}], "seconds"}, each score {"accuracy",
    "fold_accuracy", "fold_std"}; writes ``transformed/<kind>-<strength>.npy``
    (the learned features' histograms).  Through the stage cache with ``cache_root``.
    """
    def compute(out: Path) -> dict:
        started = time.perf_counter()
        clips = load_clips(clips_path)
        learned, centroids = load_model(model), load_array(vocabulary_path)
        pca = pca_blocks_model(model)
        pca_descriptors = [pca.clip_descriptors(read_action_clip(clip, scale, max_frames),
                                                overlap, clip["path"]) for clip in clips]
        pca_centroids = vocabulary(pca_descriptors, len(centroids), max_descriptors, seed)
        describe = {
            "learned": lambda clip, frames: bag_of_words(
                learned.clip_descriptors(frames, overlap, clip["path"]), centroids),
            "PCA blocks": lambda clip, frames: bag_of_words(
                pca.clip_descriptors(frames, overlap, clip["path"]), pca_centroids),
            "motion energy": lambda clip, frames: motion_energy_image(frames,
                                                                      motion_energy_size)}
        clean = {"learned": load_array(histograms_path),
                 "PCA blocks": np.stack([bag_of_words(d, pca_centroids)
                                         for d in pca_descriptors]),
                 "motion energy": load_array(motion_energy_path)}
        del pca_descriptors
        conditions = [(kind, float(strength)) for kind in kinds for strength in strengths]
        changed = {condition: {name: [] for name in FEATURE_SETS} for condition in conditions}
        for i, clip in enumerate(clips):
            report_progress("transformed test (clips)", i, len(clips))
            frames = read_action_clip(clip, scale, max_frames)
            for kind, strength in conditions:
                moved = camera_change(kind, strength, np.random.default_rng([seed, i])).apply(frames)
                for name in FEATURE_SETS:
                    changed[kind, strength][name].append(describe[name](clip, moved))
        report_progress("transformed test (clips)", len(clips), len(clips))
        inputs = protocol_inputs(layout, clips)
        models = {"learned": make_classifier(classifier, C),
                  "PCA blocks": make_classifier(classifier, C),
                  "motion energy": make_classifier("linear", 1.0)}

        def scored(test: dict | None) -> dict:
            row = {name: _scores(clean[name], None if test is None else np.stack(test[name]),
                                 inputs, models[name], seed) for name in FEATURE_SETS}
            return {**row, **{f"{a} - {b}": difference(row[a], row[b]) for a, b in PAIRS}}

        results = {"kinds": list(kinds), "strengths": [float(s) for s in strengths],
                   "clean": scored(None), "conditions": []}
        logger = stage_logger()
        for kind, strength in conditions:
            save_array(out / "transformed" / f"{kind}-{strength:g}.npy",
                       np.stack(changed[kind, strength]["learned"]))
            row = {"kind": kind, "strength": strength, **scored(changed[kind, strength])}
            results["conditions"].append(row)
            logger.info("%s at strength %g: %s", kind, strength, ", ".join(
                f"{name} {row[name]['accuracy']:.3f}" for name in FEATURE_SETS))
        results["seconds"] = time.perf_counter() - started
        return results

    params, inputs = model_cache_key(model)
    params.update(layout=layout, classifier=classifier, C=C, overlap=overlap, scale=scale,
                  max_frames=max_frames, motion_energy_size=motion_energy_size,
                  max_descriptors=max_descriptors,
                  kinds=list(kinds), strengths=[float(s) for s in strengths], seed=seed,
                  data=clips_fingerprint(clips_path) if cache_root else None)
    inputs.update(clips=clips_path, vocabulary=vocabulary_path, histograms=histograms_path,
                  motion_energy=motion_energy_path)
    return cached(cache_root, "transformed-test", params, inputs, run_dir, compute)
