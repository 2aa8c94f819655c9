"""The streamed classifier with many classes: where its time goes, and its time and
held-out accuracy before and after (peer: the path as it ran before the classifier
stage kept the best of every candidate, transcribed here from the module's own parts:
the L2-SVM always kept, its whole path and final fit run).

Run from the repository root::

    python bench/many_classes.py                     # 200 and 1,000 classes
    python bench/many_classes.py --classes 50 --rows 3000 --features 256   # a quick look

Synthetic features stand in for encoded images: class centres in a low-dimensional
space seen through a random ill-conditioned mixing (correlated features, as pooled
image features are) plus noise, non-negative; ``--rows`` training rows in shards of
``--shard-rows``, a test set of a fifth as many, written to a temporary folder and read
memory-mapped as in the imagenet flow.  Both ways run in the same process on the same
shards, one after the other; each reports its seconds per part (counted by wrapping the
module's functions, which adds nothing measurable) and its number of
passes of the L2-SVM's loss over the shards (the part that grows with the classes; a
count that does not depend on how busy the machine is).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from functools import partial
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.results import record  # noqa: E402
from terafeat.atomic_files import save_array  # noqa: E402
from terafeat.classification import linear_models, scoring, shard_streams, streamed  # noqa: E402

#: The classifier's functions timed; "fit_lbfgs" includes its "loss passes" (the streamed
#: squared-hinge loss and gradient) and "solve_triangular" (the preconditioner's solves).
PARTS = ("feature_moments", "gram_statistics", "ridge_solve", "held_out_accuracy",
         "preconditioner", "fit_lbfgs", "loss passes", "solve_triangular")
WRAPPED = {"streamed_loss": "loss passes"}  # returns the function to time
#: The modules whose names are timed (each calls the others' functions by its own names).
MODULES = (streamed, linear_models, scoring, shard_streams)


def synthetic_features(n: int, f: int, classes: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """(features (n, f) float32 >= 0, labels (n,)): latent class centres (64 dims) mixed
    into f correlated features, noise added, clipped at zero like pooled activations."""
    latent = rng.normal(0, 1, (classes, 64))
    mixing = rng.normal(0, 1, (64, f)) * np.logspace(0, -2, f)
    labels = rng.integers(0, classes, n)
    X = (latent[labels] + rng.normal(0, 2.5, (n, 64))) @ mixing + rng.normal(0, 0.05, (n, f))
    return np.maximum(X + 0.5, 0).astype(np.float32), labels


def write_shards(folder: Path, name: str, X, y, rows: int) -> tuple[list, list]:
    paths, labels = [], []
    for index, start in enumerate(range(0, len(X), rows)):
        paths.append(save_array(folder / f"{name}-{index:04d}.npy", X[start:start + rows]))
        labels.append(y[start:start + rows])
    return paths, labels


class PartTimer:
    """Seconds spent inside each of the classifier's ``PARTS`` (outermost calls)."""

    def __init__(self):
        self.seconds, self.depth, self.originals = defaultdict(float), defaultdict(int), {}
        self.calls = defaultdict(int)

    def __enter__(self):
        for module in MODULES:
            for name in [*PARTS, *WRAPPED]:
                if hasattr(module, name):
                    self.originals[module, name] = original = getattr(module, name)
                    setattr(module, name, self._returning_timed(name, original)
                            if name in WRAPPED else self._timed(name, original))
        return self

    def _returning_timed(self, name, function):
        def wrapped(*args, **kwargs):
            return self._timed(WRAPPED[name], function(*args, **kwargs))
        return wrapped

    def _timed(self, name, function):
        def timed(*args, **kwargs):
            self.depth[name] += 1
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.depth[name] -= 1
                if self.depth[name] == 0:
                    self.seconds[name] += time.perf_counter() - started
                    self.calls[name] += 1
        return timed

    def __exit__(self, *exc):
        for (module, name), original in self.originals.items():
            setattr(module, name, original)


def svm_always(paths, labels, n_classes, lam_grid=streamed.LAM_GRID, val_fraction=0.1,
               random_state=0, svm_iter=100, svm_path=4, svm_path_iter=30):
    """The peer: ridge over ``lam_grid`` on the fitting rows, the L2-SVM path from
    ridge's choice down, and the best SVM point refitted on all rows, whatever ridge
    scored (the classifier stage before it kept the best of every candidate)."""
    mean, std, n = shard_streams.feature_moments(paths)
    standardizer = shard_streams.Standardizer(mean, std)
    held_out = shard_streams.validation_masks(shard_streams.row_groups(labels), val_fraction, random_state)
    fitting = [~mask for mask in held_out]
    G, B, n_fit = linear_models.gram_statistics(shard_streams.iter_shards(paths, labels, fitting),
                                           standardizer, n_classes)
    ridges = [linear_models.ridge_solve(G, B, g * n_fit) for g in lam_grid]
    validation = scoring.held_out_accuracy(shard_streams.iter_shards(paths, labels, held_out),
                                            standardizer, np.hstack(ridges), n_classes)
    best = int(np.argmax(validation))
    path, weights = [], ridges[best]
    for g in sorted((g for g in lam_grid if g <= lam_grid[best]), reverse=True)[:svm_path]:
        weights, _ = linear_models.fit_lbfgs(
            lambda: shard_streams.iter_masked_shards(paths, labels, fitting), standardizer,
            n_classes, g * n_fit, weights, svm_path_iter, R=linear_models.preconditioner(G, g * n_fit))
        accuracy = scoring.held_out_accuracy(shard_streams.iter_shards(paths, labels, held_out),
                                              standardizer, weights, n_classes)[0]
        path.append((accuracy, -len(path), g, weights))
    _, _, g, start = max(path)
    G_val, B_val, _ = linear_models.gram_statistics(shard_streams.iter_shards(paths, labels, held_out),
                                               standardizer, n_classes)
    G += G_val
    R = linear_models.preconditioner(G, g * n, overwrite=True)
    del G
    weights, svm = linear_models.fit_lbfgs(lambda: shard_streams.iter_masked_shards(paths, labels),
                                      standardizer, n_classes, g * n, start, svm_iter, R=R)
    return standardizer.fold(weights), {"classifier": "l2svm", "lam/n": g, "svm": svm}


def run(name, fit, train, test, n_classes) -> dict:
    with PartTimer() as timer:
        started = time.perf_counter()
        weights, summary = fit(*train, n_classes)
        seconds = time.perf_counter() - started
    _, _, metrics = scoring.evaluate_streamed(*test, weights)
    row = {"seconds": round(seconds, 2), "test_top1": round(metrics["top1"], 4),
           "test_mean_class_accuracy": round(metrics["mean_class_accuracy"], 4),
           "kept": f"{summary['classifier']} lam/n {summary['lam/n']:g}",
           "loss_passes": timer.calls["loss passes"],
           "parts_seconds": {part: round(timer.seconds[part], 2) for part in PARTS}}
    print(f"  {name:>28}: {seconds:7.1f} s, {row['loss_passes']} loss passes, test top-1 "
          f"{metrics['top1']:.4f}, kept {row['kept']}; " + ", ".join(f"{part} {value:.1f}"
                                        for part, value in row["parts_seconds"].items()),
          flush=True)
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--classes", type=int, nargs="+", default=[200, 1000])
    parser.add_argument("--rows", type=int, default=10_000, help="training rows")
    parser.add_argument("--features", type=int, default=1024)
    parser.add_argument("--shard-rows", type=int, default=2500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    values = {"rows": args.rows, "features": args.features, "test_rows": args.rows // 5}
    ways = {"before (SVM always kept)": svm_always,
            "after (defaults)": streamed.fit_streamed_classifier,
            **{f"after (svm_patience={patience})": partial(streamed.fit_streamed_classifier,
                                                           svm_patience=patience)
               for patience in (5, 10)}}
    for n_classes in args.classes:
        rng = np.random.default_rng(args.seed)
        X, y = synthetic_features(args.rows + args.rows // 5, args.features, n_classes, rng)
        print(f"{n_classes} classes, {args.rows} x {args.features} training features", flush=True)
        with tempfile.TemporaryDirectory() as folder:
            train = write_shards(Path(folder), "train", X[:args.rows], y[:args.rows],
                                 args.shard_rows)
            test = write_shards(Path(folder), "test", X[args.rows:], y[args.rows:],
                                args.shard_rows)
            values[f"{n_classes} classes"] = {name: run(name, fit, train, test, n_classes)
                                              for name, fit in ways.items()}
    record("many_classes", values, peer="the classifier path before it kept the best of "
           "every candidate (svm_always in the bench: the L2-SVM path and final fit always run)",
           notes="synthetic correlated features; seconds of fit_streamed_classifier (the test "
                 "set's scoring excluded) and their parts")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
