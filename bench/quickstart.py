"""The quickstart as a user runs it (``terafeat run quickstart``: Prefect's temporary
server, the stage files, the report) beside the same science called from the library in
a plain script (no Prefect, no files): wall seconds of each, in fresh processes, in the
same run, and the face/non-face accuracies and unit invariance scores of both, which
must be equal; the flow's invariance check (Goodfellow et al.'s score of PCA, RICA simple
and RICA pooled units under translation and rotation) and whether it follows the
predicted order.

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


def main() -> int:
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        flow_seconds, _ = _timed([sys.executable, "-m", "flows.cli", "run", "quickstart",
                                  "--set", "cache_root=", "--output-root", str(scratch)], REPO)
        results = json.loads(next(scratch.glob("quickstart/*/results.json")).read_text())
        library_seconds, printed = _timed([sys.executable, "-c", LIBRARY], REPO)
    flow_accuracy = results["evaluation"]["accuracy"]["RICA pooled"]["mean"]
    library_accuracy, library_invariance = json.loads(printed.strip().splitlines()[-1])
    invariance = results["invariance"]
    values = {
        "flow_seconds": round(flow_seconds, 1), "library_seconds": round(library_seconds, 1),
        "flow_over_library": round(flow_seconds / library_seconds, 2),
        "flow_training_seconds": round(results["training"]["seconds"], 1),
        "flow_rica_pooled_accuracy": flow_accuracy,
        "library_rica_pooled_accuracy": library_accuracy,
        "headline": results["headline"],
        "flow_invariance": invariance["scores"], "library_invariance": library_invariance,
        "invariance_order": invariance["order"],
        "flow_invariance_seconds": round(invariance["seconds"], 2)}
    print(f"terafeat run quickstart: {flow_seconds:.1f} s (training "
          f"{results['training']['seconds']:.1f} s), RICA pooled accuracy {flow_accuracy:.4f}")
    print(f"library script (peer):   {library_seconds:.1f} s, RICA pooled accuracy "
          f"{library_accuracy:.4f}")
    print(f"flow / library: {flow_seconds / library_seconds:.2f}x")
    print(f"invariance score (top {invariance['settings']['top_units']:.0%} of units), "
          f"flow / library, in {invariance['seconds']:.1f} s:")
    for name, scores in invariance["scores"].items():
        print(f"  {name:12s} " + ", ".join(
            f"{t} {score:.2f} / {library_invariance[name][t]:.2f}" for t, score in scores.items()))
    print(f"predicted order (pooled above simple and PCA): {invariance['order']}")
    record("quickstart", values, peer="the same science from the library in a plain script "
           "(no Prefect, no stage files, no report)")
    return 0 if flow_accuracy == library_accuracy and invariance["scores"] == library_invariance \
        else 1


if __name__ == "__main__":
    raise SystemExit(main())
