"""The single-layer image-feature pipeline that the ``imagenet`` and ``histology`` flows
share: its parameters (one declaration, one meaning per name) and its stages, patches ->
whitening -> RICA (and the k-means peer) -> sharded encoding -> streamed classifier.

A flow supplies its own listing stage (an output with the keys of ``list-images``:
"listing", "train_images", "reader", "classes") and its own classification stage;
:func:`pipeline_stages` declares the stages in between.
"""
from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from flows.stages import Stage
from tasks.image_encoding import encode_image_shards
from tasks.image_patches import sample_image_patches
from tasks.kmeans_filters import train_kmeans_filters
from tasks.training import train_rica_layer
from tasks.whitening import whiten_patches

PatchSize = Annotated[int, Field(ge=3, le=16, description="side of the square colour "
                                 "patches, pixels")]
NPatches = Annotated[int, Field(ge=100, description="training patches")]
Whitening = Annotated[Literal["pca", "zca"], Field(
    description="pca: whiten onto the leading components (RICA learns in that space); "
                "zca: all components, back in pixel space")]
NComponents = Annotated[float | None, Field(gt=0, description="whitened components kept: "
                                            "a count, or a fraction (0, 1) of the patch "
                                            "variance (None: all)")]
WhiteningEps = Annotated[float, Field(ge=0, allow_inf_nan=False, description="whitening "
                                      "regulariser added to each eigenvalue (of "
                                      "contrast-normalised patches)")]
NFeatures = Annotated[int, Field(ge=2, description="RICA features (filters)")]
Eps = Annotated[float, Field(gt=0, allow_inf_nan=False, description="smoothing of the L1 "
                             "penalty sqrt(eps + u^2), training and smooth_l1 encoding")]
MaxIter = Annotated[int, Field(ge=1, description="RICA's L-BFGS iterations")]
RicaInit = Annotated[Literal["samples", "random"], Field(
    description="RICA's starting filters: whitened training patches drawn at random "
                "(seeded), or Gaussian random directions")]
KmeansPeer = Annotated[bool, Field(description="also learn k-means centroids (Coates et "
                                   "al.) from the same whitened patches, encoded and "
                                   "classified exactly as RICA's filters")]
Nonlinearity = Annotated[Literal["split", "abs", "smooth_l1"], Field(
    description="split: soft threshold [max(z - alpha, 0), max(-z - alpha, 0)]; abs: |z|; "
                "smooth_l1: sqrt(eps + z^2), RICA's penalty")]
Alpha = Annotated[float, Field(ge=0, allow_inf_nan=False, description="soft threshold of "
                               "the split non-linearity, whitened units")]
Grid = Annotated[int, Field(ge=1, le=4, description="pooling grid per image side (2: "
                            "quadrants)")]
Pooling = Annotated[Literal["sum", "l2"], Field(description="over each grid cell: sum, or "
                                                "l2 (square root of the sum of squares)")]
Classifier = Annotated[Literal["l2svm", "softmax", "ridge"], Field(
    description="l2svm: ridge and one-vs-rest squared-hinge SVMs (L-BFGS, started from "
                "ridge) are fitted, and whichever scores higher on the held-out images is "
                "kept; softmax: the same with multinomial logistic regression in place of "
                "the SVMs; ridge: ridge only")]
GramPrecision = Annotated[Literal["float32", "float64"], Field(
    description="dtype of the classifier's Gram matrix and of ridge's Cholesky factors "
                "(float32: half their memory and factorisation time; the entries are "
                "float32 products either way, and the L-BFGS preconditioner is float64)")]
PenaltyGrid = Annotated[tuple[Annotated[float, Field(ge=0, allow_inf_nan=False)], ...], Field(
    min_length=1, description="L2 penalty weights tried, in multiples of the number "
                              "of training rows")]
ValFraction = Annotated[float, Field(gt=0, lt=1, description="training images held out "
                                     "to choose the penalty")]
SvmIter = Annotated[int, Field(ge=1, description="at most this many L-BFGS iterations of "
                               "the final L2-SVM (fewer where its convergence test passes; "
                               "the results and the log say whether it did)")]
SvmPath = Annotated[int, Field(ge=1, description="L2-SVM penalties tried on the held-out "
                               "images: ridge's choice and the next smaller ones of "
                               "penalty_grid (1: ridge's choice only)")]
SvmPathIter = Annotated[int, Field(ge=1, description="L-BFGS iterations at each point of "
                                   "the path, each started from the last")]
SvmPatience = Annotated[int | None, Field(ge=1, description="early stopping: each L2-SVM "
                                          "(softmax) path point is evaluated on the held-out images "
                                          "after every L-BFGS iteration and stops this many "
                                          "iterations past its best, which it keeps (the "
                                          "final fit still runs up to svm_iter; None: no "
                                          "early stopping)")]
GridExtension = Annotated[int, Field(ge=0, le=10, description="where the best ridge "
                                     "(L2-SVM) penalty is the largest or smallest it was "
                                     "chosen among, at most this many more penalties past "
                                     "that end, each kept only if it scores higher on the "
                                     "held-out images (0: never)")]
BatchSize = Annotated[int, Field(ge=1, description="images read and encoded at a time")]
ShardSize = Annotated[int, Field(ge=1, description="images per feature shard (one Dask "
                                 "task)")]
EncodeOn = Annotated[Literal["dask", "local"], Field(
    description="feature extraction: mapped over the Dask cluster (dask_address, else a "
                "local cluster, one worker per core), or in this process")]

def whitening_components(params) -> int | float | None:
    """``n_components`` as ``Whitener`` takes it: a count as an int, else the fraction."""
    if params.n_components is not None and params.n_components >= 1:
        return int(params.n_components)
    return params.n_components


def filter_banks(outputs) -> dict:
    """{set name: filters path} of the learned banks: "rica", and "kmeans" where it ran."""
    banks = {"rica": outputs["training"]["W"]}
    if outputs.get("kmeans"):
        banks["kmeans"] = outputs["kmeans"]["W"]
    return banks


def classifier_bytes(f: int, params) -> int:
    """Memory of the streamed classifier's f x f Gram matrix and factor (bytes), from a
    flow's ``classifier`` and ``gram_precision``."""
    gram = np.dtype(params.gram_precision).itemsize
    return f * f * (gram + (8 if params.classifier != "ridge" else gram))


def classifier_options(params) -> dict:
    """The streamed classifier's keyword arguments (``fit_feature_set``) from a flow's
    parameters."""
    return dict(classifier=params.classifier, penalty_grid=list(params.penalty_grid),
                val_fraction=params.val_fraction, svm_iter=params.svm_iter, seed=params.seed,
                svm_path=params.svm_path, svm_path_iter=params.svm_path_iter,
                grid_extension=params.grid_extension, svm_patience=params.svm_patience,
                gram_precision=params.gram_precision)


def pipeline_stages(*, image_size, listing_key: str = "listing",
                    patch_images=lambda p: p.patch_images, colour_mode=lambda p: "rgb",
                    encoding_extra=lambda p: {},
                    extra_banks=lambda o: {}, peers=lambda p: None,
                    extra_stages: tuple[Stage, ...] = ()) -> tuple[Stage, ...]:
    """Stages "patches", "whitening", "training", "kmeans" (with ``kmeans_peer``), the
    ``extra_stages``, then "encoding", reading the flow's listing stage output (key
    ``listing_key``).

    image_size, patch_images (training images the patches come from), colour_mode,
    encoding_extra (more ``ConvolutionalEncoder`` options), peers (``encode_image_shards``'s
    peers): functions of the parameters; extra_banks: of the outputs, more {set name:
    filters path} encoded beside RICA's (and k-means').
    """
    return (
        Stage(sample_image_patches, "patches", lambda p, o: dict(
            listing=o[listing_key], n_patches=p.n_patches, patch_size=p.patch_size,
            image_size=image_size(p), n_images=patch_images(p), seed=p.seed,
            colour_mode=colour_mode(p))),
        Stage(whiten_patches, "whitening", lambda p, o: dict(
            patches_path=o["patches"]["patches"], method=p.whitening, eps=p.whitening_eps,
            n_components=whitening_components(p), remove_dc=False)),
        Stage(train_rica_layer, "training", lambda p, o: dict(
            whitened_path=o["whitening"][1], n_features=p.n_features, lam=p.lam, eps=p.eps,
            max_iter=p.max_iter, dtype=p.dtype, seed=p.seed, backend=p.backend,
            dask_address=p.dask_address, solver=p.solver, init=p.rica_init)),
        Stage(train_kmeans_filters, "kmeans", lambda p, o: dict(
            whitened_path=o["whitening"][1], n_filters=p.n_features, seed=p.seed),
            when=lambda p: p.kmeans_peer),
        *extra_stages,
        Stage(encode_image_shards, "encoding", lambda p, o: dict(
            listing=o[listing_key], whitener_path=o["whitening"][0],
            filter_banks={**filter_banks(o), **extra_banks(o)}, patch_size=p.patch_size,
            encoding={"nonlinearity": p.nonlinearity, "alpha": p.alpha, "grid": p.grid,
                      "pooling": p.pooling, "smoothing": p.eps, **encoding_extra(p)},
            image_size=image_size(p), batch_size=p.batch_size, shard_size=p.shard_size,
            encode_on=p.encode_on, dask_address=p.dask_address, peers=peers(p))),
    )
