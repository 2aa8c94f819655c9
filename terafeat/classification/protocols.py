"""Linear classifiers and evaluation protocols."""
from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    confusion_matrix,
    roc_auc_score,
    roc_curve,
    top_k_accuracy_score,
)
from sklearn.metrics.pairwise import additive_chi2_kernel, chi2_kernel
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, LinearSVC

from terafeat.datasets.folders import group_folds

DEFAULT_CS = tuple(np.logspace(-4, 2, 7))
#: Linear models of :func:`linear_classifier`.
LINEAR_MODELS = ("logistic", "linear_svm")


def linear_classifier(inner_folds: int = 3, Cs=DEFAULT_CS, random_state=None,
                      model: str = "logistic", balanced: bool = False):
    """Standardise, then a linear model with C chosen by inner cross-validation.

    model: "logistic" (L2 logistic regression) or "linear_svm" (scikit-learn's
    LinearSVC, squared hinge; scores from its decision function).  Cs: the grid
    of inverse regularisation strengths.  random_state: None keeps the inner
    folds in data order, else they are shuffled with this seed.  balanced: classes
    weighted inversely to their size, and C chosen by balanced accuracy (for a rare
    class, which plain accuracy would let the model ignore).
    """
    if model not in LINEAR_MODELS:
        raise ValueError(f"model must be one of {LINEAR_MODELS}, got {model!r}")
    weights = "balanced" if balanced else None
    estimator = (LogisticRegression(max_iter=2000, class_weight=weights) if model == "logistic"
                 else LinearSVC(max_iter=5000, random_state=random_state, class_weight=weights))
    pipeline = make_pipeline(StandardScaler(), estimator)
    folds = (inner_folds if random_state is None
             else StratifiedKFold(inner_folds, shuffle=True, random_state=random_state))
    return GridSearchCV(pipeline, {f"{pipeline.steps[-1][0]}__C": list(Cs)}, cv=folds,
                        scoring="balanced_accuracy" if balanced else None)


def classification_metrics(labels: np.ndarray, predicted: np.ndarray,
                           scores: np.ndarray | None = None,
                           class_scores: np.ndarray | None = None, classes=None) -> dict:
    """Accuracy, balanced accuracy (the mean per-class accuracy), confusion matrix (rows:
    true class); for two classes with ``scores`` (n,) of class 1, ROC AUC and the ROC
    curve (fpr, tpr lists); with ``class_scores`` (n, c) of more than five ``classes``
    (their labels, in column order), "top5": the fraction whose label is among the five
    highest scores.

    labels, predicted: (n,) class labels.
    """
    present = np.union1d(labels, predicted)
    metrics = {"accuracy": float(accuracy_score(labels, predicted)),
               "balanced_accuracy": float(balanced_accuracy_score(labels, predicted)),
               "confusion_matrix": confusion_matrix(labels, predicted, labels=present).tolist(),
               "classes": present.tolist(), "n": int(len(labels))}
    if class_scores is not None and len(classes) > 5:
        metrics["top5"] = float(top_k_accuracy_score(labels, class_scores, k=5, labels=classes))
    if scores is not None and len(np.unique(labels)) == 2:
        fpr, tpr, _ = roc_curve(labels, scores)
        metrics.update(roc_auc=float(roc_auc_score(labels, scores)),
                       roc_curve={"fpr": fpr.tolist(), "tpr": tpr.tolist()})
    return metrics


def cross_validated_accuracy(features: np.ndarray, labels: np.ndarray, n_folds: int = 5,
                             random_state=0) -> dict:
    """Stratified k-fold accuracy of ``linear_classifier`` on features (n, f), labels (n,).

    Regularisation is chosen inside each training fold only.  Returns
    ``{"mean": ..., "std": ..., "folds": [...]}``.
    """
    folds = StratifiedKFold(n_folds, shuffle=True, random_state=random_state)
    scores = cross_val_score(linear_classifier(), features, labels, cv=folds)
    return {"mean": float(scores.mean()), "std": float(scores.std()),
            "folds": [float(s) for s in scores]}


def compare_feature_sets(feature_sets: dict[str, np.ndarray], labels: np.ndarray,
                         n_folds: int = 5, random_state=0) -> dict[str, dict]:
    """``cross_validated_accuracy`` of every named feature matrix (n, f_name), same folds.

    Returns name -> {"mean", "std", "folds", "n_features"}.
    """
    results = {}
    for name, features in feature_sets.items():
        scores = cross_validated_accuracy(features, labels, n_folds, random_state)
        results[name] = {**scores, "n_features": int(features.shape[1])}
    return results


CLASSIFIERS = ("chi2", "linear")


class Chi2SVM(ClassifierMixin, BaseEstimator):
    """SVM with the exponential chi-squared kernel on histograms (Le et al.: C = 100).

    ``K(x, y) = exp(-gamma * sum_i (x_i - y_i)^2 / (x_i + y_i))`` with gamma
    the inverse of the mean chi-squared distance between training histograms
    (Zhang et al. 2007), unless given. Fitted: ``gamma_``, ``X_fit_`` (n, k),
    ``svc_`` (scikit-learn's SVC on the precomputed kernel), ``classes_``.
    """

    def __init__(self, C: float = 100.0, gamma: float | None = None):
        self.C = C
        self.gamma = gamma

    def fit(self, X, y):
        """X: (n, k) non-negative histograms; y: (n,) labels."""
        X = np.asarray(X, dtype=np.float64)
        if (X < 0).any():
            raise ValueError("chi-squared kernel needs non-negative features (histograms)")
        distance = -additive_chi2_kernel(X).mean()
        self.gamma_ = self.gamma if self.gamma is not None else 1.0 / max(distance, 1e-12)
        self.X_fit_ = X
        self.svc_ = SVC(kernel="precomputed", C=self.C).fit(self._kernel(X), y)
        self.classes_ = self.svc_.classes_
        return self

    def _kernel(self, X) -> np.ndarray:
        return chi2_kernel(np.asarray(X, dtype=np.float64), self.X_fit_, gamma=self.gamma_)

    def predict(self, X) -> np.ndarray:
        return self.svc_.predict(self._kernel(X))

    def decision_function(self, X) -> np.ndarray:
        return self.svc_.decision_function(self._kernel(X))


def linear_svm(C: float = 1.0):
    """Standardise, then a linear SVM (the motion-energy peer's classifier)."""
    return make_pipeline(StandardScaler(), SVC(kernel="linear", C=C))


def make_classifier(name: str, C: float = 100.0):
    """``"chi2"``: :class:`Chi2SVM`; ``"linear"``: :func:`linear_svm`, both with ``C``."""
    if name == "chi2":
        return Chi2SVM(C=C)
    if name == "linear":
        return linear_svm(C)
    raise ValueError(f"classifier must be one of {CLASSIFIERS}, got {name!r}")


def split_folds(splits, test: str = "test") -> list[tuple[np.ndarray, np.ndarray]]:
    """One fold of a fixed split: items whose split is ``test`` against all others.

    splits: (n,) split names (KTH: "train" and "validation" train, "test" tests).
    """
    is_test = np.asarray(splits) == test
    if is_test.all() or not is_test.any():
        raise ValueError(f"a fixed split needs items in {test!r} and outside it")
    return [(np.flatnonzero(~is_test), np.flatnonzero(is_test))]


def evaluate_folds(features: np.ndarray, labels, folds, model,
                   test_features: np.ndarray | None = None) -> dict:
    """Accuracy of ``model`` (refitted per fold) over (train_index, test_index) folds.

    features: (n, f); labels: (n,); test_features: (n, f) the tested items are
    scored on instead (the same items, e.g. filmed otherwise; None: ``features``).
    Returns :func:`classification_metrics` of all tested items (accuracy,
    balanced_accuracy, confusion_matrix, classes, n) plus "fold_accuracy": [...],
    "tested": indices in test order and "predicted": their predicted labels.
    """
    labels = np.asarray(labels)
    test_features = features if test_features is None else test_features
    if test_features.shape != features.shape:
        raise ValueError(f"test_features of shape {test_features.shape} do not match the "
                         f"features' {features.shape}")
    tested, predicted, fold_accuracy = [], [], []
    for train, test in folds:
        fitted = clone(model).fit(features[train], labels[train])
        guess = fitted.predict(test_features[test])
        fold_accuracy.append(float(np.mean(guess == labels[test])))
        tested.append(test)
        predicted.append(guess)
    tested, predicted = np.concatenate(tested), np.concatenate(predicted)
    return {**classification_metrics(labels[tested], predicted), "fold_accuracy": fold_accuracy,
            "tested": tested.tolist(), "predicted": predicted.tolist()}


def mean_average_precision(features: np.ndarray, label_matrix: np.ndarray, train, test,
                           model) -> dict:
    """One-vs-rest average precision per class (Hollywood2's protocol) and their mean.

    label_matrix: (n, n_classes) 0/1; one clone of ``model`` per class is fitted on
    the ``train`` items and scores the ``test`` items with its decision function.
    Returns {"mean_ap": ..., "ap": [per class]}.
    """
    label_matrix = np.asarray(label_matrix)
    ap = []
    for j in range(label_matrix.shape[1]):
        fitted = clone(model).fit(features[train], label_matrix[train, j])
        ap.append(float(average_precision_score(label_matrix[test, j],
                                                fitted.decision_function(features[test]))))
    return {"mean_ap": float(np.mean(ap)), "ap": ap}


PROTOCOLS = ("groups", "split", "mean_ap")


def evaluate_protocol(features: np.ndarray, labels, protocol: str, model, groups=None,
                      splits=None, n_folds: int | None = None, random_state=0,
                      test_features: np.ndarray | None = None) -> dict:
    """Score ``model`` on features (n, f) under an evaluation protocol.

    "groups": cross-validation that keeps each group on one side
    (:func:`~terafeat.datasets.folders.group_folds`; ``n_folds=None`` is
    leave-one-group-out: Weizmann/UCF with mirrored copies); "split": the
    fixed split in ``splits`` (KTH's persons); both return
    :func:`evaluate_folds`'s dict. "mean_ap": labels is an (n, n_classes)
    0/1 matrix, train on items whose split is not "test" and return
    :func:`mean_average_precision`'s dict (Hollywood2).  test_features: see
    :func:`evaluate_folds` ("groups" and "split" only).
    """
    if protocol == "groups":
        return evaluate_folds(features, labels, group_folds(groups, n_folds, random_state), model,
                              test_features)
    if protocol == "split":
        return evaluate_folds(features, labels, split_folds(splits), model, test_features)
    if protocol == "mean_ap":
        if test_features is not None:
            raise ValueError("test_features is for the groups and split protocols, not mean_ap")
        [(train, test)] = split_folds(splits)
        return mean_average_precision(features, labels, train, test, model)
    raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
