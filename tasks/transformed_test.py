"""Stage: our transformed-test protocol for video. Classifiers trained on the clips as
filmed score the held-out clips as a moved, zoomed, sped-up or relit camera films them."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from prefect import task

from tasks.classification import protocol_inputs
from tasks.features import load_model, model_cache_key
from tasks.logs import cached, report_progress, stage_logger
from tasks.video import clips_fingerprint, load_clips, read_action_clip
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


@task(name="transformed-test")
def transformed_test(*, clips_path: str, run_dir: str, model: dict, vocabulary_path: str,
                     histograms_path: str, motion_energy_path: str, layout: str,
                     classifier: str, C: float, overlap: float, scale: float,
                     max_frames: int | None, motion_energy_size: int, kinds: list[str],
                     strengths: list[float], seed: int, cache_root: str | None = None) -> dict:
    """Accuracy against the strength of each kind of camera change, learned features
    beside the motion-energy peer.

    Each clip, read as the flow reads it, is changed by
    ``camera_change(kind, strength, default_rng([seed, clip number]))`` (the
    same change for every feature set), described with the trained ``model``
    and counted into the flow's vocabulary (and its motion-energy image of
    ``motion_energy_size``); under the flow's protocol and folds, the
    classifiers (``classifier`` / C for the learned features, the peer's
    linear SVM with C=1) train on the unchanged features of the training
    clips (``histograms_path``, ``motion_energy_path``) and score the changed
    held-out clips.  Returns {"kinds", "strengths", "clean": {"learned",
    "motion energy", "learned - motion energy"}, "conditions": [{"kind", "strength", "learned", "motion
    energy", "learned - motion energy": ``difference``}], "seconds"}, each
    score {"accuracy", "fold_accuracy", "fold_std"}; writes ``transformed/<kind>-<strength>.npy`` histograms.
    Through the stage cache with ``cache_root``.
    """
    def compute(out: Path) -> dict:
        started = time.perf_counter()
        stacked, centroids = load_model(model), load_array(vocabulary_path)
        clips = load_clips(clips_path)
        conditions = [(kind, float(strength)) for kind in kinds for strength in strengths]
        learned = {condition: [] for condition in conditions}
        energy = {condition: [] for condition in conditions}
        for i, clip in enumerate(clips):
            report_progress("transformed test (clips)", i, len(clips))
            frames = read_action_clip(clip, scale, max_frames)
            for kind, strength in conditions:
                moved = camera_change(kind, strength, np.random.default_rng([seed, i])).apply(frames)
                learned[kind, strength].append(bag_of_words(
                    stacked.clip_descriptors(moved, overlap, clip["path"]), centroids))
                energy[kind, strength].append(motion_energy_image(moved, motion_energy_size))
        report_progress("transformed test (clips)", len(clips), len(clips))
        inputs = protocol_inputs(layout, clips)
        models = {"learned": make_classifier(classifier, C), "motion energy":
                  make_classifier("linear", 1.0)}
        clean = {"learned": load_array(histograms_path),
                 "motion energy": load_array(motion_energy_path)}
        results = {"kinds": list(kinds), "strengths": [float(s) for s in strengths],
                   "clean": {name: _scores(clean[name], None, inputs, models[name], seed)
                             for name in clean}, "conditions": []}
        results["clean"]["learned - motion energy"] = difference(
            results["clean"]["learned"], results["clean"]["motion energy"])
        logger = stage_logger()
        for kind, strength in conditions:
            changed = {"learned": np.stack(learned[kind, strength]),
                       "motion energy": np.stack(energy[kind, strength])}
            save_array(out / "transformed" / f"{kind}-{strength:g}.npy", changed["learned"])
            row = {"kind": kind, "strength": strength,
                   **{name: _scores(clean[name], changed[name], inputs, models[name], seed)
                      for name in clean}}
            row["learned - motion energy"] = difference(row["learned"], row["motion energy"])
            results["conditions"].append(row)
            logger.info("%s at strength %g: learned %.3f, motion energy %.3f", kind, strength,
                        row["learned"]["accuracy"], row["motion energy"]["accuracy"])
        results["seconds"] = time.perf_counter() - started
        return results

    params, inputs = model_cache_key(model)
    params.update(layout=layout, classifier=classifier, C=C, overlap=overlap, scale=scale,
                  max_frames=max_frames, motion_energy_size=motion_energy_size,
                  kinds=list(kinds), strengths=[float(s) for s in strengths], seed=seed,
                  data=clips_fingerprint(clips_path) if cache_root else None)
    inputs.update(clips=clips_path, vocabulary=vocabulary_path, histograms=histograms_path,
                  motion_energy=motion_energy_path)
    return cached(cache_root, "transformed-test", params, inputs, run_dir, compute)
