"""The "Why RICA?" comparison (Le et al., NIPS 2011; the talk's table), measured.

On the same ZCA-whitened natural-image patches and the same budget of simple
units, train sparse coding (scikit-learn's MiniBatchDictionaryLearning), a
sparse autoencoder, TICA and ISA under the orthonormality constraint, and
RICA (with ISA pooling in its sparsity term, i.e. reconstruction ISA) at 1x,
2x and 4x overcompleteness, and measure for each: training wall time, its own
final objective, linear-classifier accuracy of its features on lfw_subset
faces (and a CIFAR-10 subset when given), and the invariance score of
Goodfellow et al. (2009) of its output units and of its simple units under
translation and in-plane rotation.
"""
from __future__ import annotations

import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from terafeat.analysis.invariance import invariance_score, patch_trajectories, top_invariance
from terafeat.classification.protocols import cross_validated_accuracy, linear_classifier
from terafeat.datasets.bundled import grey_images, lfw_faces
from terafeat.encoding.pooled_layer import encode_images
from terafeat.learning.autoencoder import SparseAutoencoder
from terafeat.learning.pooling import subspace_pooling
from terafeat.learning.rica import RICA
from terafeat.learning.tica import OrthonormalPooling, topographic_pooling
from terafeat.learning.whitening import Whitener
from terafeat.media.patches import sample_patches

#: The talk's "Why RICA?" slide: speed, ease of training, invariant features.
TALK_TABLE = {
    "sparse coding": {"fast": False, "easy": True, "invariant": False},
    "RBMs / autoencoders": {"fast": True, "easy": False, "invariant": False},
    "TICA": {"fast": False, "easy": True, "invariant": True},
    "RICA": {"fast": True, "easy": True, "invariant": True},
}
#: Which talk row each measured method stands for.
TALK_ROW = {"sparse coding": "sparse coding", "sparse autoencoder": "RBMs / autoencoders",
            "TICA": "TICA", "ISA": "TICA", "RICA": "RICA"}
#: Knobs each method needs besides the number of features (the "easy to train" column
#: is not measured; these are what had to be set).
HYPERPARAMETERS = {"sparse coding": "alpha, batch size, epochs, encoder threshold",
                   "sparse autoencoder": "weight decay, sparsity weight beta, target rho",
                   "TICA": "eps; step size (line search), orthonormal (k <= d)",
                   "ISA": "eps, group size; step size (line search), orthonormal (k <= d)",
                   "RICA": "lam, eps, group size"}
GROUP_SIZE = 4
#: Methods of the comparison: (family, feature count as a multiple of the budget).
PLAN = (("sparse coding", 1), ("sparse coding", 4), ("sparse autoencoder", 1), ("TICA", 1),
        ("ISA", 1), ("RICA", 1), ("RICA", 2), ("RICA", 4))


@dataclass
class FittedMethod:
    """A trained method: ``simple(Xw)`` -> (N, k) simple-unit responses and
    ``output(Xw)`` -> (N, f) its output units (pooled units where it pools),
    both on whitened patches."""

    name: str
    family: str
    n_features: int
    seconds: float
    n_iter: int
    objective: float
    simple: Callable[[np.ndarray], np.ndarray]
    output: Callable[[np.ndarray], np.ndarray]


def _timed(fit):
    started = time.perf_counter()
    model = fit()
    return model, time.perf_counter() - started


def fit_method(family: str, whitened: np.ndarray, n_features: int, max_iter: int = 300,
               random_state: int = 0, alpha: float = 1.0) -> FittedMethod:
    """Train one method of the comparison on whitened patches (m, d).

    family: "sparse coding" (alpha: its L1 weight and the soft threshold of its
    encoder, as in Coates & Ng 2011), "sparse autoencoder", "TICA" (3 x 3
    topographic neighbourhoods on a torus), "ISA" (groups of ``GROUP_SIZE``),
    "RICA" (groups of ``GROUP_SIZE`` in its sparsity term).  max_iter: L-BFGS
    / gradient iterations; sparse coding runs ``max_iter // 30`` epochs of
    mini-batch updates (or stops earlier by scikit-learn's own criterion).
    """
    name = f"{family} ({n_features})"
    if family == "sparse coding":
        from sklearn.decomposition import MiniBatchDictionaryLearning
        model, seconds = _timed(lambda: MiniBatchDictionaryLearning(
            n_components=n_features, alpha=alpha, max_iter=max(1, max_iter // 30),
            batch_size=256, transform_algorithm="threshold", transform_alpha=alpha,
            random_state=random_state).fit(whitened))
        codes = model.transform

        return FittedMethod(name, family, n_features, seconds, int(model.n_steps_),
                            float("nan"), codes, lambda X: np.abs(codes(X)))
    if family == "sparse autoencoder":
        model, seconds = _timed(lambda: SparseAutoencoder(
            n_hidden=n_features, max_iter=max_iter, random_state=random_state).fit(whitened))
        return FittedMethod(name, family, n_features, seconds, model.n_iter_,
                            float(model.objective_[-1]), model.transform, model.transform)
    if family in ("TICA", "ISA"):
        pool = (topographic_pooling(n_features, 3) if family == "TICA"
                else subspace_pooling(n_features, GROUP_SIZE))
        model, seconds = _timed(lambda: OrthonormalPooling(
            n_features=n_features, pool=pool, max_iter=max_iter,
            random_state=random_state).fit(whitened))
        return FittedMethod(name, family, n_features, seconds, model.n_iter_,
                            float(model.objective_[-1]),
                            lambda X: model.transform(X, pooled=False), model.transform)
    if family == "RICA":
        pool = subspace_pooling(n_features, GROUP_SIZE)
        model, seconds = _timed(lambda: RICA(n_features=n_features, max_iter=max_iter,
                                             random_state=random_state, pool=pool).fit(whitened))
        return FittedMethod(name, family, n_features, seconds, model.n_iter_,
                            float(model.objective_[-1]), model.transform,
                            lambda X: model.transform(X, pool=pool))
    raise ValueError(f"unknown method family {family!r}; known: {tuple(TALK_ROW)}")


def cifar_subset(tar_path, n_train: int, n_test: int, random_state=0):
    """A class-balanced subset of our CIFAR-10 JPEG archive, read without extracting.

    tar_path: ``cifar10.tar`` holding ``cifar10/<split>/<class>/<n>.jpg``.
    Returns (train images (n_train, 32, 32) grey float32, train labels,
    test images, test labels); ``n_* // 10`` images per class, chosen by random_state.
    """
    from terafeat.media.images import read_image
    rng = np.random.default_rng(random_state)
    with tarfile.open(tar_path) as archive:
        members = {}
        for member in archive.getmembers():
            parts = member.name.split("/")
            if member.isfile() and len(parts) == 4 and parts[3].endswith(".jpg"):
                members.setdefault((parts[1], parts[2]), []).append(member)
        classes = sorted({name for _, name in members})
        if len(classes) != 10:
            raise ValueError(f"{tar_path}: expected 10 CIFAR-10 class folders, found {classes}")

        def read(split: str, per_class: int):
            images, labels = [], []
            for label, name in enumerate(classes):
                files = sorted(members.get((split, name), []), key=lambda m: m.name)
                if len(files) < per_class:
                    raise ValueError(f"{tar_path}: {split}/{name} has {len(files)} images, "
                                     f"{per_class} needed")
                for index in rng.choice(len(files), per_class, replace=False):
                    images.append(read_image(archive.extractfile(files[index]), mode="grey"))
                    labels.append(label)
            return np.stack(images), np.asarray(labels)

        return (*read("train", n_train // 10), *read("test", n_test // 10))


def feature_encoder(whitener: Whitener, output: Callable) -> Callable[[np.ndarray], np.ndarray]:
    """Raw patches (N, d) -> a method's output units (N, f) float32."""
    return lambda patches: np.asarray(output(whitener.transform(patches)), dtype=np.float32)


def evaluate_method(method: FittedMethod, whitener: Whitener, patch_size: int,
                    trajectories: tuple, faces: tuple, cifar: tuple | None,
                    n_folds: int = 5, random_state: int = 0, firing_rate: float = 0.01) -> dict:
    """Accuracy and invariance of one trained method; returns a table row (dict)."""
    encode = feature_encoder(whitener, method.output)
    face_features = encode_images(faces[0], patch_size, encode)
    row = {"method": method.name, "family": method.family, "simple units": method.n_features,
           "output units": int(encode(trajectories[0][:1]).shape[1]),
           "train seconds": round(method.seconds, 2), "iterations": method.n_iter,
           "final objective": method.objective,
           "faces accuracy": cross_validated_accuracy(face_features, faces[1], n_folds,
                                                      random_state)["mean"]}
    if cifar is not None:
        train_images, train_labels, test_images, test_labels = cifar
        train = encode_images(train_images, patch_size, encode, stride=2)
        test = encode_images(test_images, patch_size, encode, stride=2)
        model = linear_classifier(Cs=(1e-3, 1e-2, 1e-1),
                                  random_state=random_state).fit(train, train_labels)
        row["CIFAR-10 accuracy"] = float(model.score(test, test_labels))
    base, transformed = trajectories
    for units, respond in (("output", method.output), ("simple", method.simple)):
        base_responses = respond(whitener.transform(base))
        for name, patches in transformed.items():
            responses = np.stack([respond(whitener.transform(p)) for p in patches])
            row[f"{units} invariance {name}"] = top_invariance(
                invariance_score(base_responses, responses, firing_rate))
    return row


def measured_checks(rows: list[dict]) -> list[dict]:
    """The talk's columns as measured: "fast" when training took at most twice as long
    as RICA with the same number of simple units; "invariant" when the mean of its
    output units' translation and rotation scores is at least the median over all
    rows; "easy" is not measured (see ``HYPERPARAMETERS``)."""
    rica_time = {row["simple units"]: row["train seconds"] for row in rows
                 if row["family"] == "RICA"}
    invariance = {row["method"]: (row["output invariance translation"]
                                  + row["output invariance rotation"]) / 2 for row in rows}
    median = float(np.median(list(invariance.values())))
    checks = []
    for row in rows:
        reference = rica_time.get(row["simple units"])
        fast = None if reference is None else row["train seconds"] <= 2 * reference
        checks.append({"method": row["method"], "talk row": TALK_ROW[row["family"]],
                       "talk": TALK_TABLE[TALK_ROW[row["family"]]],
                       "fast": fast, "invariant": invariance[row["method"]] >= median,
                       "mean invariance": invariance[row["method"]],
                       "hyperparameters": HYPERPARAMETERS[row["family"]]})
    return checks


def why_rica(patch_size: int = 8, n_patches: int = 20000, n_features: int = 64,
             max_iter: int = 300, n_trajectories: int = 5000, whitening_eps: float = 1e-2,
             cifar_tar: str | None = None, n_cifar_train: int = 2000, n_cifar_test: int = 1000,
             n_folds: int = 5, random_state: int = 0, progress: Callable[[str], None] = print,
             plan: tuple = PLAN) -> dict:
    """The whole comparison in one run; returns {"rows", "checks", "settings"}.

    n_features: the shared budget of simple units (64 = complete for 8 x 8
    patches; TICA and ISA cannot exceed d); RICA also at 2x and 4x, sparse
    coding also at 4x.  Training uses ``n_patches`` seeded patches of the
    bundled images; the invariance score uses ``n_trajectories`` other patches
    (translations of 1..3 pixels along both axes, rotations of 10..40 degrees
    both ways).  plan: (family, overcompleteness factor) pairs to train, in order.
    """
    images = grey_images()
    patches = sample_patches(images, n_patches, patch_size, random_state)
    whitener = Whitener(method="zca", eps=whitening_eps).fit(patches)
    whitened = whitener.transform(patches)
    trajectories = patch_trajectories(images, n_trajectories, patch_size, (1, 2, 3),
                                      (10, 20, 30, 40), random_state + 1)
    faces = lfw_faces()
    cifar = None if cifar_tar is None else cifar_subset(cifar_tar, n_cifar_train, n_cifar_test,
                                                        random_state)
    rows = []
    for family, factor in plan:
        progress(f"training {family} with {factor * n_features} features")
        method = fit_method(family, whitened, factor * n_features, max_iter, random_state)
        rows.append(evaluate_method(method, whitener, patch_size, trajectories, faces, cifar,
                                    n_folds, random_state))
        progress(f"  {rows[-1]}")
    settings = {"patch_size": patch_size, "n_patches": n_patches, "n_features": n_features,
                "max_iter": max_iter, "n_trajectories": n_trajectories,
                "whitening_eps": whitening_eps, "cifar": cifar_tar is not None,
                "n_cifar_train": n_cifar_train if cifar else 0,
                "n_cifar_test": n_cifar_test if cifar else 0, "seed": random_state}
    return {"rows": rows, "checks": measured_checks(rows), "settings": settings}


#: Columns of the measured table, in display order (results.json stores keys sorted).
COLUMNS = ("method", "simple units", "output units", "train seconds", "iterations",
           "final objective", "faces accuracy", "CIFAR-10 accuracy",
           "output invariance translation", "output invariance rotation",
           "simple invariance translation", "simple invariance rotation")


def measured_table(result: dict) -> list[dict]:
    """The measured rows of a ``why_rica`` result, columns in ``COLUMNS`` order."""
    return [{key: row[key] for key in COLUMNS if key in row} for row in result["rows"]]


def check_table(result: dict) -> list[dict]:
    """The talk's and the measured check/cross marks side by side, one row per method."""
    def mark(value):
        return "n/a" if value is None else ("✓" if value else "✗")

    return [{"method": check["method"], "talk: fast": mark(check["talk"]["fast"]),
             "talk: easy": mark(check["talk"]["easy"]),
             "talk: invariant": mark(check["talk"]["invariant"]),
             "measured: fast": mark(check["fast"]), "measured: invariant": mark(check["invariant"]),
             "knobs set": check["hyperparameters"]} for check in result["checks"]]
