"""Flow ``histology`` (issue #5): invariant (ISA-pooled) RICA features of H&E tiles,
classified beside pixel, PCA and hand-crafted peers (Le et al., ISBI 2012)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from prefect import flow
from pydantic import Field

from flows.parameters import (Backend, CacheRoot, DaskAddress, Dtype, Lam, OutputRoot, Seed,
                              Solver, SplitTrain, documented, fits_in_memory, parameter_model,
                              rica_bytes, split_train_is_a_count_or_fraction, training_bytes)
from flows.stages import FlowPlan, Stage, run_flow
from tasks.histology_report import write_histology_report
from tasks.tile_classification import classify_tiles
from tasks.tile_download import download_tile_set
from tasks.tile_features import extract_tile_features
from tasks.tiles import list_tiles, sample_tile_patches
from tasks.training import train_rica_layer
from tasks.whitening import whiten_patches
from terafeat.datasets.tile_tables import DOWNLOADS

REPO_DATA = str(Path(__file__).resolve().parents[1] / "data")


@flow(name="histology", log_prints=True)
@documented
def histology(
    *,
    dataset: Annotated[Literal["pcam_folders", "pcam_h5", "class_folders", "kather2016",
                               "lists"], Field(
        description="layout: PCam JPEG folders, PCam HDF5 files, class folders (per split, "
                    "or one tree split by split_train), Kather 2016 texture tiles (split by "
                    "split_train), or list files (root/train.txt and root/test.txt: a "
                    "relative path per line, the class its first folder)")] = "pcam_folders",
    data_root: Annotated[str, Field(min_length=1, description="folder of the data set "
                                    "(pcam_folders: the split folders, or a pcam-subset folder "
                                    "inside it)")] = REPO_DATA,
    download: Annotated[bool, Field(description="first download the data set (pcam_h5, "
                                    "kather2016) from its official address into data_root, "
                                    "resuming")] = False,
    split_train: SplitTrain = 0.75,
    test_split: Annotated[Literal["test", "valid"], Field(
        description="the PCam split to evaluate on (pcam_folders, pcam_h5): test, or valid")] = "test",
    test_root: Annotated[str | None, Field(min_length=1, description="a separate folder of "
                                           "test tiles, <class>/<tile> with the data set's "
                                           "class folder names (e.g. PCam's valid/), evaluated "
                                           "instead of the data set's test split (null: "
                                           "none)")] = None,
    max_tiles_per_split: Annotated[int | None, Field(ge=2, description="seeded, "
                                                     "label-stratified subset of each split, "
                                                     "for quick runs (null: all)")] = None,
    colour_mode: Annotated[Literal["rgb", "hed", "he", "grey"], Field(
        description="patch colours: RGB, H&E(+DAB) stain densities (rgb2hed), H and E only, "
                    "or grey")] = "he",
    patch_size: Annotated[int, Field(ge=3, le=16, description="side of the square patches, "
                                     "pixels")] = 8,
    n_patches: Annotated[int, Field(ge=100, description="training patches")] = 50_000,
    patch_tiles: Annotated[int, Field(ge=1, description="training tiles the patches come "
                                      "from")] = 2000,
    whitening_eps: Annotated[float, Field(ge=0, allow_inf_nan=False, description="ZCA "
                                          "regulariser added to each eigenvalue")] = 0.03,
    remove_dc: Annotated[bool, Field(description="subtract each patch's mean before whitening "
                                     "(drops the stain intensity that marks dense dark "
                                     "nuclei)")] = False,
    n_features: Annotated[int, Field(ge=2, description="RICA simple units")] = 512,
    group_size: Annotated[int, Field(ge=1, description="ISA group size: simple units per "
                                     "pooled unit")] = 4,
    lam: Lam = 10.0,
    eps: Annotated[float, Field(gt=0, allow_inf_nan=False, description="smoothing of "
                                "sqrt(eps + u^2), training and pooling")] = 1e-2,
    max_iter: Annotated[int, Field(ge=1, description="L-BFGS iterations")] = 150,
    simple_units: Annotated[Literal["abs", "split"], Field(
        description="non-linearity of the unpooled simple units: |Wx|, or the Coates-Ng split "
                    "soft threshold [max(Wx - alpha, 0), max(-Wx - alpha, 0)] (2 features per "
                    "filter)")] = "abs",
    alpha: Annotated[float, Field(ge=0, allow_inf_nan=False, description="soft threshold of "
                                  "the split simple units, whitened units")] = 0.1,
    stride: Annotated[int, Field(ge=1, description="stride of the convolutional encoding, "
                                 "pixels")] = 2,
    pooling: Annotated[Literal["quadrants", "pyramid"], Field(
        description="spatial sum-pooling cells: 2x2, or 1x1 + 2x2 + 3x3")] = "pyramid",
    pixel_size: Annotated[int, Field(ge=2, description="side of the downsampled tile (pixels "
                                     "peer), pixels")] = 16,
    classifier: Annotated[Literal["logistic", "linear_svm"], Field(
        description="linear classifier of every feature set (standardised "
                    "inputs)")] = "logistic",
    C_grid: Annotated[tuple[Annotated[float, Field(gt=0, allow_inf_nan=False)], ...], Field(
        min_length=1, description="grid of the classifier's C (inverse regularisation "
                                  "strength)")] = (1e-4, 1e-3, 1e-2, 1e-1),
    inner_folds: Annotated[int, Field(ge=2, le=10, description="CV folds choosing C (training "
                                      "split)")] = 3,
    grid_extension: Annotated[int, Field(ge=0, le=10, description="where the chosen C is the "
                                         "largest or smallest of C_grid, at most this many more "
                                         "Cs past that end, each kept only if it scores higher "
                                         "(0: never)")] = 2,
    batch_size: Annotated[int, Field(ge=1, description="tiles read and encoded at a "
                                     "time")] = 256,
    seed: Seed = 0,
    dtype: Dtype = "float32",
    output_root: OutputRoot = "reports",
    cache_root: CacheRoot = "data/cache",
    backend: Backend = "local",
    dask_address: DaskAddress = None,
    solver: Solver = "lbfgs",
) -> dict:
    """Tiles -> colour patches -> ZCA -> RICA with ISA pooling -> features of every tile
    (shards) -> linear classifiers beside peers -> report.  Returns results.json's content."""
    return run_flow(PLAN, locals())


def _groups_divide_features(params) -> None:
    if params.n_features % params.group_size:
        raise ValueError(f"group_size {params.group_size} must divide n_features "
                         f"{params.n_features}")


def _pcam_test_split(params) -> None:
    if params.test_split != "test" and not params.dataset.startswith("pcam"):
        raise ValueError(f"test_split={params.test_split!r}: only the PCam layouts have a "
                         f"valid split, not dataset {params.dataset!r}")


def _downloadable(params) -> None:
    if params.download and params.dataset not in DOWNLOADS:
        raise ValueError(f"download: only {tuple(DOWNLOADS)} can be downloaded, "
                         f"not {params.dataset!r}")


def _memory(params) -> dict[str, int]:
    d = {"rgb": 3, "hed": 3, "he": 2, "grey": 1}[params.colour_mode] * params.patch_size ** 2
    return {f"the patches (n_patches={params.n_patches} x {d} values)": training_bytes(params.n_patches, d),
            f"RICA's optimiser (n_features={params.n_features} x {d})":
                rica_bytes(params.n_features, d)}


def _unreadable(params, outputs: dict) -> dict:
    problems = (outputs["tiles"]["layout_problems"] + outputs["patches"]["problems"] +
                outputs["features"]["problems"])
    return {"unreadable_tiles": sorted({tuple(problem) for problem in problems})}


def _headline(results: dict) -> list[dict]:
    return [{"features": name, "accuracy": round(metrics["accuracy"], 4),
             "balanced accuracy": round(metrics["balanced_accuracy"], 4),
             "ROC AUC": None if metrics.get("roc_auc") is None else round(metrics["roc_auc"], 4)}
            for name, metrics in results["classification"]["metrics"].items()]


PLAN = FlowPlan(
    name="histology",
    model=parameter_model(histology, checks=(_groups_divide_features, _downloadable,
                                             _pcam_test_split,
                                             split_train_is_a_count_or_fraction,
                                             fits_in_memory(_memory))),
    stages=(
        Stage(download_tile_set, "download", lambda p, o: dict(
            dataset=p.dataset, data_root=p.data_root), when=lambda p: p.download),
        Stage(list_tiles, "tiles", lambda p, o: dict(
            dataset=p.dataset, data_root=o["download"] or p.data_root,
            max_tiles_per_split=p.max_tiles_per_split, seed=p.seed, split_train=p.split_train,
            test_split=p.test_split, test_root=p.test_root)),
        Stage(sample_tile_patches, "patches", lambda p, o: dict(
            tiles_path=o["tiles"]["tiles"], n_patches=p.n_patches, patch_size=p.patch_size,
            colour_mode=p.colour_mode, patch_tiles=p.patch_tiles, batch_size=p.batch_size,
            seed=p.seed)),
        Stage(whiten_patches, "whitening", lambda p, o: dict(
            patches_path=o["patches"]["patches"], method="zca", eps=p.whitening_eps,
            remove_dc=p.remove_dc)),
        Stage(train_rica_layer, "training", lambda p, o: dict(
            whitened_path=o["whitening"][1], n_features=p.n_features, lam=p.lam, eps=p.eps,
            max_iter=p.max_iter, dtype=p.dtype, seed=p.seed, group_size=p.group_size,
            backend=p.backend, dask_address=p.dask_address, solver=p.solver)),
        Stage(extract_tile_features, "features", lambda p, o: dict(
            tiles_path=o["tiles"]["tiles"], whitener_path=o["whitening"][0],
            W_path=o["training"]["W"], patches_path=o["patches"]["patches"],
            colour_mode=p.colour_mode, patch_size=p.patch_size, stride=p.stride,
            pooling=p.pooling, group_size=p.group_size, eps=p.eps, pixel_size=p.pixel_size,
            batch_size=p.batch_size, simple_units=p.simple_units, alpha=p.alpha)),
        Stage(classify_tiles, "classification", lambda p, o: dict(
            features=o["features"], tiles_path=o["tiles"]["tiles"], C_grid=list(p.C_grid),
            inner_folds=p.inner_folds, seed=p.seed, classifier=p.classifier,
            grid_extension=p.grid_extension)),
    ),
    summarise=_unreadable,
    headline=_headline,
    report=Stage(write_histology_report, "report", lambda p, results: dict(
        results=results, W_path=results["training"]["W"],
        objective_path=results["training"]["objective"], tiles_path=results["tiles"]["tiles"],
        class_names=results["tiles"]["class_names"])),
)
