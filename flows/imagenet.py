"""Flow ``imagenet``: single-layer RICA features in the Coates–Ng pipeline, from CIFAR-10
on a laptop to ImageNet on a Dask cluster, with memory bounded by a batch."""
from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from prefect import flow
from pydantic import Field

from flows.parameters import (Backend, CacheRoot, DaskAddress, Dtype, Lam, OutputRoot, Seed,
                              Solver, SplitTrain, documented, fits_in_memory, parameter_model,
                              rica_bytes, split_train_is_a_count_or_fraction, training_bytes)
from flows.stages import FlowPlan, Stage, run_flow
from reporting.pages.imagenet import headline_rows
from tasks.image_classification import classify_images
from tasks.image_encoding import encode_image_shards
from tasks.image_listing import list_images
from tasks.image_patches import sample_image_patches
from tasks.imagenet_report import write_imagenet_report
from tasks.kmeans_filters import train_kmeans_filters
from tasks.training import train_rica_layer
from tasks.whitening import whiten_patches
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
    patch_size: Annotated[int, Field(ge=3, le=16, description="side of the square colour "
                                     "patches, pixels")] = 6,
    n_patches: Annotated[int, Field(ge=100, description="training patches")] = 100_000,
    patch_images: Annotated[int, Field(ge=1, description="training images the patches come "
                                       "from")] = 10_000,
    whitening: Annotated[Literal["pca", "zca"], Field(
        description="pca: whiten onto the leading components (RICA learns in that space); "
                    "zca: all components, back in pixel space")] = "pca",
    n_components: Annotated[float | None, Field(gt=0, description="whitened components kept: "
                                                "a count, or a fraction (0, 1) of the patch "
                                                "variance (None: all)")] = 0.99,
    whitening_eps: Annotated[float, Field(ge=0, allow_inf_nan=False, description="whitening "
                                          "regulariser added to each eigenvalue (of "
                                          "contrast-normalised patches)")] = 0.01,
    n_features: Annotated[int, Field(ge=2, description="RICA features (filters)")] = 1600,
    lam: Lam = 30.0,
    eps: Annotated[float, Field(gt=0, allow_inf_nan=False, description="smoothing of the L1 "
                                "penalty sqrt(eps + u^2), training and smooth_l1 "
                                "encoding")] = 1e-2,
    max_iter: Annotated[int, Field(ge=1, description="RICA's L-BFGS iterations")] = 60,
    rica_init: Annotated[Literal["samples", "random"], Field(
        description="RICA's starting filters: whitened training patches drawn at random "
                    "(seeded), or Gaussian random directions")] = "samples",
    kmeans_peer: Annotated[bool, Field(description="also learn k-means centroids (Coates et "
                                       "al.) from the same whitened patches, encoded and "
                                       "classified exactly as RICA's filters")] = False,
    nonlinearity: Annotated[Literal["split", "abs", "smooth_l1"], Field(
        description="split: soft threshold [max(z - alpha, 0), max(-z - alpha, 0)]; abs: |z|; "
                    "smooth_l1: sqrt(eps + z^2), RICA's penalty")] = "split",
    alpha: Annotated[float, Field(ge=0, allow_inf_nan=False, description="soft threshold of "
                                  "the split non-linearity, whitened units")] = 0.25,
    grid: Annotated[int, Field(ge=1, le=4, description="pooling grid per image side (2: "
                               "quadrants)")] = 2,
    pooling: Annotated[Literal["sum", "l2"], Field(description="over each grid cell: sum, or "
                                                   "l2 (square root of the sum of "
                                                   "squares)")] = "sum",
    classifier: Annotated[Literal["l2svm", "softmax", "ridge"], Field(
        description="l2svm: ridge and one-vs-rest squared-hinge SVMs (L-BFGS, started from "
                    "ridge) are fitted, and whichever scores higher on the held-out images is "
                    "kept; softmax: the same with multinomial logistic regression in place of "
                    "the SVMs; ridge: ridge only")] = "l2svm",
    gram_precision: Annotated[Literal["float32", "float64"], Field(
        description="dtype of the classifier's Gram matrix and of ridge's Cholesky factors "
                    "(float32: half their memory and factorisation time; the entries are "
                    "float32 products either way, and the L-BFGS preconditioner is float64)"
    )] = "float32",
    penalty_grid: Annotated[tuple[Annotated[float, Field(ge=0, allow_inf_nan=False)], ...], Field(
        min_length=1, description="L2 penalty weights tried, in multiples of the number "
                                  "of training rows")] = LAM_GRID,
    val_fraction: Annotated[float, Field(gt=0, lt=1, description="training images held out "
                                         "to choose the penalty")] = 0.1,
    svm_iter: Annotated[int, Field(ge=1, description="at most this many L-BFGS iterations of "
                                   "the final L2-SVM (fewer where its convergence test passes; "
                                   "the results and the log say whether it did)")] = 100,
    svm_path: Annotated[int, Field(ge=1, description="L2-SVM penalties tried on the held-out "
                                   "images: ridge's choice and the next smaller ones of "
                                   "penalty_grid (1: ridge's choice only)")] = 4,
    svm_path_iter: Annotated[int, Field(ge=1, description="L-BFGS iterations at each point of "
                                        "the path, each started from the last")] = 30,
    svm_patience: Annotated[int | None, Field(ge=1, description="early stopping: each L2-SVM "
                                              "(softmax) path point is evaluated on the held-out images "
                                              "after every L-BFGS iteration and stops this many "
                                              "iterations past its best, which it keeps (the "
                                              "final fit still runs up to svm_iter; None: no "
                                              "early stopping)")] = 5,
    grid_extension: Annotated[int, Field(ge=0, le=10, description="where the best ridge "
                                         "(L2-SVM) penalty is the largest or smallest it was "
                                         "chosen among, at most this many more penalties past "
                                         "that end, each kept only if it scores higher on the "
                                         "held-out images (0: never)")] = 2,
    batch_size: Annotated[int, Field(ge=1, description="images read and encoded at a "
                                     "time")] = 256,
    shard_size: Annotated[int, Field(ge=1, description="images per feature shard (one Dask "
                                     "task)")] = 2500,
    encode_on: Annotated[Literal["dask", "local"], Field(
        description="feature extraction: mapped over the Dask cluster (dask_address, else a "
                    "local cluster, one worker per core), or in this process")] = "dask",
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
                f * f * (np.dtype(params.gram_precision).itemsize
                         + (8 if params.classifier != "ridge" else
                            np.dtype(params.gram_precision).itemsize))}


def _whitening_components(params) -> int | float | None:
    """``n_components`` as ``Whitener`` takes it: a count as an int, else the fraction."""
    if params.n_components is not None and params.n_components >= 1:
        return int(params.n_components)
    return params.n_components


def _filter_banks(outputs) -> dict:
    banks = {"rica": outputs["training"]["W"]}
    if outputs.get("kmeans"):
        banks["kmeans"] = outputs["kmeans"]["W"]
    return banks


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
        Stage(sample_image_patches, "patches", lambda p, o: dict(
            listing=o["listing"], n_patches=p.n_patches, patch_size=p.patch_size,
            image_size=p.image_size, n_images=p.patch_images, seed=p.seed)),
        Stage(whiten_patches, "whitening", lambda p, o: dict(
            patches_path=o["patches"]["patches"], method=p.whitening, eps=p.whitening_eps,
            n_components=_whitening_components(p), remove_dc=False)),
        Stage(train_rica_layer, "training", lambda p, o: dict(
            whitened_path=o["whitening"][1], n_features=p.n_features, lam=p.lam, eps=p.eps,
            max_iter=p.max_iter, dtype=p.dtype, seed=p.seed, backend=p.backend,
            dask_address=p.dask_address, solver=p.solver, init=p.rica_init)),
        Stage(train_kmeans_filters, "kmeans", lambda p, o: dict(
            whitened_path=o["whitening"][1], n_filters=p.n_features, seed=p.seed),
            when=lambda p: p.kmeans_peer),
        Stage(encode_image_shards, "encoding", lambda p, o: dict(
            listing=o["listing"], whitener_path=o["whitening"][0], filter_banks=_filter_banks(o),
            patch_size=p.patch_size, encoding={"nonlinearity": p.nonlinearity, "alpha": p.alpha,
                                               "grid": p.grid, "pooling": p.pooling,
                                               "smoothing": p.eps},
            image_size=p.image_size, batch_size=p.batch_size, shard_size=p.shard_size,
            encode_on=p.encode_on, dask_address=p.dask_address)),
        Stage(classify_images, "classification", lambda p, o: dict(
            encoded=o["encoding"], n_classes=len(o["listing"]["classes"]),
            classifier=p.classifier, penalty_grid=list(p.penalty_grid),
            val_fraction=p.val_fraction, svm_iter=p.svm_iter, seed=p.seed, svm_path=p.svm_path,
            svm_path_iter=p.svm_path_iter, grid_extension=p.grid_extension,
            svm_patience=p.svm_patience, gram_precision=p.gram_precision)),
    ),
    summarise=_summarise,
    headline=headline_rows,
    report=Stage(write_imagenet_report, "report", lambda p, results: dict(
        results=results, W_path=results["training"]["W"],
        objective_path=results["training"]["objective"], whitener_path=results["whitening"][0])),
)
