"""Two-class test metrics of scored tiles: ROC AUC with a bootstrap interval, accuracy,
balanced accuracy, and accuracy per test-time transformation (the invariance figure)."""
from __future__ import annotations

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import balanced_accuracy_score, roc_auc_score, roc_curve

from terafeat.validation import check_random_state

#: Bootstrap resamples of the test tiles behind an AUC interval.
N_BOOTSTRAP = 1000


def auc_interval(truth: np.ndarray, score: np.ndarray, level: float = 0.95,
                 n_bootstrap: int = N_BOOTSTRAP, random_state=0) -> tuple[float, float]:
    """Percentile bootstrap interval (low, high) of the ROC AUC of ``score`` (n,) for
    0/1 ``truth`` (n,): ``n_bootstrap`` resamples of the n tiles with replacement (seeded;
    a resample holding one class only is left out).  Each resample's AUC is its
    Mann-Whitney statistic (mid-ranks for ties, as ``roc_auc_score``), all in one pass."""
    truth, score = np.asarray(truth), np.asarray(score, np.float64)
    if len(np.unique(truth)) != 2:
        raise ValueError("truth: an AUC interval needs test tiles of both classes")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    drawn = check_random_state(random_state).integers(0, len(truth), (n_bootstrap, len(truth)))
    positive = truth[drawn] == truth.max()
    n_positive = positive.sum(axis=1)
    n_negative = len(truth) - n_positive
    both = (n_positive > 0) & (n_negative > 0)
    ranks = rankdata(score[drawn[both]], axis=1)
    u = (ranks * positive[both]).sum(axis=1) - n_positive[both] * (n_positive[both] + 1) / 2
    aucs = u / (n_positive[both] * n_negative[both])
    low, high = np.quantile(aucs, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def tile_metrics(truth: np.ndarray, scores: np.ndarray, random_state=0) -> dict:
    """Test metrics of class scores (n, c) for labels ``truth`` (n,) in 0..c-1, each tile
    predicted as its highest score: {"accuracy", "balanced_accuracy", "confusion_matrix"
    (c, c) rows true, columns predicted, "n"}; with two classes also "roc_auc" of
    scores[:, 1] - scores[:, 0], "roc_auc_ci" [low, high] (95%, bootstrap, seeded) and
    "roc_curve" {"fpr", "tpr"} (at most 200 points)."""
    truth, scores = np.asarray(truth).astype(np.int64), np.asarray(scores, np.float64)
    n_classes = scores.shape[1]
    predicted = scores.argmax(axis=1)
    confusion = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(confusion, (truth, predicted), 1)
    metrics = {"accuracy": float((predicted == truth).mean()),
               "balanced_accuracy": float(balanced_accuracy_score(truth, predicted)),
               "confusion_matrix": confusion.tolist(), "n": int(len(truth))}
    if n_classes == 2:
        margin = scores[:, 1] - scores[:, 0]
        fpr, tpr, _ = roc_curve(truth, margin)
        keep = np.unique(np.linspace(0, len(fpr) - 1, min(len(fpr), 200)).astype(int))
        metrics.update(roc_auc=float(roc_auc_score(truth, margin)),
                       roc_auc_ci=list(auc_interval(truth, margin, random_state=random_state)),
                       roc_curve={"fpr": fpr[keep].tolist(), "tpr": tpr[keep].tolist()})
    return metrics


def accuracy_per_transform(truth: np.ndarray, predicted: np.ndarray, transform: np.ndarray,
                           names) -> dict[str, float]:
    """Accuracy of ``predicted`` (n,) labels over the rows of each transformation:
    ``transform`` (n,) holds each row's index into ``names``; {name: accuracy} of the
    names present, in index order."""
    truth, predicted, transform = map(np.asarray, (truth, predicted, transform))
    return {names[t]: float((predicted[transform == t] == truth[transform == t]).mean())
            for t in np.unique(transform)}
