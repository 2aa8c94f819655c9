"""Flow ``histology`` (issue #5): invariant (ISA-pooled) RICA features of H&E tiles,
classified beside pixel, PCA and hand-crafted peers (Le et al., ISBI 2012)."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

from prefect import flow, get_run_logger
from pydantic import ConfigDict, Field, model_validator

from flows.options import PooledLayerParams, StageCache
from flows.legacy_stages import Stopwatch, open_run_dir, publish_report
from reporting.toolkit import environment
from tasks.histology_report import write_histology_report
from tasks.tile_classification import classify_tiles
from tasks.tile_download import download_tile_set
from tasks.tile_features import extract_tile_features
from tasks.tiles import list_tiles, sample_tile_patches
from tasks.training import train_rica_layer
from tasks.whitening import whiten_patches
from terafeat.datasets.tile_tables import DOWNLOADS

REPO_DATA = str(Path(__file__).resolve().parents[1] / "data")


class HistologyParams(PooledLayerParams, StageCache):
    """Parameters of the histology flow (the Prefect UI shows them as a form); the
    RICA layer trains locally or on Dask (``TrainingBackend``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dataset: Literal["pcam_folders", "pcam_h5", "class_folders", "kather2016"] = Field(
        "pcam_folders", description="layout: PCam JPEG folders, PCam HDF5 files, class folders, "
                                    "or Kather 2016 texture tiles")
    data_root: str = Field(REPO_DATA, description="folder of the data set (pcam_folders: the "
                           "split folders, or a pcam-subset folder inside it)")
    download: bool = Field(False, description="first download the data set (pcam_h5, "
                           "kather2016) from its official address into data_root, resuming")
    max_tiles_per_split: int | None = Field(None, ge=2, description="seeded, label-stratified "
                                            "subset of each split, for quick runs (None: all)")
    colour_mode: Literal["rgb", "hed", "he", "grey"] = Field(
        "he", description="patch colours: RGB, H&E(+DAB) stain densities (rgb2hed), H and E "
                           "only, or grey")
    patch_size: int = Field(8, ge=3, le=16, description="side of the square patches, pixels")
    n_patches: int = Field(50_000, ge=100, description="training patches")
    patch_tiles: int = Field(2000, ge=1, description="training tiles the patches come from")
    whitening_eps: float = Field(0.03, ge=0, description="ZCA regulariser added to each eigenvalue")
    remove_dc: bool = Field(False, description="subtract each patch's mean before whitening "
                            "(drops the stain intensity that marks dense dark nuclei)")
    n_features: int = Field(512, ge=2, description="RICA simple units")
    group_size: int = Field(4, ge=1, description="ISA group size: simple units per pooled unit")
    lam: float = Field(10.0, gt=0, description="weight of the reconstruction term")
    eps: float = Field(1e-2, gt=0, description="smoothing of sqrt(eps + u^2), training and pooling")
    max_iter: int = Field(150, ge=1, description="L-BFGS iterations")
    simple_units: Literal["abs", "split"] = Field(
        "abs", description="non-linearity of the unpooled simple units: |Wx|, or the "
                             "Coates-Ng split soft threshold [max(Wx - alpha, 0), "
                             "max(-Wx - alpha, 0)] (2 features per filter)")
    alpha: float = Field(0.1, ge=0, description="soft threshold of the split simple units, "
                         "whitened units")
    stride: int = Field(2, ge=1, description="stride of the convolutional encoding, pixels")
    pooling: Literal["quadrants", "pyramid"] = Field(
        "pyramid", description="spatial sum-pooling cells: 2x2, or 1x1 + 2x2 + 3x3")
    pixel_size: int = Field(16, ge=2, description="side of the downsampled tile (pixels peer)")
    classifier: Literal["logistic", "linear_svm"] = Field(
        "logistic", description="linear classifier of every feature set (standardised inputs)")
    Cs: tuple[float, ...] = Field((1e-4, 1e-3, 1e-2, 1e-1), min_length=1,
                                  description="grid of the classifier's C")
    inner_folds: int = Field(3, ge=2, le=10, description="CV folds choosing C (training split)")
    batch_size: int = Field(256, ge=1, description="tiles read and encoded at a time")
    dtype: Literal["float32", "float64"] = "float32"
    seed: int = Field(0, description="seed of every random choice")
    output_root: str = Field("reports", description="reports go to <output_root>/histology/<run>/")

    @model_validator(mode="after")
    def _downloadable(self):
        if self.download and self.dataset not in DOWNLOADS:
            raise ValueError(f"download: only {tuple(DOWNLOADS)} can be downloaded, "
                             f"not {self.dataset!r}")
        return self



@flow(name="histology", log_prints=True)
def histology(params: HistologyParams = HistologyParams()) -> dict:
    """Tiles -> colour patches -> ZCA -> RICA with ISA pooling -> features of every tile
    (shards) -> linear classifiers beside peers -> report.  Returns results.json's content."""
    logger = get_run_logger()
    run_dir = open_run_dir("histology", params.output_root)
    timed = Stopwatch()
    run = str(run_dir)
    cache = params.cache_root or None
    data_root = (timed("download", download_tile_set, params.dataset, params.data_root)
                 if params.download else params.data_root)
    tiles = timed("list tiles", list_tiles, params.dataset, data_root, run,
                  params.max_tiles_per_split, params.seed)
    patches = timed("sample patches", sample_tile_patches, tiles["tiles"], run, params.n_patches,
                    params.patch_size, params.colour_mode, params.patch_tiles, params.batch_size,
                    params.seed, cache_root=cache)
    whitener, whitened = timed("whiten", whiten_patches, patches["patches"], run, "zca",
                               params.whitening_eps, remove_dc=params.remove_dc, cache_root=cache)
    training = timed("train RICA", train_rica_layer, whitened, run, params.n_features, params.lam,
                     params.eps, params.max_iter, params.dtype, params.seed, params.group_size,
                     **params.backend_options(), cache_root=cache)
    features = timed("extract features", extract_tile_features, tiles["tiles"], run, whitener,
                     training["W"], patches["patches"], params.colour_mode, params.patch_size,
                     params.stride, params.pooling, params.group_size, params.eps,
                     params.pixel_size, params.batch_size, params.simple_units, params.alpha,
                     cache_root=cache)
    classification = timed("classify", classify_tiles, features, tiles["tiles"], run,
                           list(params.Cs), params.inner_folds, params.seed, params.classifier)
    unreadable = sorted({tuple(problem) for problem in tiles["layout_problems"] +
                         patches["problems"] + features["problems"]})
    results = {"flow": "histology", "run_dir": str(run_dir.resolve()),
               "parameters": params.model_dump(mode="json"), "tiles": tiles,
               "patches": patches, "training": training, "features": features,
               "classification": classification, "unreadable_tiles": unreadable,
               "timings": timed.timings, "cache": timed.sources, "environment": environment()}
    headline = [{"features": name, "accuracy": round(metrics["accuracy"], 4),
                 "balanced accuracy": round(metrics["balanced_accuracy"], 4),
                 "ROC AUC": None if metrics.get("roc_auc") is None else round(metrics["roc_auc"], 4)}
                for name, metrics in classification["metrics"].items()]
    results["headline"] = headline
    page = timed("write report", write_histology_report, run, results, training["W"],
                 training["objective"], tiles["tiles"], tiles["class_names"])
    for row in headline:
        logger.info("%-16s accuracy %.4f, AUC %s", row["features"], row["accuracy"], row["ROC AUC"])
    # the report written above carries every timing but its own
    results["report"] = publish_report("histology", page, headline)
    return results
