"""The streamed classifier with many classes: where its time goes, and its time and
test accuracy now beside the classifier as it was before (the peer: the same shards
through ``fit_streamed_classifier`` of commit ``--before-commit``, run from that
commit's own files in a child process).

Run from the repository root::

    python bench/many_classes.py                  # 200 and 1,000 classes, 40,000 x 12,800
    python bench/many_classes.py --features-dir reports/imagenet/<run>/features  # + CIFAR-10
    python bench/many_classes.py --classes 50 --rows 3000 --features 256   # a quick look

Synthetic features stand in for encoded images: class centres in a low-dimensional
space seen through a random ill-conditioned mixing (correlated features, as pooled
image features are) plus noise, non-negative; ``--rows`` training rows in shards of
``--shard-rows``, a test set of a fifth as many, written shard by shard to a temporary
folder and read memory-mapped as in the imagenet flow.  ``--features-dir`` adds a real
feature set: a run's ``<set>-train-*`` / ``<set>-test-*`` shards (``--set``, default
rica) with their labels and image ids (the mirror images scored with their originals).

Each way reports its seconds, its test top-1, what it kept, and its number of passes
of the L-BFGS loss over the shards (a count that does not depend on how busy the
machine is); ours also its seconds per part and the bench process's peak resident
memory so far (a high-water mark: the first of our runs is its own).  The peer runs under ``--before-budget``
seconds; where it runs out, its row says so (its time is then more than the budget).
"""
from __future__ import annotations

import argparse
import json
import subprocess
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
from terafeat.process_memory import peak_rss_bytes  # noqa: E402

#: The classifier's functions timed; "fit_lbfgs" includes its "loss passes" (the streamed
#: loss and gradient) and "solve_triangular" (the preconditioner's solves).
PARTS = ("feature_moments", "gram_statistics", "ridge_solve", "held_out_accuracy",
         "preconditioner", "fit_lbfgs", "loss passes", "solve_triangular")
WRAPPED = {"streamed_loss": "loss passes"}  # returns the function to time
#: The modules whose names are timed (each calls the others' functions by its own names).
MODULES = (streamed, linear_models, scoring, shard_streams)
#: The commit whose classifier is the peer: the last before the many-class work.
BEFORE_COMMIT = "2e59214"

#: Runs the peer's classifier in a child process from its own commit's files:
#: argv: spec JSON path, result JSON path, the folder holding the commit's terafeat/.
BEFORE_CHILD = """
import json, sys, time
# the commit's files, not an editable install of the working tree (a meta path finder)
sys.meta_path = [f for f in sys.meta_path if "editable" not in type(f).__module__]
sys.path.insert(0, sys.argv[3])
import numpy as np
from terafeat.classification import streamed
assert streamed.__file__.startswith(sys.argv[3]), streamed.__file__
spec = json.load(open(sys.argv[1]))
def arrays(paths):
    return [np.load(p) for p in paths]
passes = [0]
original = streamed._squared_hinge
def counted(*args, **kwargs):
    loss = original(*args, **kwargs)
    def wrapped(flat):
        passes[0] += 1
        return loss(flat)
    return wrapped
streamed._squared_hinge = counted
started = time.perf_counter()
weights, summary = streamed.fit_streamed_classifier(
    spec["train"], arrays(spec["train_labels"]), spec["n_classes"],
    groups=arrays(spec["train_groups"]) if spec["train_groups"] else None)
seconds = time.perf_counter() - started
_, _, metrics = streamed.evaluate_streamed(
    spec["test"], arrays(spec["test_labels"]), weights,
    groups=arrays(spec["test_groups"]) if spec["test_groups"] else None)
json.dump({"seconds": seconds, "test_top1": metrics["top1"], "loss_passes": passes[0],
           "kept": f"{summary['classifier']} lam/n {summary['lam/n']:g}"}, open(sys.argv[2], "w"))
"""


def synthetic_shards(folder: Path, rows: int, test_rows: int, f: int, classes: int,
                     shard_rows: int, seed: int) -> tuple[dict, dict]:
    """Training and test shards of synthetic features, written shard by shard: latent
    class centres (64 dims) mixed into f correlated features, noise added, clipped at
    zero like pooled activations.  Returns ({"train", "test"}: paths, same: labels)."""
    rng = np.random.default_rng(seed)
    latent = rng.normal(0, 1, (classes, 64))
    mixing = (rng.normal(0, 1, (64, f)) * np.logspace(0, -2, f)).astype(np.float32)
    paths, labels = {"train": [], "test": []}, {"train": [], "test": []}
    for split, n in (("train", rows), ("test", test_rows)):
        for index, start in enumerate(range(0, n, shard_rows)):
            y = rng.integers(0, classes, min(shard_rows, n - start))
            mixed = (latent[y] + rng.normal(0, 2.5, (len(y), 64))).astype(np.float32) @ mixing
            mixed += rng.normal(0, 0.05, mixed.shape).astype(np.float32)
            paths[split].append(str(save_array(folder / f"{split}-{index:04d}.npy",
                                               np.maximum(mixed + 0.5, 0))))
            labels[split].append(y)
    return paths, labels


def flow_shards(folder: Path, name: str) -> tuple[dict, dict, dict]:
    """A run's ``<name>-{train,test}-*`` shards: (paths, labels, image ids) per split."""
    paths, labels, groups = {}, {}, {}
    for split in ("train", "test"):
        paths[split] = sorted(str(p) for p in folder.glob(f"{name}-{split}-*.npy")
                              if not p.name.endswith(".kept.npy"))
        if not paths[split]:
            raise SystemExit(f"--features-dir: no {name}-{split}-*.npy shards in {folder}")
        labels[split], groups[split] = [], []
        for path in paths[split]:
            with np.load(path.replace(".npy", ".labels.npz")) as stored:
                labels[split].append(stored["labels"])
                groups[split].append(stored["images"])
    return paths, labels, groups


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


def run_ours(name, fit, paths, labels, groups, n_classes) -> dict:
    with PartTimer() as timer:
        started = time.perf_counter()
        weights, summary = fit(paths["train"], labels["train"], n_classes,
                               groups=groups.get("train"))
        seconds = time.perf_counter() - started
    _, _, metrics = scoring.evaluate_streamed(paths["test"], labels["test"], weights,
                                              groups=groups.get("test"))
    row = {"seconds": round(seconds, 1), "test_top1": round(metrics["top1"], 4),
           "kept": f"{summary['classifier']} lam/n {summary['lam/n']:g}",
           "loss_passes": timer.calls["loss passes"],
           "peak_rss_gb_so_far": round(peak_rss_bytes() / 2 ** 30, 2),
           "parts_seconds": {part: round(timer.seconds[part], 1) for part in PARTS}}
    print(f"  {name:>22}: {seconds:7.1f} s, {row['loss_passes']} loss passes, test top-1 "
          f"{metrics['top1']:.4f}, kept {row['kept']}; " + ", ".join(
              f"{part} {value:.1f}" for part, value in row["parts_seconds"].items()), flush=True)
    return row


def run_before(commit: str, budget: float, paths, labels, groups, n_classes) -> dict:
    """The peer: commit's classifier on the same shards in a child process."""
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        archive = subprocess.run(["git", "archive", commit, "terafeat"], cwd=REPO, check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(scratch)], input=archive, check=True)
        spec = {"n_classes": n_classes}
        for split in ("train", "test"):
            spec[split] = paths[split]
            for kind, arrays in (("labels", labels), ("groups", groups)):
                if split in arrays:
                    spec[f"{split}_{kind}"] = [str(save_array(scratch / f"{split}-{kind}-{i}.npy",
                                                              np.asarray(a)))
                                               for i, a in enumerate(arrays[split])]
                else:
                    spec[f"{split}_{kind}"] = None
        (scratch / "spec.json").write_text(json.dumps(spec))
        started = time.perf_counter()
        try:
            subprocess.run([sys.executable, "-c", BEFORE_CHILD, str(scratch / "spec.json"),
                            str(scratch / "result.json"), str(scratch)], check=True,
                           timeout=budget, cwd=scratch)
        except subprocess.TimeoutExpired:
            print(f"  {'before':>22}: still running after the budget of {budget:.0f} s",
                  flush=True)
            return {"seconds": f"> {budget:.0f}", "finished": False}
        row = json.loads((scratch / "result.json").read_text())
    row.update(seconds=round(row["seconds"], 1), test_top1=round(row["test_top1"], 4),
               finished=True, wall_seconds=round(time.perf_counter() - started, 1))
    print(f"  {'before':>22}: {row['seconds']:7.1f} s, {row['loss_passes']} loss passes, test "
          f"top-1 {row['test_top1']:.4f}, kept {row['kept']}", flush=True)
    return row


def compare(paths, labels, groups, n_classes, args) -> dict:
    rows = {f"after ({method})": run_ours(
                f"after ({method})", partial(streamed.fit_streamed_classifier, method=method),
                paths, labels, groups, n_classes)
            for method in args.methods}
    rows["before"] = run_before(args.before_commit, args.before_budget, paths, labels, groups,
                                n_classes)
    if rows["before"]["finished"] and "after (l2svm)" in rows:
        rows["before / after (l2svm)"] = round(rows["before"]["seconds"]
                                               / rows["after (l2svm)"]["seconds"], 2)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--classes", type=int, nargs="*", default=[200, 1000])
    parser.add_argument("--rows", type=int, default=40_000, help="training rows")
    parser.add_argument("--features", type=int, default=12_800)
    parser.add_argument("--shard-rows", type=int, default=2500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--features-dir", type=Path, help="a run's features folder")
    parser.add_argument("--set", default="rica", help="feature set of --features-dir")
    parser.add_argument("--methods", nargs="+", choices=["l2svm", "softmax"],
                        default=["l2svm", "softmax"], help="our classifiers run")
    parser.add_argument("--before-commit", default=BEFORE_COMMIT)
    parser.add_argument("--before-budget", type=float, default=1800,
                        help="seconds the peer may run per feature set")
    args = parser.parse_args(argv)
    values = {"before_commit": args.before_commit, "before_budget_s": args.before_budget}
    if args.classes:  # the synthetic sets' size
        values.update(rows=args.rows, features=args.features, test_rows=args.rows // 5)
    for n_classes in args.classes:
        print(f"{n_classes} classes, {args.rows} x {args.features} training features", flush=True)
        with tempfile.TemporaryDirectory() as folder:
            paths, labels = synthetic_shards(Path(folder), args.rows, args.rows // 5,
                                             args.features, n_classes, args.shard_rows, args.seed)
            values[f"{n_classes} classes"] = compare(paths, labels, {}, n_classes, args)
    if args.features_dir:
        paths, labels, groups = flow_shards(args.features_dir, args.set)
        n_classes = int(max(y.max() for y in labels["train"])) + 1
        n_rows = sum(len(y) for y in labels["train"])
        print(f"{args.features_dir} ({args.set}): {n_classes} classes, {n_rows} training rows",
              flush=True)
        values[f"real features ({args.set}, {n_classes} classes)"] = {
            "rows": n_rows, **compare(paths, labels, groups, n_classes, args)}
    record("many_classes", values, peer=f"fit_streamed_classifier of commit {args.before_commit} "
           "(before the many-class work) on the same shards, in a child process",
           notes="seconds of the classifier's fit (the test set's scoring excluded); "
                 "loss passes: evaluations of the L-BFGS loss over the training shards")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
