"""The quickstart as a user runs it (``terafeat run quickstart``: Prefect's temporary
server, the stage files, the report), first run and cached re-run, beside the same
science called from the library in a plain script (no Prefect, no files): wall seconds
of each, in fresh processes, with the training stage's seconds, the face/non-face
accuracies and the unit invariance scores, which must all be equal; the flow's
invariance check (Goodfellow et al.'s score of PCA, RICA simple and RICA pooled units
under translation and rotation) and whether it follows the predicted order.  Measured
twice in one run: on the machine as it is, then beside a CPU hog the bench starts (one
busy process per core).

Run from the repository root::

    python bench/quickstart.py          # writes bench/results/quickstart.json
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import cpu_hog  # noqa: E402
from bench.results import REPO, record  # noqa: E402

#: The quickstart's science, library only, with the flow's defaults.
LIBRARY = """
import json, sys
from flows.quickstart import PLAN
from tasks.evaluation import ANGLES, FIRING_RATE, SHIFTS, TOP_UNITS
from terafeat.analysis.invariance import patch_trajectories, unit_set_invariance
from terafeat.classification.protocols import compare_feature_sets
from terafeat.datasets.bundled import grey_images, lfw_faces
from terafeat.encoding.pooled_layer import encode_images, layer_features
from terafeat.learning.pooling import subspace_pooling
from terafeat.learning.rica import RICA
from terafeat.learning.whitening import Whitener
from terafeat.media.patches import sample_patches
p = PLAN.model()
patches = sample_patches(grey_images(list(p.images)), p.n_patches, p.patch_size,
                         random_state=p.seed)
whitener = Whitener(method="zca", eps=p.whitening_eps).fit(patches)
rica = RICA(n_features=p.n_features, lam=p.lam, eps=p.eps, max_iter=p.max_iter,
            random_state=p.seed).fit(whitener.transform(patches))
faces, labels = lfw_faces()
units = {"PCA": layer_features(Whitener(method="pca", n_components=p.n_features // p.group_size,
                                        eps=p.whitening_eps).fit(patches)),
         "RICA pooled": layer_features(whitener, rica.W_, pool=subspace_pooling(
             p.n_features, p.group_size), eps=p.eps),
         "RICA simple": layer_features(whitener, rica.W_)}
pooled = encode_images(faces, p.patch_size, units["RICA pooled"])
scores = compare_feature_sets({"RICA pooled": pooled}, labels, p.n_folds, p.seed)
invariance = unit_set_invariance(units, patch_trajectories(
    grey_images(list(p.images)), p.n_trajectories, p.patch_size, SHIFTS, ANGLES, p.seed + 1),
    FIRING_RATE, TOP_UNITS)
print(json.dumps([scores["RICA pooled"]["mean"], invariance]))
"""


def _timed(command: list[str], cwd: Path) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(REPO),
                               "PREFECT_SERVER_ANALYTICS_ENABLED": "false"})
    return time.perf_counter() - started, done.stdout


def _flow_run(scratch: Path, name: str) -> tuple[float, dict]:
    """Seconds of one ``terafeat run quickstart`` process with its stage cache in
    ``scratch/cache``, and the run's results."""
    outputs = scratch / name
    seconds, _ = _timed([sys.executable, "-m", "flows.cli", "run", "quickstart",
                         "--set", f"cache_root={scratch / 'cache'}",
                         "--output-root", str(outputs)], REPO)
    return seconds, json.loads(next(outputs.glob("quickstart/*/results.json")).read_text())


def measure(condition: str) -> dict:
    """First run, cached re-run and the library script, in fresh processes, one after another."""
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        first_seconds, results = _flow_run(scratch, "first")
        cached_seconds, _ = _flow_run(scratch, "cached")
        library_seconds, printed = _timed([sys.executable, "-c", LIBRARY], REPO)
    library_accuracy, library_invariance = json.loads(printed.strip().splitlines()[-1])
    invariance = results["invariance"]
    row = {"flow_seconds": round(first_seconds, 1),
           "flow_cached_seconds": round(cached_seconds, 1),
           "flow_training_seconds": round(results["training"]["seconds"], 1),
           "library_seconds": round(library_seconds, 1),
           "flow_over_library": round(first_seconds / library_seconds, 2),
           "flow_rica_pooled_accuracy": results["evaluation"]["accuracy"]["RICA pooled"]["mean"],
           "library_rica_pooled_accuracy": library_accuracy,
           "headline": results["headline"],
           "flow_invariance": invariance["scores"], "library_invariance": library_invariance,
           "invariance_order": invariance["order"],
           "flow_invariance_seconds": round(invariance["seconds"], 2)}
    print(f"{condition}: terafeat run quickstart {first_seconds:.1f} s (training "
          f"{row['flow_training_seconds']:.1f} s), cached re-run {cached_seconds:.1f} s; "
          f"library script (peer) {library_seconds:.1f} s; RICA pooled accuracy "
          f"{row['flow_rica_pooled_accuracy']:.4f} (library {library_accuracy:.4f})", flush=True)
    print(f"  invariance score (top {invariance['settings']['top_units']:.0%} of units), "
          f"flow / library, in {invariance['seconds']:.1f} s:")
    for name, scores in invariance["scores"].items():
        print(f"    {name:12s} " + ", ".join(
            f"{t} {score:.2f} / {library_invariance[name][t]:.2f}" for t, score in scores.items()))
    print(f"  predicted order (pooled above simple and PCA): {invariance['order']}")
    return row


def main() -> int:
    idle = measure("as the machine is")
    with cpu_hog() as hogs:
        loaded = measure(f"beside a CPU hog of {hogs} busy processes")
    values = {**idle, "beside_hog": {key: loaded[key] for key in (
                  "flow_seconds", "flow_cached_seconds", "flow_training_seconds",
                  "library_seconds", "flow_over_library")},
              "hog_processes": hogs,
              "training_beside_hog_over_idle": round(
                  loaded["flow_training_seconds"] / idle["flow_training_seconds"], 2),
              "flow_beside_hog_over_idle": round(loaded["flow_seconds"] / idle["flow_seconds"], 2)}
    print(f"flow / library: {idle['flow_over_library']:.2f}x; beside the hog, training "
          f"{values['training_beside_hog_over_idle']:.2f}x and the whole run "
          f"{values['flow_beside_hog_over_idle']:.2f}x their time without it")
    record("quickstart", values, peer="the same science from the library in a plain script "
           "(no Prefect, no stage files, no report)")
    same = all(row["flow_rica_pooled_accuracy"] == row["library_rica_pooled_accuracy"]
               == idle["flow_rica_pooled_accuracy"]
               and row["flow_invariance"] == row["library_invariance"] == idle["flow_invariance"]
               for row in (idle, loaded))
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
