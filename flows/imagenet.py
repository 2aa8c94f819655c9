"""Flow ``imagenet``: single-layer RICA features in the Coates–Ng pipeline, from CIFAR-10
on a laptop to ImageNet on a Dask cluster, with memory bounded by a batch."""
from __future__ import annotations

from typing import Annotated, Literal

from prefect import flow
from pydantic import Field

from flows.parameters import (Backend, CacheRoot, DaskAddress, Dtype, Lam, OutputRoot, Seed,
                              Solver, SplitTrain, documented, fits_in_memory, parameter_model,
                              rica_bytes, split_train_is_a_count_or_fraction, training_bytes)
from flows.stages import FlowPlan, Stage, run_flow
from reporting.pages.imagenet import headline_rows
from tasks.image_classification import classify_images
from flows.single_layer import (Alpha, BatchSize, Classifier, EncodeOn, Eps, GramPrecision,
                                Grid, GridExtension, KmeansPeer, MaxIter, NComponents, NFeatures,
                                Nonlinearity, NPatches, PatchSize, PenaltyGrid, Pooling,
                                RicaInit, ShardSize, SvmIter, SvmPath, SvmPathIter,
                                SvmPatience, ValFraction, Whitening, WhiteningEps,
                                classifier_bytes, classifier_options, pipeline_stages)
from tasks.image_listing import list_images
from tasks.imagenet_report import write_imagenet_report
from terafeat.classification.streamed import LAM_GRID


@flow(name="imagenet", log_prints=True)
@documented
def imagenet(
    *,
    dataset: Annotated[Literal["cifar10", "cifar100", "folders", "class_tree", "lists",
                               "imagenette", "tiny-imagenet", "ilsvrc"], Field(
        description="layout: the publisher's CIFAR files (`terafeat data fetch cifar10`), class "
                    "folders per split (root/{train,test}/<class>/), one class-folder tree "
                    "(root/<class>/, split by split_train), list files (root/train.txt and "
                    "root/test.txt: a relative path per line, the class its first folder), "
                    "Imagenette, Tiny ImageNet or ILSVRC-2012")] = "cifar10",
    data_root: Annotated[str, Field(min_length=1, description="folder of the data set "
                                    "(relative: to the working folder)")] = "data/cifar10",
    split_train: SplitTrain = 0.75,
    image_size: Annotated[int, Field(ge=8, le=512, description="images are centre-cropped and "
                                     "resized to this side, pixels")] = 32,
    max_train_per_class: Annotated[int | None, Field(ge=1, description="seeded subset of the "
                                                     "training images per class (None: all)")]
    = None,
    max_test_per_class: Annotated[int | None, Field(ge=1, description="seeded subset of the "
                                                    "test images per class (None: all)")] = None,
    train_repeat: Annotated[int, Field(ge=1, le=8, description="list the training set this "
                                       "many times (a memory check: peak memory must not "
                                       "grow)")] = 1,
    mirror_train: Annotated[bool, Field(description="also list every training image mirrored "
                                        "left to right (twice the training rows; patches "
                                        "still come from the originals)")] = True,
    mirror_test: Annotated[bool, Field(description="score every test image and its mirror "
                                       "image, averaging the classifier's scores (test-time "
                                       "augmentation: twice the test encoding)")] = True,
    shift_train: Annotated[int, Field(ge=0, le=4, description="also list every training image "
                                      "this many more times, each copy shifted by a seeded "
                                      "random offset of up to max_shift pixels along each axis "
                                      "(edges replicated) and, with mirror_train, mirrored at "
                                      "random")] = 0,
    max_shift: Annotated[int, Field(ge=1, le=8, description="largest offset of a shifted copy, "
                                    "pixels of the resized image")] = 2,
    patch_size: PatchSize = 6,
    n_patches: NPatches = 100_000,
    patch_images: Annotated[int, Field(ge=1, description="training images the patches come "
                                       "from")] = 10_000,
    whitening: Whitening = "pca",
    n_components: NComponents = 0.99,
    whitening_eps: WhiteningEps = 0.01,
    n_features: NFeatures = 1600,
    lam: Lam = 30.0,
    eps: Eps = 1e-2,
    max_iter: MaxIter = 60,
    rica_init: RicaInit = "samples",
    kmeans_peer: KmeansPeer = False,
    nonlinearity: Nonlinearity = "split",
    alpha: Alpha = 0.25,
    grid: Grid = 2,
    pooling: Pooling = "sum",
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
    """List images -> colour patches -> whitening -> RICA (and the k-means peer) -> encode
    every image in shards (Dask) -> streamed linear classifiers (learned features and raw
    pixels) -> report.  Returns results.json's content."""
    return run_flow(PLAN, locals())


def _patch_fits(params) -> None:
    if params.patch_size + params.grid - 1 > params.image_size:
        raise ValueError(f"a {params.patch_size}px patch and a {params.grid}x{params.grid} "
                         f"grid do not fit {params.image_size}px images")


def _memory(params) -> dict[str, int]:
    d = 3 * params.patch_size ** 2
    per_filter = params.grid ** 2 * (2 if params.nonlinearity == "split" else 1)
    f = params.n_features * per_filter + 1
    return {f"the patches (n_patches={params.n_patches} x {d} values)": training_bytes(params.n_patches, d),
            f"RICA's optimiser (n_features={params.n_features} x {d})":
                rica_bytes(params.n_features, d),
            f"the classifier's {f} x {f} Gram matrix and factor (n_features="
            f"{params.n_features}, grid={params.grid}, nonlinearity={params.nonlinearity})":
                classifier_bytes(f, params)}


def _summarise(params, outputs) -> dict:
    listing, patches, encoding = outputs["listing"], outputs["patches"], outputs["encoding"]
    return {"unreadable_images": sorted({tuple(p) for p in listing["layout_problems"]
                                         + patches["problems"] + encoding["problems"]})}


PLAN = FlowPlan(
    name="imagenet",
    model=parameter_model(imagenet, checks=(_patch_fits, split_train_is_a_count_or_fraction,
                                            fits_in_memory(_memory))),
    stages=(
        Stage(list_images, "listing", lambda p, o: dict(
            dataset=p.dataset, data_root=p.data_root, split_train=p.split_train,
            max_train_per_class=p.max_train_per_class,
            max_test_per_class=p.max_test_per_class, train_repeat=p.train_repeat, seed=p.seed,
            mirror_train=p.mirror_train, mirror_test=p.mirror_test, shift_train=p.shift_train,
            max_shift=p.max_shift)),
        *pipeline_stages(image_size=lambda p: p.image_size),
        Stage(classify_images, "classification", lambda p, o: dict(
            encoded=o["encoding"], n_classes=len(o["listing"]["classes"]),
            **classifier_options(p))),
    ),
    summarise=_summarise,
    headline=headline_rows,
    report=Stage(write_imagenet_report, "report", lambda p, results: dict(
        results=results, W_path=results["training"]["W"],
        objective_path=results["training"]["objective"], whitener_path=results["whitening"][0])),
)
