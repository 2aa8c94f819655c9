"""The streamed L2-SVM's L-BFGS with the Cholesky preconditioner (what
``fit_streamed_classifier`` runs) vs plain L-BFGS on the weights (the peer: what it
ran before the preconditioner): objective and held-out accuracy against iterations and seconds.

Run from the repository root::

    python bench/svm_preconditioning.py                    # synthetic, 20,000 x 2,000
    python bench/svm_preconditioning.py --features reports/imagenet/<run>/features

``--features``: a folder of the imagenet flow's feature shards (``<set>-train-*.npy``
with their ``.labels.npz``; ``--set rica`` by default), e.g. a run's ``features/``.
Without it: synthetic features of 10 overlapping classes seen through a mixing with
singular values 1 .. 1e-3 between two random rotations (correlated, as pooled image
features are, in a way standardising the columns does not undo).  Both ways fit
the same 90% of the rows at the same lam, from the same ridge start; the other 10%
score them.  The preconditioner's Cholesky factorisation is timed and counted in its
seconds.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.linalg import solve_triangular
from scipy.optimize import minimize

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from terafeat.atomic_files import save_array  # noqa: E402
from terafeat.classification.linear_models import (  # noqa: E402
    gram_statistics,
    preconditioned,
    preconditioner,
    ridge_solve,
    streamed_loss,
)
from terafeat.classification.scoring import held_out_accuracy  # noqa: E402
from terafeat.classification.shard_streams import (  # noqa: E402
    feature_moments,
    iter_masked_shards,
    iter_shards,
    row_groups,
    Standardizer,
    validation_masks,
)

CHECKPOINTS = (5, 10, 25, 50, 100)


def synthetic_shards(folder: Path, n: int, f: int, classes: int, rows: int = 2500):
    """Shard paths and labels of correlated, overlapping synthetic classes."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, classes, n)
    U, _ = np.linalg.qr(rng.normal(size=(f, f)))
    V, _ = np.linalg.qr(rng.normal(size=(f, f)))
    mixing = (U * np.logspace(0, -3, f)) @ V
    X = (rng.normal(0, 2 / np.sqrt(f), (classes, f))[y] + rng.normal(0, 1, (n, f))) @ mixing
    paths = [save_array(folder / f"synthetic-train-{i:05d}.npy", X[s:s + rows].astype(np.float32))
             for i, s in enumerate(range(0, n, rows))]
    return paths, [y[s:s + rows] for s in range(0, n, rows)]


def flow_shards(folder: Path, name: str):
    """The flow's ``<name>-train-*`` shards and their labels."""
    paths = sorted(p for p in folder.glob(f"{name}-train-*.npy") if ".kept" not in p.name)
    if not paths:
        raise SystemExit(f"no {name}-train-*.npy shards in {folder}")
    labels = []
    for path in paths:
        with np.load(path.with_name(path.name.replace(".npy", ".labels.npz"))) as stored:
            labels.append(stored["labels"])
    return paths, labels


def trace(loss, start, max_iter, checkpoint, extra_seconds=0.0):
    """Plain L-BFGS on ``loss`` from ``start``: rows (iteration, seconds, objective,
    checkpoint(x) or None); the seconds leave out the checkpoints' own time."""
    last, rows, began = {"checking": 0.0}, [], time.perf_counter()

    def recorded(x):
        last["value"], grad = loss(x)
        return last["value"], grad

    def after_iteration(x):
        iteration = len(rows) + 1
        seconds = time.perf_counter() - began - last["checking"] + extra_seconds
        held = None
        if iteration in CHECKPOINTS:
            checking = time.perf_counter()
            held = checkpoint(x)
            last["checking"] += time.perf_counter() - checking
        rows.append((iteration, seconds, last["value"], held))
    minimize(recorded, start, jac=True, method="L-BFGS-B", callback=after_iteration,
             options={"maxiter": max_iter, "maxcor": 20})
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--features", type=Path, help="folder of the flow's feature shards")
    parser.add_argument("--set", default="rica", help="feature set name in --features")
    parser.add_argument("--rows", type=int, default=20_000, help="synthetic rows")
    parser.add_argument("--dims", type=int, default=2_000, help="synthetic features")
    parser.add_argument("--lam", type=float, default=3e-3, help="lam / fitted rows")
    parser.add_argument("--iterations", type=int, default=max(CHECKPOINTS))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        if args.features:
            paths, labels = flow_shards(args.features, args.set)
        else:
            paths, labels = synthetic_shards(Path(folder), args.rows, args.dims, 10)
        n_classes = int(max(y.max() for y in labels)) + 1
        standardizer = Standardizer(*feature_moments(paths)[:2])
        held_out = validation_masks(row_groups(labels), 0.1, 0)
        fitting = [~mask for mask in held_out]
        G, B, n_fit = gram_statistics(iter_shards(paths, labels, fitting), standardizer,
                                      n_classes)
        lam = args.lam * n_fit
        start = ridge_solve(G, B, lam)
        loss = streamed_loss(lambda: iter_masked_shards(paths, labels, fitting),
                              standardizer, n_classes, lam)
        began = time.perf_counter()
        R = preconditioner(G, lam)
        factor_seconds = time.perf_counter() - began
        del G

        def accuracy(W):
            return held_out_accuracy(iter_shards(paths, labels, held_out), standardizer,
                                     W.reshape(-1, n_classes), n_classes)[0]
        traces = {
            "preconditioned (ours)": trace(
                preconditioned(loss, R, n_classes), (R @ start).ravel(), args.iterations,
                lambda v: accuracy(solve_triangular(R, v.reshape(-1, n_classes))),
                factor_seconds),
            "plain L-BFGS (peer)": trace(loss, start.ravel(), args.iterations, accuracy),
        }
    n_rows, dims = sum(len(y) for y in labels), len(standardizer.mean)
    best = min(row[2] for rows in traces.values() for row in rows)
    print(f"{'flow shards ' + str(args.features) if args.features else 'synthetic'}: "
          f"{n_rows} rows x {dims} features, {n_classes} classes, lam/n {args.lam}; "
          f"Cholesky factor {factor_seconds:.1f} s (counted in ours)")
    print(f"{'way':<24}{'iter':>6}{'seconds':>10}{'objective / best - 1':>22}{'held-out acc':>14}")
    for name, rows in traces.items():
        for iteration, seconds, value, held in rows:
            if held is not None or iteration == len(rows):
                print(f"{name:<24}{iteration:>6}{seconds:>10.1f}{value / best - 1:>22.2e}"
                      f"{'' if held is None else f'{held:.4f}':>14}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
