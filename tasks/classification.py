"""Stage: classify clips from their features under the data set's evaluation protocol."""
from __future__ import annotations

import numpy as np
from prefect import task

from tasks.logs import stage_logger
from tasks.video import load_clips
from terafeat.atomic_files import load_array
from terafeat.classification.protocols import evaluate_protocol, make_classifier
from terafeat.datasets.hollywood2 import label_matrix

#: Folds of the "folders" layout, which has no groups: every clip is its own.
FOLDER_FOLDS = 5


def protocol_of(layout: str, clips: list[dict]) -> str:
    """Hollywood2: mean AP; KTH and UCF with split lists: the fixed split; else group CV."""
    if layout == "hollywood2":
        return "mean_ap"
    if layout == "kth" or any(clip.get("split") in ("train", "test") for clip in clips):
        return "split"
    return "groups"


def protocol_inputs(layout: str, clips: list[dict]) -> dict:
    """What :func:`~terafeat.classification.protocols.evaluate_protocol` needs besides the
    features and the model: {"protocol", "labels", "groups", "splits", "n_folds"}."""
    protocol = protocol_of(layout, clips)
    return {"protocol": protocol,
            "labels": (label_matrix([clip["labels"] for clip in clips]) if protocol == "mean_ap"
                       else np.array([clip["label"] for clip in clips])),
            "groups": np.array([clip.get("group", i) for i, clip in enumerate(clips)]),
            "splits": np.array([clip["split"] for clip in clips]),
            "n_folds": FOLDER_FOLDS if layout == "folders" else None}


@task(name="classify")
def classify_clips(*, features_path: str, clips_path: str, run_dir: str, layout: str,
                   classifier: str, C: float, seed: int, name: str) -> dict:
    """Score ``classifier`` ("chi2" | "linear") on the features (n_clips, f) of the listed clips.

    Protocols (:func:`protocol_of`): "groups" is leave-one-group-out (the
    mirrored c02 of a Weizmann/UCF group stays beside its c01); "folders"
    clips are their own groups in 5 seeded folds. Returns the protocol's
    scores plus "protocol", "classifier" and "wrong" (paths of misclassified clips);
    writes nothing under ``run_dir``.
    """
    clips = load_clips(clips_path)
    features = load_array(features_path)
    inputs = protocol_inputs(layout, clips)
    protocol, labels = inputs["protocol"], inputs["labels"]
    scores = evaluate_protocol(features, labels, protocol, make_classifier(classifier, C),
                               inputs["groups"], inputs["splits"], inputs["n_folds"], seed)
    result = {"protocol": protocol, "classifier": classifier, "C": C, **scores}
    logger = stage_logger()
    if protocol == "mean_ap":
        logger.info("%s: mean AP %.3f (%s SVM)", name, scores["mean_ap"], classifier)
        return result
    result["wrong"] = [clips[i]["path"] for i, guess in zip(scores["tested"], scores["predicted"])
                       if guess != labels[i]]
    logger.info("%s: accuracy %.3f, %d of %d wrong (%s SVM, %s protocol)", name,
                scores["accuracy"], len(result["wrong"]), len(scores["tested"]), classifier,
                protocol)
    return result
