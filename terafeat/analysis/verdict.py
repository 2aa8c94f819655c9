"""The face-neuron verdict: does the best unit of a network trained on unlabelled frames with
faces detect faces *because it saw faces*?

Le et al. (ICML 2012) compare their best neuron with random units.  That is not enough: the
best of thousands of units separates faces from distractors by low-level statistics alone,
so the comparison that counts is against the same network trained on the same frames
without the faces (same seed, same budget).  The verdict here asks for the trained
network's best unit to beat that control's best unit, in every seed, by more than the
spread of the best-unit accuracies over seeds; one seed cannot measure that spread, so a
single-seed run gets no verdict, only its table.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

#: Controls beside the trained network, in table order: name -> what it is.
CONTROLS = {"no faces": "the same network trained on the same frames minus the faces",
            "untrained": "the network of the same shape before training",
            "random unit": "a unit picked at random from the trained network (mean over units)",
            "linear ceiling": "a label-trained logistic regression on all the trained "
                              "network's units"}


def _per_seed(name: str, values) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size == 0 or not np.all(np.isfinite(values)):
        raise ValueError(f"{name}: needs one finite accuracy per seed, got {values.tolist()}")
    return values


def face_neuron_verdict(trained: Sequence[float], no_faces: Sequence[float],
                        others: Mapping[str, Sequence[float]] | None = None) -> dict:
    """The verdict table and the verdict over seeds.

    trained, no_faces: (seeds,) held-out balanced accuracy of the best unit of the network
    trained with faces and of the control trained without them, same seeds in the same
    order; others: more controls, name -> (seeds,) accuracies (untrained network's best
    unit, random unit, linear ceiling), shown in the table.  The spread is the larger
    sample standard deviation (ddof 1) over seeds of the two best-unit accuracies (None for
    one seed).
    Returns {"rows": one row per network (mean, std, per seed, and for each control the
    trained network's margin over it), "margins" (seeds,) trained - no_faces, "spread",
    "n_seeds", "face_neuron": True / False, or None for a single seed, "verdict": one
    line saying which and why}.
    """
    trained = _per_seed("trained", trained)
    no_faces = _per_seed("no faces", no_faces)
    if no_faces.shape != trained.shape:
        raise ValueError(f"no faces: {no_faces.size} seeds, trained: {trained.size}; "
                         "give both the same seeds")
    columns = {"trained": trained, "no faces": no_faces}
    for name, values in (others or {}).items():
        values = _per_seed(name, values)
        if values.shape != trained.shape:
            raise ValueError(f"{name}: {values.size} seeds, trained: {trained.size}")
        columns[name] = values
    n_seeds = trained.size
    margins = trained - no_faces
    spread = (float(max(trained.std(ddof=1), no_faces.std(ddof=1))) if n_seeds > 1
              else None)
    rows = [{"network": name, "mean": float(values.mean()),
             "std": float(values.std(ddof=1)) if n_seeds > 1 else None,
             "per seed": values.tolist(),
             "margin": None if name == "trained" else float((trained - values).mean())}
            for name, values in columns.items()]
    if n_seeds < 2:
        face_neuron = None
        verdict = (f"needs seeds: one seed, margin over the no-face control "
                   f"{margins[0]:+.3f}, but its spread over seeds is unknown")
    else:
        face_neuron = bool(np.all(margins > spread))
        verdict = (f"{'face neuron' if face_neuron else 'no face neuron'}: margin over the "
                   f"no-face control {margins.min():+.3f} at worst over {n_seeds} seeds, "
                   f"{'above' if face_neuron else 'not above'} the spread {spread:.3f}")
    return {"rows": rows, "margins": margins.tolist(), "spread": spread, "n_seeds": n_seeds,
            "face_neuron": face_neuron, "verdict": verdict}
