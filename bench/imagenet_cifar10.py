"""CIFAR-10 through the imagenet flow: accuracy beside Coates et al. and raw pixels, wall
time, and peak memory with the training set listed once and twice.

Run from the repository root::

    python bench/imagenet_cifar10.py                       # full: 50,000 / 10,000 images
    python bench/imagenet_cifar10.py --per-class 500 --set n_features=400   # a quick look
    python bench/imagenet_cifar10.py --data-root /data     # cifar10/ already extracted there
    python bench/imagenet_cifar10.py --set kmeans_peer=true --skip-doubled   # with k-means

The shared archive (``../shared/data/cifar10.tar``: class folders per split, JPEG) is
extracted into a temporary folder unless ``--data-root`` holds ``cifar10/``.  Run 1 is
the flow with its defaults (1600 RICA features, L2-SVM); run 2 lists the training set
twice (``train_repeat=2``) with the same stage cache, so patches, whitening and RICA
are reused and feature extraction and the classifier see twice the images: its peak
memory per process, printed beside run 1's, shows whether memory grows with the data.
Each run is a fresh process (and a fresh local Dask cluster), so neither inherits the
other's high-water mark.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import extracted, run_flow  # noqa: E402
from bench.results import record  # noqa: E402
from flows.cli import _parse_assignment  # noqa: E402
from reporting.pages.imagenet import COATES_CIFAR10  # noqa: E402

TARGET = 0.78
BUDGET_MINUTES = 45


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-root", type=Path, help="folder holding cifar10/ (default: a "
                        "temporary folder, the shared archive extracted into it)")
    parser.add_argument("--archive", type=Path, default=None)
    parser.add_argument("--per-class", type=int, default=None,
                        help="training images per class (default: all 5000)")
    parser.add_argument("--output-root", default=str(REPO / "reports"))
    parser.add_argument("--skip-doubled", action="store_true", help="run 1 only")
    parser.add_argument("--set", dest="overrides", action="append", type=_parse_assignment,
                        default=[], metavar="KEY=VALUE", help="a flow parameter (repeatable)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        data_root = args.data_root or Path(scratch)
        root = extracted("cifar10", data_root, args.archive)
        params = {"dataset": "folders", "data_root": str(root), "output_root": args.output_root,
                  "cache_root": str(Path(scratch) / "cache"),
                  "max_train_per_class": args.per_class, **dict(args.overrides)}
        runs = [("training list x1", *run_flow("imagenet", params))]
        if not args.skip_doubled:
            runs.append(("training list x2", *run_flow("imagenet", {**params, "train_repeat": 2})))
    first, seconds = runs[0][1], runs[0][2]
    rica = first["classification"]["rica"]
    print(f"\nCIFAR-10 ({first['listing']['n_train']} training / {first['listing']['n_test']} "
          f"test images), {first['parameters']['n_features']} RICA features, "
          f"{first['parameters']['classifier']}")
    print(f"{'features':<44}{'test top-1':>11}")
    for row in first["headline"]:
        print(f"{row['features'] + ' (this run)':<44}{row['top-1']:>11.4f}")
    for what, accuracy in COATES_CIFAR10:
        print(f"{'Coates et al. 2011: ' + what:<44}{accuracy:>11.4f}")
    verdict = "met" if rica["top1"] >= TARGET else f"missed by {TARGET - rica['top1']:.4f}"
    print(f"target >= {TARGET}: {verdict}")
    print(f"whole flow: {seconds / 60:.1f} min (budget {BUDGET_MINUTES} min on 2 cores); "
          "stages (s): " + ", ".join(f"{k} {v:.0f}" for k, v in first["timings"].items()))
    print(f"\n{'run':<20}{'train images':>13}{'minutes':>9}"
          + "".join(f"{'peak GB ' + k:>20}" for k in first["peak_memory"]))
    for name, results, wall in runs:
        print(f"{name:<20}{results['listing']['n_train']:>13}{wall / 60:>9.1f}"
              + "".join(f"{v / 1e9:>20.2f}" for v in results["peak_memory"].values()))
    if len(runs) == 2:
        ratios = {k: runs[1][1]["peak_memory"][k] / max(v, 1)
                  for k, v in first["peak_memory"].items()}
        print("peak memory x2 / x1: " + ", ".join(f"{k} {r:.2f}" for k, r in ratios.items()))
    full = args.per_class is None and not args.overrides
    record("imagenet_cifar10" if full else "imagenet_cifar10-subset", {
        "top1": {row["features"]: row["top-1"] for row in first["headline"]},
        "coates_2011": dict((what, accuracy) for what, accuracy in COATES_CIFAR10),
        "n_train_rows": first["listing"]["n_train"], "n_test": first["listing"]["n_test"],
        "n_features": first["parameters"]["n_features"],
        "flow_minutes": round(seconds / 60, 1),
        "stage_seconds": {k: round(v, 1) for k, v in first["timings"].items()},
        "peak_memory_gb": {name: {k: round(v / 1e9, 2) for k, v in results["peak_memory"].items()}
                           for name, results, _ in runs},
        "overrides": dict(args.overrides)},
        peer="raw pixels through the same classifier, in the same run; Coates et al. 2011 "
             "as published")
    return 0


if __name__ == "__main__":
    sys.exit(main())
