"""The histology flow on the real PCam subset: learned pooled features beside the peers.

Run from the repository root::

    python bench/histology_pcam.py                          # train 10,000, test 3,000 tiles
    python bench/histology_pcam.py --max-tiles 2000         # a reduced run (per split)
    python bench/histology_pcam.py --data-root /data/pcam   # folders already extracted
    python bench/histology_pcam.py --set colour_mode=hed --set classifier=linear_svm

Data: ``<data root>/pcam-subset/{train,test}/{0,1}/*.jpg``; when absent, the
shared archive (``--archive``, default ``../shared/data/pcam-subset.tar``
beside the repository) is extracted there first (default data root: a
temporary folder, removed afterwards).  Runs the ``histology`` flow (a Prefect
ephemeral server starts if no API is configured), then prints test accuracy,
balanced accuracy and ROC AUC of every feature set, all from the same run,
next to the numbers measured elsewhere with logistic regression (pixels
~0.71, PCA ~0.74, hand-crafted ~0.85 AUC) and the target (learned >= 0.90
and above every peer), plus the wall time of each stage.

Measured 2026-11-27 on the shared 2-core machine (load 3-9, one BLAS thread),
flow defaults (unpooled units |Wx|):
he patches 8x8, no DC removal, ZCA eps 0.03, 512 RICA units in
ISA groups of 4, 150 L-BFGS iterations on 50,000 patches of 2000 training
tiles, stride 2, 1x1 + 2x2 + 3x3 sum pooling, square root, logistic
regression with C in 1e-4..1e-1 by 3-fold CV; test ROC AUC / accuracy, each
row one run (the last row: the earlier defaults, hed patches, stride 4, C in
1e-3..1e-1):

    10,000 / 3,000 tiles    learned pooled  unpooled      PCA           pixels        hand-crafted
    defaults, rerun *       0.814 / 0.738   0.837 / 0.757 0.826 / 0.753 0.745 / 0.696 0.853 / 0.777
    defaults                0.810 / 0.738   0.835 / 0.754 0.826 / 0.753 0.745 / 0.696 0.853 / 0.777
    defaults, stride 4      0.807 / 0.746   0.815 / 0.742 0.816 / 0.750 0.745 / 0.696 0.853 / 0.777
    hed, stride 4           0.785 / 0.712   0.791 / 0.717 0.834 / 0.755 0.745 / 0.696 0.853 / 0.777

* Rerun with this command (only --data-root, at the extracted subset) at commit
a391e58, after RICA's float64 reconstruction fix (issue #6): the same ranking, within
0.004 AUC.  Rotated / flipped test
tiles (accuracy, original / rot90 / rot180 / rot270 / flip): pooled 0.738 / 0.732 /
0.724 / 0.741 / 0.734, unpooled 0.757 / 0.747 / 0.735 / 0.757 / 0.750.  Its wall time,
4932 s, was at nice 5 beside three other jobs (13.5 CPU-minutes in the process itself).

Wall time 1247 s with the defaults (RICA 48 s, features 1007 s, classify 172
s); 901 s at stride 4; the hed run took 1472 s on a busier machine.  The
target (learned >= 0.90, above every peer) is NOT met: learned pooled misses
0.90 by 0.090 AUC; hand-crafted features lead it by 0.043, the unpooled units
of the same filters by 0.025 and PCA of the same patches by 0.016.  Pooling
does not buy invariance here: rotating or flipping the test tiles costs the
pooled and the unpooled units alike 0.00-0.02 accuracy.  The learned filters
look like noise in the whitened space: with ZCA eps 0.03, 51 of the 128
whitened axes keep under a tenth of their variance, and 74% of each filter's
energy lies on them (the sparsity term favours directions where the data
barely vary); dropping those axes (PCA to 95% variance) did not help.

What was tried, at 2000 training / 1000 test tiles (one seed; a second seed
of the he row moved its AUC by 0.02, so most rows are within noise); test AUC
(peers at this scale: hand-crafted 0.809, pixels 0.749, |PCA| of all 192
components 0.816):

    hed, the earlier defaults                                 0.794
    hed, ZCA eps 0.003 / PCA to 99% variance with eps 0.001   0.761 / 0.761
    hed, unpooled split-sign units, 256 units                 0.773
    hed, pooled units soft-thresholded at 0.5                 0.785
    hed, per-patch DC removal                                 0.758
    he (DAB dropped)                                          0.806 (seed 1: 0.786)
    he, ZCA eps 0.1                                           0.777
    he, 400 L-BFGS iterations                                 0.782
    he, 1024 units                                            0.797
    he, PCA to 95% variance (eps 0.03 / 0.01 and 256 units)   0.792 / 0.774
    he, tiles also downsampled by 2 (two scales)              0.807
    he, stride 2 (the default now) / and PCA to 95% variance  0.824 / 0.820
    he, pooled units beside split-sign simple units (16,128)  0.814
    he, per-tile channel standardisation / mean removal       0.790 / 0.763
    he, second stacked ISA layer on 3x3 layer-1 units         0.803

Tried after the ImageNet-family findings (issue #6), 2000 training / 1000
test tiles (the first 500 of each class of a 2000-tile stratified test
subset), one seed each, with the flow's core functions (``sample_patches``,
``Whitener``, ``RICA``, ``encode_images``, ``linear_classifier``) in a
scratch script, flow settings otherwise (he, 50,000 patches, 150 L-BFGS
iterations, lam 10, stride 2, 1x1 + 2x2 + 3x3 sum pooling, square root);
test AUC, "distinct" = ``rica.distinct_filters`` of the fitted W:

    ZCA eps 0.03, 512 units, ISA 4 (the old defaults): distinct 512/512
      learned pooled (ISA units)                              0.832
      same, C grid up to 10 (C = 0.1 still chosen)            0.832
      unpooled |Wx|                                           0.843
      unpooled split, soft threshold alpha 0.5 / 0.25 / 0.1   0.812 / 0.844 / 0.858
    PCA to 99% variance (105 dims), eps 0.01, split 0.25      0.843 (493/512 distinct)
    contrast-normalised patches (Coates-Ng), ZCA eps 0.1,
      512 units ISA 4, split 0.25                             0.834 (438/512 distinct)
      1600 units, no ISA, lam 30, split 0.25                  0.851 (1595/1600; 804 s)
    rgb patches, ZCA eps 0.03, split 0.25                     0.728
    1024 units (ISA 4), split 0.25                            0.840 (1024/1024 distinct)

At lam 10 the histology filters do not collapse (512 of 512 distinct on 128
whitened dims: 4x overcomplete, far less than the CIFAR runs' 1600); PCA onto the
leading axes and the Coates-Ng contrast normalisation did not help (stain
intensity carries the signal, as the DC-removal rows above show).  At this
scale only the non-linearity of the simple units helped: split units with a
small soft threshold (alpha 0.1), +0.015 over |Wx|, inside the 0.02 a
second seed moved a row above.  At full scale (10,000 / 3,000 tiles, the
same scratch script, learned set only, 1207 s: encoding 520 s, classifier
614 s on 14,336 dims) it did not hold up:

    he, ZCA eps 0.03, 512 units ISA 4, split alpha 0.1       0.836 / 0.753 (AUC / accuracy)

level with the |Wx| units of the table above (0.835 / 0.754), so the flow
keeps ``simple_units="abs"`` by default; ``simple_units="split"`` with
``alpha`` is an option.  The full flow run with split units was stopped: its
feature stage took 40 s per 256-tile batch at load 7, over 50 minutes in
all.  The target stays NOT met: the best learned set, 0.836, misses 0.90 by
0.064 and trails the hand-crafted peer (0.853) by 0.017.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import extracted  # noqa: E402
from flows.cli import _parse_assignment  # noqa: E402  (the CLI's key=value parsing)

ELSEWHERE_AUC = {"pixels": 0.71, "PCA": 0.74, "hand-crafted": 0.85}
TARGET_AUC = 0.90


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-root", type=Path, help="folder holding pcam-subset/ "
                        "(default: a temporary folder, the archive extracted into it)")
    parser.add_argument("--archive", type=Path, default=None)
    parser.add_argument("--max-tiles", type=int, default=None,
                        help="tiles per split, a stratified subset (default: all)")
    parser.add_argument("--output-root", default=str(REPO / "reports"))
    parser.add_argument("--set", dest="overrides", action="append", type=_parse_assignment,
                        default=[], metavar="KEY=VALUE", help="a flow parameter (repeatable)")
    parser.add_argument("--json", type=Path, help="also write the summary here")
    args = parser.parse_args(argv)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    from flows.histology import histology

    with tempfile.TemporaryDirectory(prefix="pcam-") as scratch:
        root = extracted("pcam-subset", args.data_root or Path(scratch), args.archive)
        started = time.perf_counter()
        results = histology(**{**dict(args.overrides), "dataset": "pcam_folders",
                               "data_root": str(root), "max_tiles_per_split": args.max_tiles,
                               "output_root": args.output_root})
        wall = time.perf_counter() - started

    metrics = results["classification"]["metrics"]
    counts = results["features"]["n_tiles"]
    print(f"\nPCam subset: {counts['train']} train / {counts['test']} test tiles, "
          f"{results['parameters']['colour_mode']} patches, wall time {wall:.0f} s")
    print(f"{'features':18s} {'dims':>6s} {'accuracy':>9s} {'bal. acc':>9s} {'AUC':>7s} "
          f"{'AUC elsewhere':>14s}")
    for name, m in metrics.items():
        elsewhere = ELSEWHERE_AUC.get(name)
        print(f"{name:18s} {m['n_features']:6d} {m['accuracy']:9.4f} {m['balanced_accuracy']:9.4f} "
              f"{m['roc_auc']:7.4f} {'' if elsewhere is None else f'~{elsewhere:.2f}':>14s}")
    best_peer = max((m["roc_auc"], name) for name, m in metrics.items()
                    if not name.startswith("learned"))
    print()
    for name in ("learned pooled", "learned unpooled"):
        learned = metrics[name]["roc_auc"]
        print(f"{name} AUC {learned:.4f}: target {TARGET_AUC} "
              f"{'met' if learned >= TARGET_AUC else f'missed by {TARGET_AUC - learned:.4f}'}; "
              f"best peer {best_peer[1]} {best_peer[0]:.4f} "
              f"({'beaten' if learned > best_peer[0] else f'ahead by {best_peer[0] - learned:.4f}'})")
    print("invariance (test accuracy):", json.dumps(
        {name: {t: round(v["accuracy"], 4) for t, v in by.items()}
         for name, by in results["classification"]["invariance"].items()}))
    print("stage timings (s):", json.dumps(results["timings"]))
    print(f"report: {results['report']}")
    if args.json:
        summary = {"wall_seconds": wall, "n_tiles": counts, "parameters": results["parameters"],
                   "metrics": {name: {k: m[k] for k in ("accuracy", "balanced_accuracy", "roc_auc",
                                                        "n_features", "C")}
                               for name, m in metrics.items()},
                   "invariance": results["classification"]["invariance"],
                   "timings": results["timings"], "report": results["report"]}
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
