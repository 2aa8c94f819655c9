"""``terafeat task``: run one stage of a past run alone, with no Prefect server.

The stage reads its inputs from a previous run folder, takes that run's
parameters (``results.json``) with any overrides, and writes to a new folder,
so the original run is never touched.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from flows.registry import FLOWS
from terafeat.storage import load_json, new_run_dir


@dataclass(frozen=True)
class Stage:
    """A stage of one flow: the files it reads from the run folder and how to call it."""

    flow: str
    inputs: tuple[str, ...]
    call: Callable  # (source run folder, flow parameters, output folder) -> task result


def _whiten(run: Path, p, out: Path):
    from tasks.whitening import whiten_patches
    return whiten_patches.fn(str(run / "patches.npy"), str(out), "zca", p.whitening_eps)


def _train(run: Path, p, out: Path):
    from tasks.training import train_rica_layer
    return train_rica_layer.fn(str(run / "whitened.npy"), str(out), p.n_features, p.lam, p.eps,
                               p.max_iter, p.dtype, p.seed, **p.backend_options())


def _evaluate(run: Path, p, out: Path):
    from tasks.evaluation import evaluate_face_features
    return evaluate_face_features.fn(str(run / "whitener.npz"), str(run / "W.npy"),
                                     str(run / "patches.npy"), p.patch_size, p.group_size, p.eps,
                                     p.n_folds, p.seed)


STAGES = {
    "whiten": Stage("quickstart", ("patches.npy",), _whiten),
    "train-rica": Stage("quickstart", ("whitened.npy",), _train),
    "evaluate-faces": Stage("quickstart", ("whitener.npz", "W.npy", "patches.npy"), _evaluate),
}


def run_stage(name: str, run: Path, overrides: dict, output_root: Path) -> tuple[Path, object]:
    """Run stage ``name`` on the run folder ``run``; returns (output folder, task result).

    Errors name the problem: an unknown stage (listing the known ones), a run
    folder without ``results.json`` or without an input file, a run of another
    flow, parameters the flow's model rejects.
    """
    if name not in STAGES:
        raise ValueError(f"unknown stage {name!r}; stages: {', '.join(sorted(STAGES))}")
    stage = STAGES[name]
    run = Path(run)
    results_path = run / "results.json"
    if not results_path.is_file():
        raise ValueError(f"{run}: no results.json here: not a finished run folder")
    results = load_json(results_path)
    if results.get("flow") != stage.flow:
        raise ValueError(f"{run}: a {results.get('flow')} run; stage {name} belongs to {stage.flow}")
    missing = [file for file in stage.inputs if not (run / file).is_file()]
    if missing:
        raise ValueError(f"{run}: stage {name} needs {', '.join(missing)}, which this run lacks")
    model = FLOWS[stage.flow].load()[1]
    params = model.model_validate({**results["parameters"], **overrides})
    out = new_run_dir(output_root / "tasks", name, run.name)
    return out, stage.call(run, params, out)
