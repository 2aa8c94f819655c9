"""Flow ``histology``: single-layer RICA features of H&E tiles (Le et al., ISBI 2012) on
the imagenet flow's pipeline (``flows.single_layer``), classified beside k-means, PCA,
pixel and hand-crafted peers through the same streamed classifier."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from prefect import flow
from pydantic import Field

from flows.parameters import (Backend, CacheRoot, DaskAddress, Dtype, Lam, OutputRoot, Seed,
                              Solver, SplitTrain, documented, fits_in_memory, parameter_model,
                              rica_bytes, split_train_is_a_count_or_fraction, training_bytes)
from flows.single_layer import (Alpha, BatchSize, Classifier, EncodeOn, Eps, GramPrecision,
                                Grid, GridExtension, KmeansPeer, MaxIter, NComponents, NFeatures,
                                Nonlinearity, NPatches, PatchSize, PenaltyGrid, Pooling,
                                RicaInit, ShardSize, SvmIter, SvmPath, SvmPathIter,
                                SvmPatience, ValFraction, Whitening, WhiteningEps,
                                classifier_bytes, classifier_options, pipeline_stages)
from flows.stages import FlowPlan, Stage, run_flow
from tasks.histology_report import write_histology_report
from tasks.pca_filters import pca_filter_bank
from tasks.tile_classification import classify_tiles
from tasks.tile_download import download_tile_set
from tasks.tiles import list_tiles
from terafeat.classification.streamed import LAM_GRID
from terafeat.datasets.tile_tables import DOWNLOADS
from terafeat.media.colour import n_channels

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
        description="colours the learned and PCA filters see: RGB, H&E(+DAB) stain densities "
                    "(rgb2hed), H and E only, or grey (pixels and hand-crafted peers: "
                    "RGB)")] = "he",
    image_size: Annotated[int, Field(ge=8, le=512, description="tiles are resized to this "
                                     "side, pixels (area interpolation)")] = 64,
    dihedral_train: Annotated[int, Field(ge=1, le=8, description="rows per training tile: "
                                         "the tile and this many minus one other rotations / "
                                         "flips, drawn per tile (seeded)")] = 2,
    test_time_average: Annotated[bool, Field(description="score each test tile by the "
                                             "summed scores of its 8 rotations and flips "
                                             "(false: by the tile alone); both are "
                                             "reported")] = True,
    patch_size: PatchSize = 6,
    n_patches: NPatches = 100_000,
    patch_tiles: Annotated[int, Field(ge=1, description="training tiles the patches come "
                                      "from")] = 2000,
    whitening: Whitening = "pca",
    n_components: NComponents = 0.99,
    whitening_eps: WhiteningEps = 0.01,
    n_features: NFeatures = 1600,
    lam: Lam = 30.0,
    eps: Eps = 1e-2,
    max_iter: MaxIter = 60,
    rica_init: RicaInit = "samples",
    kmeans_peer: KmeansPeer = True,
    nonlinearity: Nonlinearity = "split",
    alpha: Alpha = 0.25,
    layout: Annotated[Literal["grid", "centre_surround"], Field(
        description="pooling cells: a grid x grid grid, or the centre cell of a 3x3 grid "
                    "(PCam's label region) and its surround")] = "centre_surround",
    grid: Grid = 2,
    stride: Annotated[int, Field(ge=1, le=8, description="pixels between two encoded "
                                 "windows along each axis (1: every window)")] = 2,
    pooling: Pooling = "sum",
    pixel_size: Annotated[int, Field(ge=2, description="side of the downsampled tile (pixels "
                                     "peer), pixels")] = 16,
    classifier: Classifier = "l2svm",
    gram_precision: GramPrecision = "float32",
    penalty_grid: PenaltyGrid = LAM_GRID,
    val_fraction: ValFraction = 0.1,
    svm_iter: SvmIter = 100,
    svm_path: SvmPath = 4,
    svm_path_iter: SvmPathIter = 30,
    svm_patience: SvmPatience = 5,
    grid_extension: GridExtension = 2,
    batch_size: BatchSize = 256,
    shard_size: ShardSize = 2500,
    encode_on: EncodeOn = "dask",
    seed: Seed = 0,
    dtype: Dtype = "float32",
    output_root: OutputRoot = "reports",
    cache_root: CacheRoot = "data/cache",
    backend: Backend = "local",
    dask_address: DaskAddress = None,
    solver: Solver = "lbfgs",
) -> dict:
    """Tiles (and their rotations / flips) -> colour patches -> whitening -> RICA (and the
    k-means and PCA peers) -> every tile encoded in shards (Dask), with the pixel and
    hand-crafted peers -> streamed linear classifiers -> report.  Returns results.json's
    content."""
    return run_flow(PLAN, locals())


def _pcam_test_split(params) -> None:
    if params.test_split != "test" and not params.dataset.startswith("pcam"):
        raise ValueError(f"test_split={params.test_split!r}: only the PCam layouts have a "
                         f"valid split, not dataset {params.dataset!r}")


def _downloadable(params) -> None:
    if params.download and params.dataset not in DOWNLOADS:
        raise ValueError(f"download: only {tuple(DOWNLOADS)} can be downloaded, "
                         f"not {params.dataset!r}")


def _patch_fits(params) -> None:
    side = 3 if params.layout == "centre_surround" else params.grid
    if params.patch_size + side - 1 > params.image_size:
        raise ValueError(f"a {params.patch_size}px patch and {side}x{side} pooling cells do "
                         f"not fit {params.image_size}px tiles (image_size)")


def _memory(params) -> dict[str, int]:
    d = n_channels(params.colour_mode) * params.patch_size ** 2
    cells = 2 if params.layout == "centre_surround" else params.grid ** 2
    f = params.n_features * cells * (2 if params.nonlinearity == "split" else 1) + 1
    return {f"the patches (n_patches={params.n_patches} x {d} values)": training_bytes(params.n_patches, d),
            f"RICA's optimiser (n_features={params.n_features} x {d})":
                rica_bytes(params.n_features, d),
            f"the classifier's {f} x {f} Gram matrix and factor (n_features="
            f"{params.n_features}, layout={params.layout}, nonlinearity={params.nonlinearity})":
                classifier_bytes(f, params)}


def _peers(params) -> dict[str, str]:
    return {"pixels": f"pixels:{params.pixel_size}", "hand-crafted": "handcrafted"}


def _unreadable(params, outputs: dict) -> dict:
    problems = (outputs["tiles"]["layout_problems"] + outputs["patches"]["problems"] +
                outputs["encoding"]["problems"])
    return {"unreadable_tiles": sorted({tuple(problem) for problem in problems})}


def _headline(results: dict) -> list[dict]:
    return [{"features": name, "accuracy": round(metrics["accuracy"], 4),
             "balanced accuracy": round(metrics["balanced_accuracy"], 4),
             "ROC AUC": None if metrics.get("roc_auc") is None else round(metrics["roc_auc"], 4),
             "AUC 95% interval": None if metrics.get("roc_auc_ci") is None
             else [round(bound, 4) for bound in metrics["roc_auc_ci"]]}
            for name, metrics in results["classification"]["metrics"].items()]


PLAN = FlowPlan(
    name="histology",
    model=parameter_model(histology, checks=(_downloadable, _pcam_test_split, _patch_fits,
                                             split_train_is_a_count_or_fraction,
                                             fits_in_memory(_memory))),
    stages=(
        Stage(download_tile_set, "download", lambda p, o: dict(
            dataset=p.dataset, data_root=p.data_root), when=lambda p: p.download),
        Stage(list_tiles, "tiles", lambda p, o: dict(
            dataset=p.dataset, data_root=o["download"] or p.data_root,
            max_tiles_per_split=p.max_tiles_per_split, seed=p.seed, split_train=p.split_train,
            test_split=p.test_split, test_root=p.test_root, dihedral_train=p.dihedral_train)),
        *pipeline_stages(
            image_size=lambda p: p.image_size, listing_key="tiles",
            patch_images=lambda p: p.patch_tiles,
            colour_mode=lambda p: p.colour_mode,
            encoding_extra=lambda p: {"layout": p.layout, "colour_mode": p.colour_mode,
                                      "stride": p.stride},
            extra_banks=lambda o: {"pca": o["pca"]["W"]}, peers=_peers,
            extra_stages=(Stage(pca_filter_bank, "pca", lambda p, o: dict(
                whitener_path=o["whitening"][0], n_filters=p.n_features)),)),
        Stage(classify_tiles, "classification", lambda p, o: dict(
            encoded=o["encoding"], tiles=o["tiles"], test_time_average=p.test_time_average,
            **classifier_options(p))),
    ),
    summarise=_unreadable,
    headline=_headline,
    report=Stage(write_histology_report, "report", lambda p, results: dict(
        results=results, W_path=results["training"]["W"],
        objective_path=results["training"]["objective"], whitener_path=results["whitening"][0],
        tiles_path=results["tiles"]["tiles"], class_names=results["tiles"]["class_names"])),
)
