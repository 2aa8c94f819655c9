"""Scoring linear classifiers on feature shards: held-out accuracy of candidates side by
side, test metrics per image (top-k, mean class accuracy) and the commonest confusions."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from terafeat.classification.linear_models import scores
from terafeat.classification.shard_streams import Standardizer, iter_shards


def top_k_accuracy(score: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Fraction of rows whose label is among the k highest scores."""
    k = min(k, score.shape[1])
    top = np.argpartition(-score, k - 1, axis=1)[:, :k]
    return float((top == np.asarray(labels)[:, None]).any(axis=1).mean())


def held_out_accuracy(shards, standardizer: Standardizer, weights: np.ndarray,
                      n_classes: int) -> list[float]:
    """Accuracy of each of L candidate classifiers, weights (f+1, c * L) on standardised
    features side by side, over the rows of ``shards`` (an iterable of (X, y)): one pass."""
    weights = np.asarray(weights, np.float32)
    n_candidates = weights.shape[1] // n_classes
    correct, n = np.zeros(n_candidates), 0
    for X, y in shards:
        predicted = (standardizer.augment(X) @ weights).reshape(
            len(X), n_candidates, n_classes).argmax(axis=2)
        correct += (predicted == y[:, None]).sum(axis=0)
        n += len(X)
    if n == 0:
        raise ValueError("no held-out rows to score: too few images for the validation "
                         "fraction (raise val_fraction or add images)")
    return (correct / n).tolist()


def top_confusions(labels: np.ndarray, predicted: np.ndarray, n: int = 20) -> list[dict]:
    """The ``n`` most frequent (true, predicted) pairs with true != predicted, by count."""
    wrong = labels != predicted
    pairs, counts = np.unique(np.stack([labels[wrong], predicted[wrong]]), axis=1,
                              return_counts=True)
    order = np.argsort(-counts, kind="stable")[:n]
    return [{"true": int(pairs[0, i]), "predicted": int(pairs[1, i]), "count": int(counts[i])}
            for i in order]


def evaluate_streamed(paths: Sequence, labels: Sequence[np.ndarray], weights_raw: np.ndarray,
                      top_k: int = 5, groups: Sequence[np.ndarray] | None = None
                      ) -> tuple[np.ndarray, np.ndarray, dict]:
    """Score feature shards with folded weights (f+1, c): (labels (n,), predicted (n,),
    {"top1", "top<k>", "mean_class_accuracy", "n"}) per image.  groups: per shard, each
    row's image id; rows of one image (e.g. it and its mirror image) are scored by their
    summed scores (the mean's ranking; default: every row its own image).  Memory: the (n, c) scores."""
    truth, score = streamed_scores(paths, labels, weights_raw, groups)
    predicted = score.argmax(axis=1)
    return truth, predicted, {"top1": float((truth == predicted).mean()),
                              f"top{top_k}": top_k_accuracy(score, truth, top_k),
                              "mean_class_accuracy": mean_class_accuracy(truth, predicted),
                              "n": int(len(truth))}


def mean_class_accuracy(labels: np.ndarray, predicted: np.ndarray) -> float:
    """Top-1 accuracy of each class present in ``labels`` (n,), averaged over the classes
    (Caltech-101's measure: every class counts the same, however many images it has)."""
    classes, index = np.unique(labels, return_inverse=True)
    correct = np.bincount(index, weights=labels == predicted, minlength=len(classes))
    return float(np.mean(correct / np.bincount(index, minlength=len(classes))))


def streamed_scores(paths: Sequence, labels: Sequence[np.ndarray], weights_raw: np.ndarray,
                    groups: Sequence[np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Scores of feature shards under folded weights (f+1, c): (truth (n,), scores (n, c)),
    one row per image.  groups: per shard, each row's image id; the rows of one image
    (e.g. its mirrored or rotated copies) are summed into one row, images in the order of
    their ids (default: every row its own image, in shard order).  Memory: the (n, c) scores."""
    truth, score = [], []
    for X, y in iter_shards(paths, labels):
        truth.append(y)
        score.append(scores(X, weights_raw))
    truth, score = np.concatenate(truth), np.concatenate(score)
    if groups is None:
        return truth, score
    images, first, index = np.unique(np.concatenate(groups), return_index=True,
                                     return_inverse=True)
    if len(index) != len(truth):
        raise ValueError(f"{len(index)} image ids for {len(truth)} scored rows")
    summed = np.zeros((len(images), score.shape[1]), np.float64)
    np.add.at(summed, index, score)
    return truth[first], summed
