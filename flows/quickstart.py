"""Flow ``quickstart``: RICA on natural-image patches that ship with scikit-image /
scikit-learn, then a check that the features are useful (faces vs non-faces) and one of
how invariant their units are (Goodfellow et al.'s score under translation and rotation)."""
from __future__ import annotations

from typing import Annotated

from prefect import flow
from pydantic import Field

from flows.parameters import (Backend, CacheRoot, DaskAddress, Dtype, Lam, OutputRoot, Seed,
                              Solver, documented, parameter_model)
from flows.stages import FlowPlan, Stage, run_flow
from tasks.evaluation import evaluate_face_features, score_unit_invariance
from tasks.patches import sample_bundled_patches
from tasks.report import write_quickstart_report
from tasks.training import train_rica_layer
from tasks.whitening import whiten_patches
from terafeat.datasets.bundled import NATURAL_IMAGES


@flow(name="quickstart", log_prints=True)
@documented
def quickstart(
    *,
    images: Annotated[tuple[str, ...], Field(min_length=1, description="bundled images to "
                                             "sample patches from")] = NATURAL_IMAGES,
    patch_size: Annotated[int, Field(ge=4, le=16, description="side of the square grey "
                                     "patches, pixels")] = 8,
    n_patches: Annotated[int, Field(ge=500, le=2_000_000, description="training "
                                    "patches")] = 50_000,
    whitening_eps: Annotated[float, Field(ge=0, allow_inf_nan=False, description="ZCA "
                                          "regulariser added to each eigenvalue")] = 1e-4,
    n_features: Annotated[int, Field(ge=2, le=16_384, description="RICA features (k; 4x "
                                     "overcomplete for 8x8 patches at 256)")] = 256,
    lam: Lam = 10.0,
    eps: Annotated[float, Field(gt=0, allow_inf_nan=False, description="smoothing of the L1 "
                                "penalty sqrt(eps + u^2)")] = 1e-2,
    max_iter: Annotated[int, Field(ge=1, description="L-BFGS iterations")] = 400,
    group_size: Annotated[int, Field(ge=1, description="ISA group size of the pooled "
                                     "features")] = 4,
    n_folds: Annotated[int, Field(ge=2, le=20, description="cross-validation folds of the "
                                  "face check")] = 5,
    n_trajectories: Annotated[int, Field(ge=100, le=100_000, description="patches whose "
                                         "translated and rotated copies the invariance check "
                                         "scores units on")] = 5000,
    seed: Seed = 0,
    dtype: Dtype = "float32",
    output_root: OutputRoot = "reports",
    cache_root: CacheRoot = "data/cache",
    backend: Backend = "local",
    dask_address: DaskAddress = None,
    solver: Solver = "lbfgs",
) -> dict:
    """Patches -> ZCA -> RICA -> face/non-face check -> invariance check -> report. Returns
    results.json's content."""
    return run_flow(PLAN, locals())


def _groups_divide_features(params) -> None:
    if params.n_features % params.group_size:
        raise ValueError(f"group_size {params.group_size} must divide n_features "
                         f"{params.n_features}")


def _headline(results: dict) -> list[dict]:
    return [{"features": name, "dimensions": scores["n_features"],
             "accuracy": round(scores["mean"], 4), "std": round(scores["std"], 4)}
            for name, scores in results["evaluation"]["accuracy"].items()]


PLAN = FlowPlan(
    name="quickstart",
    model=parameter_model(quickstart, checks=(_groups_divide_features,)),
    stages=(
        Stage(sample_bundled_patches, "patches", lambda p, o: dict(
            image_names=list(p.images), n_patches=p.n_patches, patch_size=p.patch_size,
            seed=p.seed)),
        Stage(whiten_patches, "whitening", lambda p, o: dict(
            patches_path=o["patches"], method="zca", eps=p.whitening_eps)),
        Stage(train_rica_layer, "training", lambda p, o: dict(
            whitened_path=o["whitening"][1], n_features=p.n_features, lam=p.lam, eps=p.eps,
            max_iter=p.max_iter, dtype=p.dtype, seed=p.seed, backend=p.backend,
            dask_address=p.dask_address, solver=p.solver)),
        Stage(evaluate_face_features, "evaluation", lambda p, o: dict(
            whitener_path=o["whitening"][0], W_path=o["training"]["W"],
            patches_path=o["patches"], patch_size=p.patch_size, group_size=p.group_size,
            eps=p.eps, n_folds=p.n_folds, seed=p.seed)),
        Stage(score_unit_invariance, "invariance", lambda p, o: dict(
            whitener_path=o["whitening"][0], W_path=o["training"]["W"],
            patches_path=o["patches"], images=list(p.images), patch_size=p.patch_size,
            group_size=p.group_size, eps=p.eps, n_trajectories=p.n_trajectories, seed=p.seed)),
    ),
    summarise=lambda p, o: {},
    headline=_headline,
    report=Stage(write_quickstart_report, "report", lambda p, results: dict(
        results=results, W_path=results["training"]["W"],
        objective_path=results["training"]["objective"], patch_size=p.patch_size)),
)
