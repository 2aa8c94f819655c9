"""One L2-SVM loss-and-gradient pass over feature shards on disk: held-out rows masked
(zero slack, what ``fit_streamed_classifier`` runs) vs the same rows copied out of
each shard (the peer: ``iter_shards`` with masks, what it ran before the masks).

Run from the repository root::

    python bench/streamed_svm.py                # 8 shards of 2,500 x 12,800 (1 GB)
    python bench/streamed_svm.py --shards 2 --features 3072   # a quick look

The shards are random non-negative float32 (the size of the imagenet flow's CIFAR-10
RICA shards), written to a temporary folder and read memory-mapped, as in the flow;
10 classes, 10% of the rows held out.  Both ways run in the same process, alternating,
and must give the same loss; the figures are the median of ``--repeats`` passes.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from terafeat.atomic_files import save_array  # noqa: E402
from terafeat.classification.linear_models import streamed_loss  # noqa: E402
from terafeat.classification.shard_streams import (  # noqa: E402
    feature_moments,
    iter_masked_shards,
    iter_shards,
    Standardizer,
    validation_masks,
)

N_CLASSES = 10


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--rows", type=int, default=2500, help="rows per shard")
    parser.add_argument("--features", type=int, default=12800)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        paths, labels = [], []
        for index in range(args.shards):
            paths.append(save_array(Path(folder) / f"shard-{index:05d}.npy",
                                    rng.exponential(1.0, (args.rows, args.features))
                                    .astype(np.float32)))
            labels.append(rng.integers(0, N_CLASSES, args.rows))
        mean, std, n = feature_moments(paths)
        standardizer = Standardizer(mean, std)
        fitting = [~mask for mask in validation_masks(
            [np.arange(i * args.rows, (i + 1) * args.rows) for i in range(args.shards)], 0.1, 0)]
        lam = 1e-4 * n
        ways = {
            "masked (ours)": streamed_loss(lambda: iter_masked_shards(paths, labels, fitting),
                                            standardizer, N_CLASSES, lam),
            "copied out (peer)": streamed_loss(
                lambda: ((X, y, None) for X, y in iter_shards(paths, labels, fitting)),
                standardizer, N_CLASSES, lam),
        }
        weights = rng.normal(0, 0.01, ((args.features + 1) * N_CLASSES,))
        times = {name: [] for name in ways}
        values = {}
        for _ in range(args.repeats + 1):  # the first round warms the page cache
            for name, loss in ways.items():
                started = time.perf_counter()
                values[name] = loss(weights)[0]
                times[name].append(time.perf_counter() - started)
    ours, peer = (float(np.median(t[1:])) for t in times.values())
    gb = args.shards * args.rows * args.features * 4 / 1e9
    print(f"{args.shards} shards x {args.rows} rows x {args.features} features "
          f"({gb:.2f} GB), {N_CLASSES} classes, 10% held out; median of {args.repeats}")
    for name, seconds in zip(ways, (ours, peer)):
        print(f"  {name:<20}{seconds:8.3f} s per pass  ({gb / seconds:5.2f} GB/s of shards)")
    print(f"  speed-up peer / ours: {peer / ours:.2f}x")
    ratio = abs(values["masked (ours)"] / values["copied out (peer)"] - 1)
    print(f"  loss relative difference: {ratio:.1e}")
    return 0 if ratio < 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())
