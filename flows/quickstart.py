"""Flow ``quickstart``: RICA on natural-image patches that ship with scikit-image /
scikit-learn, then a check that the features are useful (faces vs non-faces)."""
from __future__ import annotations

from typing import Literal

from prefect import flow, get_run_logger
from pydantic import Field

from flows.options import PooledLayerParams, StageCache
from flows.stages import Stopwatch, open_run_dir, publish_report
from tasks.evaluation import evaluate_face_features
from tasks.patches import sample_bundled_patches
from tasks.report import write_quickstart_report
from tasks.training import train_rica_layer
from tasks.whitening import whiten_patches
from terafeat.datasets.bundled import NATURAL_IMAGES
from terafeat.report import environment


class QuickstartParams(PooledLayerParams, StageCache):
    """Parameters of the quickstart flow (the Prefect UI shows them as a form)."""

    images: tuple[str, ...] = Field(NATURAL_IMAGES, description="bundled images to sample patches from")
    patch_size: int = Field(8, ge=4, le=16, description="side of the square grey patches, pixels")
    n_patches: int = Field(50_000, ge=500, description="training patches")
    whitening_eps: float = Field(1e-4, ge=0, description="ZCA regulariser added to each eigenvalue")
    n_features: int = Field(256, ge=2, description="RICA features (256 = 4x overcomplete for 8x8)")
    lam: float = Field(10.0, gt=0, description="weight of the reconstruction term")
    eps: float = Field(1e-2, gt=0, description="smoothing of the L1 penalty sqrt(eps + u^2)")
    max_iter: int = Field(400, ge=1, description="L-BFGS iterations")
    group_size: int = Field(4, ge=1, description="ISA group size of the pooled features")
    n_folds: int = Field(5, ge=2, le=20, description="cross-validation folds of the face check")
    dtype: Literal["float32", "float64"] = "float32"
    seed: int = Field(0, description="seed of every random choice")
    output_root: str = Field("reports", description="reports go to <output_root>/quickstart/<run>/")



@flow(name="quickstart", log_prints=True)
def quickstart(params: QuickstartParams = QuickstartParams()) -> dict:
    """Patches -> ZCA -> RICA -> face/non-face check -> report. Returns results.json's content."""
    logger = get_run_logger()
    run_dir = open_run_dir("quickstart", params.output_root)
    timed = Stopwatch()
    run = str(run_dir)
    cache = params.cache_root or None
    patches = timed("sample patches", sample_bundled_patches, run, list(params.images),
                    params.n_patches, params.patch_size, params.seed, cache_root=cache)
    whitener, whitened = timed("whiten", whiten_patches, patches, run, "zca", params.whitening_eps,
                               cache_root=cache)
    training = timed("train RICA", train_rica_layer, whitened, run, params.n_features, params.lam,
                     params.eps, params.max_iter, params.dtype, params.seed,
                     **params.backend_options(), cache_root=cache)
    evaluation = timed("evaluate features", evaluate_face_features, whitener, training["W"], patches,
                       params.patch_size, params.group_size, params.eps, params.n_folds, params.seed,
                       cache_root=cache, run_dir=run)
    results = {"flow": "quickstart", "run_dir": str(run_dir.resolve()),
               "parameters": params.model_dump(mode="json"), "training": training,
               "evaluation": evaluation, "timings": timed.timings, "cache": timed.sources,
               "environment": environment()}
    headline = [{"features": name, "dimensions": scores["n_features"],
                 "accuracy": round(scores["mean"], 4), "std": round(scores["std"], 4)}
                for name, scores in evaluation["accuracy"].items()]
    results["headline"] = headline
    page = timed("write report", write_quickstart_report, run, results, training["W"],
                 training["objective"], params.patch_size)
    for row in headline:
        logger.info("%-12s accuracy %.3f", row["features"], row["accuracy"])
    # the report written above carries every timing but its own
    results["report"] = publish_report("quickstart", page, headline)
    return results
