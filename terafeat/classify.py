"""Linear classifiers and evaluation protocols."""
from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def linear_classifier(inner_folds: int = 3):
    """Standardise, then L2 logistic regression with C chosen by inner cross-validation."""
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    return GridSearchCV(model, {"logisticregression__C": np.logspace(-4, 2, 7)}, cv=inner_folds)


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
