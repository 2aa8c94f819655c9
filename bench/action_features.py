"""Stacked convolutional ISA on real videos: speed per frame and accuracy against the paper
and the motion-energy peer.

Run from the repository root::

    python bench/action_features.py                      # ~10 min on 2 shared cores
    python bench/action_features.py --quick              # smoke run: fewer blocks, iterations
    python bench/action_features.py --data-root ../shared/data --json /tmp/actions.json

Data: ``<data-root>/weizmann4.tar`` (72 clips of 64x64, 4 actions, 9 groups;
c02 is c01 mirrored) and ``<data-root>/kth-sample.tar`` (6 KTH clips, AVI and
MP4), extracted to a temporary folder that is removed afterwards.

Part 1, Weizmann: the ``action_recognition`` flow (through Prefect, an
ephemeral server) twice with the same seed, n_layers=2 and n_layers=1, at full
size (64x64 frames are already cropped around the actor, so no halving),
default block sizes (10x16x16, stride 4, 14x20x20), and the reduced training
settings printed with the results. Reported: seconds per frame of descriptor
extraction (decoding excluded; the paper's Table 6: ISA one layer 0.14 s,
two layers 0.44 s per frame, on its own clips and CPU), each flow's wall
time, and leave-one-group-out accuracy of the learned features (chi2 SVM,
C=100) beside the motion-energy peer (16x16 mean |frame difference|,
standardised, linear SVM) on the same clips and folds.

Part 2, KTH sample: ``read_kth`` and ``scan_videos`` on all six clips, each
read at half size (the authors' code) and described with the two-layer model
trained on Weizmann in part 1: codec, frames, frame size, descriptors and
seconds per frame.

The unsupervised stages (PCA, ISA layers, vocabulary) see all 72 clips,
never their labels; only the SVMs are refitted per fold.

Part 3, our transformed-test protocol (not a paper's), from the same two runs: the
classifiers train on the clips as filmed and score each held-out group's clips as a
changed camera films them (translation up to a quarter of the frame, zoom 0.75-1.33,
playback speed 0.67-1.5x, contrast/brightness, and all combined, at the flow's
strengths). Reported per change and strength: accuracy of two-layer ISA, one-layer ISA
and motion energy, the fold-to-fold spread, where learned features and motion energy are
separated (difference beyond the standard deviation of its per-fold values) and the
two-layer minus one-layer difference.  A full run writes bench/results/action_features.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")

from bench.results import record  # noqa: E402
from flows.action_recognition import action_recognition  # noqa: E402
from tasks.transformed_test import difference  # noqa: E402
from tasks.features import load_model  # noqa: E402
from terafeat.datasets.download import extract  # noqa: E402
from terafeat.datasets.kth import read_kth  # noqa: E402
from terafeat.media.video import read_clip, scan_videos  # noqa: E402

PAPER_SECONDS_PER_FRAME = {1: 0.14, 2: 0.44}
FULL = dict(n_blocks=20_000, max_iter=150, vocabulary_size=300)
QUICK = dict(n_blocks=5_000, max_iter=40, vocabulary_size=300)
KTH_SCALE = 0.5


def weizmann_runs(root: Path, settings: dict, output_root: str, seed: int) -> dict:
    """The flow with 2 layers, then 1: n_layers -> (results, wall seconds)."""
    runs = {}
    for n_layers in (2, 1):
        started = time.perf_counter()
        results = action_recognition(layout="ucf", data_root=str(root), n_layers=n_layers,
                                     seed=seed, output_root=output_root, **settings)
        runs[n_layers] = (results, time.perf_counter() - started)
    return runs


def kth_check(root: Path, model: dict) -> dict:
    """Readers, decoding and two-layer descriptors on the KTH sample."""
    frame = read_kth(root, strict=False)
    good, problems = scan_videos(frame["path"])
    stacked = load_model(model)
    rows = []
    for info, row in zip(good, frame.to_dict("records")):
        clip = read_clip(info.path, scale=KTH_SCALE)
        started = time.perf_counter()
        descriptors = stacked.clip_descriptors(clip, name=info.path)
        seconds = time.perf_counter() - started
        rows.append({"file": Path(info.path).name, "label": row["label"], "person": row["person"],
                     "split": row["split"], "codec": info.fourcc,
                     "size": f"{info.width}x{info.height}", "frames": info.n_frames,
                     "read": "x".join(map(str, clip.shape)), "descriptors": len(descriptors),
                     "s_per_frame": seconds / len(clip)})
    return {"clips": rows, "layout_problems": frame.attrs["problems"], "unreadable": problems}


def transformed_rows(runs: dict) -> list[dict]:
    """One row per condition (strength 0: as filmed) of the transformed test of both runs:
    accuracies with their fold spread, and differences with the spread of their per-fold
    values (PCA blocks and motion energy from the two-layer run; the one-layer run's are
    the same clips, folds and changes)."""
    tests = {layers: results["transformed_test"] for layers, (results, _) in runs.items()}
    rows = []
    for index, condition in enumerate([{"kind": "as filmed", "strength": 0.0}]
                                      + tests[2]["conditions"]):
        scores = {layers: (test["clean"] if index == 0 else test["conditions"][index - 1])
                  for layers, test in tests.items()}
        sets = {"ISA_2": scores[2]["learned"], "ISA_1": scores[1]["learned"],
                "PCA_blocks": scores[2]["PCA blocks"], "motion_energy": scores[2]["motion energy"]}
        row = {"change": condition["kind"], "strength": condition["strength"]}
        for name, score in sets.items():
            row.update({name: score["accuracy"], f"{name}_fold_std": score["fold_std"]})
        for first, second in (("ISA_2", "motion_energy"), ("ISA_1", "motion_energy"),
                              ("ISA_2", "PCA_blocks"), ("ISA_1", "PCA_blocks"),
                              ("ISA_2", "ISA_1")):
            row[f"{first}_minus_{second}"] = difference(sets[first], sets[second])
        rows.append(row)
    return rows


def separated(row: dict, key: str) -> bool:
    """A difference larger than the standard deviation of its per-fold values."""
    return abs(row[key]["difference"]) > row[key]["fold_std"]


def print_table(rows: list[dict]):
    keys = list(rows[0])
    print(" | ".join(keys))
    for row in rows:
        print(" | ".join(f"{row[k]:.4g}" if isinstance(row[k], float) else str(row[k]) for k in keys))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-root", default=str(REPO.parent / "shared" / "data"),
                        help="folder holding weizmann4.tar and kth-sample.tar")
    parser.add_argument("--quick", action="store_true", help="smoke run: " + str(QUICK))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="also write the numbers here")
    parser.add_argument("--output-root", help="keep the flows' reports here (default: a "
                                              "temporary folder, removed)")
    args = parser.parse_args(argv)
    data_root = Path(args.data_root)
    settings = QUICK if args.quick else FULL
    with tempfile.TemporaryDirectory(prefix="terafeat-actions-") as tmp:
        tmp = Path(tmp)
        for archive in ("weizmann4.tar", "kth-sample.tar"):
            if not (data_root / archive).is_file():
                parser.error(f"{data_root / archive}: not found (use --data-root)")
            extract(data_root / archive, tmp)
        runs = weizmann_runs(tmp / "weizmann4", settings, args.output_root or str(tmp / "reports"),
                             args.seed)
        kth = kth_check(tmp / "kth-sample", runs[2][0]["model"])
    print(f"\nmachine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS', 'unset')}")
    print(f"settings: {settings}, otherwise the flow's defaults "
          f"({json.dumps({k: v for k, v in runs[2][0]['parameters'].items() if k not in settings})})")
    rows = []
    for layers, (results, wall) in sorted(runs.items(), reverse=True):
        learned = results["classification"]
        rows.append({"features": f"ISA {layers} layer(s)",
                     "s_per_frame": results["features"]["seconds_per_frame"],
                     "paper_s_per_frame": PAPER_SECONDS_PER_FRAME[layers],
                     "flow_wall_s": wall, "vocabulary": results["sizes"]["vocabulary"],
                     "LOGO_accuracy": learned["accuracy"], "wrong": len(learned["wrong"])})
    peer = runs[2][0]["motion_energy_classification"]
    pca = runs[2][0]["transformed_test"]["clean"]["PCA blocks"]
    rows.append({"features": "PCA blocks (peer)", "s_per_frame": float("nan"),
                 "paper_s_per_frame": float("nan"), "flow_wall_s": float("nan"),
                 "vocabulary": runs[2][0]["sizes"]["vocabulary"],
                 "LOGO_accuracy": pca["accuracy"],
                 "wrong": round(runs[2][0]["n_clips"] * (1 - pca["accuracy"]))})
    rows.append({"features": "motion energy (peer)", "s_per_frame": float("nan"),
                 "paper_s_per_frame": float("nan"), "flow_wall_s": float("nan"), "vocabulary": "-",
                 "LOGO_accuracy": peer["accuracy"], "wrong": len(peer["wrong"])})
    print("\nWeizmann4, 72 clips, leave-one-group-out (9 folds), target >= 0.97 with 2 layers:")
    print_table(rows)
    for layers, (results, _) in sorted(runs.items(), reverse=True):
        print(f"{layers} layer(s) misclassified: "
              f"{[Path(p).name for p in results['classification']['wrong']]}; "
              f"stage seconds {results['timings']}")
    print(f"\nKTH sample at scale {KTH_SCALE}, two-layer descriptors (model trained on Weizmann):")
    print_table(kth["clips"])
    print(f"layout problems: {kth['layout_problems']}; unreadable: {kth['unreadable']}")
    transformed = transformed_rows(runs)
    print("\nTransformed test (our protocol): train as filmed, test the held-out group changed")
    print_table([{**{k: v for k, v in row.items() if not isinstance(v, dict)},
                  **{k: f"{v['difference']:+.3f} (sd {v['fold_std']:.3f})"
                     for k, v in row.items() if isinstance(v, dict)}} for row in transformed])
    separating = {key: [f"{row['change']} {row['strength']:g}" for row in transformed
                        if separated(row, key)]
                  for key in transformed[0] if isinstance(transformed[0][key], dict)}
    for key, where in separating.items():
        print(f"{key} separated (beyond the fold spread of its per-fold values): {where}")
    values = {"settings": settings, "seed": args.seed, "weizmann": rows,
              "transformed_test": transformed, "separated": separating, "kth": kth["clips"]}
    if not args.quick:
        record("action_features", values, peer="motion energy (16x16 mean |frame difference|, "
               "linear SVM) on the same clips and folds; the paper's s/frame (Table 6)",
               notes="transformed test: our protocol, not a paper's")
    if args.json:
        Path(args.json).write_text(json.dumps({"settings": settings, "weizmann": rows, "kth": kth,
                                               "runs": {layers: results for layers, (results, _)
                                                        in runs.items()}}, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
