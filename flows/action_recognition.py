"""Flow ``action_recognition``: stacked convolutional ISA on video clips, bag of words,
SVM (Le, Zou, Yeung & Ng, CVPR 2011), beside the classic motion-energy peer; then our
transformed-test protocol (the held-out clips as a changed camera films them)."""
from __future__ import annotations

import math
from typing import Annotated, Literal

from prefect import flow
from pydantic import Field

from flows.parameters import (Backend, CacheRoot, DaskAddress, Dtype, Lam, OutputRoot, Seed,
                              Solver, documented, parameter_model)
from flows.stages import FlowPlan, Stage, run_flow
from tasks.action_report import write_action_report
from tasks.blocks import fit_blocks_to_clips, sample_training_blocks
from tasks.classification import classify_clips
from tasks.features import convolve_layer1, extract_descriptors, motion_energy_features
from tasks.training import train_rica_layer
from tasks.transformed_test import transformed_test
from tasks.video import scan_action_videos
from tasks.vocabulary import build_vocabulary, clip_histograms
from tasks.whitening import whiten_patches
from terafeat.atomic_files import load_json
from terafeat.media.blocks import SUBBLOCKS
from terafeat.media.camera import KINDS

#: A vocabulary gets at most one word per this many descriptors (small data sets).
DESCRIPTORS_PER_WORD = 40
#: Side of the motion-energy image, pixels.
MOTION_ENERGY_SIZE = 16


@flow(name="action_recognition", log_prints=True)
@documented
def action_recognition(
    *,
    layout: Annotated[Literal["ucf", "kth", "folders", "hollywood2"], Field(
        description="on-disk layout: UCF101-style class folders (Weizmann), KTH names, "
                    "<class>/<video> folders, or Hollywood2's AVIClips + ClipSets")] = "ucf",
    data_root: Annotated[str, Field(min_length=1, description="folder the data set unpacks "
                                    "into")] = "data/weizmann4",
    scale: Annotated[float, Field(gt=0, le=1, description="frame resize factor (the authors' "
                                  "code halves KTH/Hollywood2 frames: 0.5)")] = 1.0,
    max_frames: Annotated[int | None, Field(ge=2, description="read at most this many frames "
                                            "per clip (null: all)")] = None,
    block_size: Annotated[int, Field(ge=2, description="layer-1 block side, pixels")] = 16,
    block_frames: Annotated[int, Field(ge=2, description="layer-1 block length, "
                                       "frames")] = 10,
    stride: Annotated[int, Field(ge=1, description="stride of layer 1 inside a layer-2 block, "
                                 "pixels and frames (2x2x2 sub-blocks)")] = 4,
    n_blocks: Annotated[int, Field(ge=100, description="training blocks per layer (the paper: "
                                   "200,000)")] = 30_000,
    n_components1: Annotated[int, Field(ge=2, description="layer-1 PCA dimensions")] = 300,
    n_features1: Annotated[int, Field(ge=2, description="layer-1 simple units")] = 300,
    n_components2: Annotated[int, Field(ge=2, description="layer-2 PCA dimensions")] = 200,
    n_features2: Annotated[int, Field(ge=2, description="layer-2 simple units")] = 200,
    group_size: Annotated[int, Field(ge=1, description="ISA subspace size: simple units per "
                                     "pooled unit (the authors' code: 2)")] = 2,
    lam: Lam = 10.0,
    eps: Annotated[float, Field(gt=0, allow_inf_nan=False, description="smoothing of the "
                                "pooled penalty sqrt(eps + u^2)")] = 1e-2,
    whitening_eps: Annotated[float, Field(ge=0, allow_inf_nan=False, description="regulariser "
                                          "added to each PCA eigenvalue")] = 1e-4,
    max_iter: Annotated[int, Field(ge=1, description="L-BFGS iterations per layer")] = 200,
    n_layers: Annotated[int, Field(ge=1, le=2, description="number of ISA layers: 1 "
                                   "(layer-1 descriptors) or 2 (stacked)")] = 2,
    overlap: Annotated[float, Field(ge=0, lt=1, description="overlap of the dense descriptor "
                                    "blocks, a fraction of their side")] = 0.5,
    vocabulary_size: Annotated[int, Field(ge=2, description="k-means words (the paper: 3000); "
                                          "at most one per "
                                          f"{DESCRIPTORS_PER_WORD} descriptors is used")] = 3000,
    vocabulary_descriptors: Annotated[int, Field(ge=100, description="descriptors k-means "
                                                 "sees")] = 100_000,
    classifier: Annotated[Literal["chi2", "linear"], Field(description="SVM of the learned "
                                                           "features: chi2 kernel or "
                                                           "linear")] = "chi2",
    C: Annotated[float, Field(gt=0, allow_inf_nan=False, description="the SVM's inverse "
                              "regularisation strength (the paper: 100)")] = 100.0,
    transformed_test: Annotated[bool, Field(description="run our transformed test: the "
                                            "held-out clips as a changed camera films "
                                            "them")] = True,
    test_changes: Annotated[tuple[Literal[KINDS], ...], Field(
        min_length=1, description="camera changes of the transformed test")] = KINDS,
    test_strengths: Annotated[tuple[Annotated[float, Field(gt=0, le=1)], ...], Field(
        min_length=1, description="strengths of each camera change, fractions of its full range (translation "
                    "by a quarter of the frame, zoom 0.75-1.33, speed 0.67-1.5x, contrast "
                    "0.67-1.5x with brightness +-0.2)")] = (0.5, 1.0),
    seed: Seed = 0,
    dtype: Dtype = "float32",
    output_root: OutputRoot = "reports",
    cache_root: CacheRoot = "data/cache",
    backend: Backend = "local",
    dask_address: DaskAddress = None,
    solver: Solver = "lbfgs",
) -> dict:
    """Scan -> blocks -> PCA + ISA layer 1 -> (layer 2) -> descriptors -> vocabulary ->
    histograms -> SVM, and the motion-energy peer -> report. Returns results.json's content."""
    return run_flow(PLAN, locals())


def _groups_divide_features(params) -> None:
    for name in ("n_features1", "n_features2"):
        if getattr(params, name) % params.group_size:
            raise ValueError(f"group_size {params.group_size} must divide {name} "
                             f"{getattr(params, name)}")


def _two_layers(params) -> bool:
    return params.n_layers == 2


def _transformed_test(params) -> bool:
    """The transformed test runs where asked and the protocol scores accuracy (not
    Hollywood2's mean AP)."""
    return params.transformed_test and params.layout != "hollywood2"


def _layer(outputs, layer: int) -> dict | None:
    """{"whitener", "W"} of a trained layer (None before it trains, or when it does not)."""
    if outputs.get(f"training_layer{layer}") is None:
        return None
    return {"whitener": outputs[f"whitening_layer{layer}"][0],
            "W": outputs[f"training_layer{layer}"]["W"]}


def _model(params, outputs) -> dict:
    """The stacked model spec ``tasks.features.load_model`` reads."""
    geometry = outputs["geometry"]
    return {"group_size": params.group_size, "eps": params.eps,
            "block_shape": geometry["layer1_block"], "stride": geometry["stride"],
            "layer1": _layer(outputs, 1), "layer2": _layer(outputs, 2)}


def _vocabulary_size(params, outputs) -> int:
    return min(params.vocabulary_size,
               max(2, outputs["features"]["n_descriptors"] // DESCRIPTORS_PER_WORD))


def _whiten(layer: int):
    def arguments(p, o):
        inputs = o["blocks"]["layer1"] if layer == 1 else o["layer2_inputs"]
        return dict(patches_path=inputs, method="pca", eps=p.whitening_eps,
                    n_components=o["geometry"][f"n_components{layer}"], prefix=f"layer{layer}-")
    return arguments


def _train(layer: int):
    def arguments(p, o):
        return dict(whitened_path=o[f"whitening_layer{layer}"][1],
                    n_features=getattr(p, f"n_features{layer}"), lam=p.lam, eps=p.eps,
                    max_iter=p.max_iter, dtype=p.dtype, seed=p.seed + layer - 1,
                    group_size=p.group_size, prefix=f"layer{layer}-", backend=p.backend,
                    dask_address=p.dask_address, solver=p.solver)
    return arguments


def _summary(params, outputs) -> dict:
    listing = load_json(outputs["clips"])
    geometry = {key: value for key, value in outputs["geometry"].items() if key != "clip_shapes"}
    return {"n_clips": len(listing["clips"]), "skipped": listing["skipped"],
            "sizes": {"scale": params.scale, **geometry,
                      "vocabulary": _vocabulary_size(params, outputs)},
            "model": _model(params, outputs)}


def _headline(results: dict) -> list[dict]:
    return [{"features": name, "protocol": scores["protocol"],
             "score": round(scores["mean_ap" if scores["protocol"] == "mean_ap"
                                   else "accuracy"], 4)}
            for name, scores in (("learned", results["classification"]),
                                 ("motion energy", results["motion_energy_classification"]))]


PLAN = FlowPlan(
    name="action_recognition",
    model=parameter_model(action_recognition, checks=(_groups_divide_features,)),
    stages=(
        Stage(scan_action_videos, "clips", lambda p, o: dict(
            data_root=p.data_root, layout=p.layout)),
        Stage(fit_blocks_to_clips, "geometry", lambda p, o: dict(
            clips_path=o["clips"], scale=p.scale, max_frames=p.max_frames,
            block_shape=[p.block_frames, p.block_size, p.block_size], stride=p.stride,
            n_layers=p.n_layers, n_components=[p.n_components1, p.n_components2],
            layer2_inputs=math.prod(SUBBLOCKS) * p.n_features1 // p.group_size)),
        Stage(sample_training_blocks, "blocks", lambda p, o: dict(
            clips_path=o["clips"], shapes={name: o["geometry"][f"{name}_block"]
                                           for name in ("layer1", "layer2")[:p.n_layers]},
            clip_shapes=o["geometry"]["clip_shapes"], n_blocks=p.n_blocks, scale=p.scale,
            max_frames=p.max_frames, seed=p.seed)),
        Stage(whiten_patches.with_options(name="whiten-layer1"), "whitening_layer1",
              _whiten(1)),
        Stage(train_rica_layer.with_options(name="train-rica-layer1"), "training_layer1",
              _train(1)),
        Stage(convolve_layer1, "layer2_inputs", lambda p, o: dict(
            blocks_path=o["blocks"]["layer2"], model=_model(p, o)), when=_two_layers),
        Stage(whiten_patches.with_options(name="whiten-layer2"), "whitening_layer2",
              _whiten(2), when=_two_layers),
        Stage(train_rica_layer.with_options(name="train-rica-layer2"), "training_layer2",
              _train(2), when=_two_layers),
        Stage(extract_descriptors, "features", lambda p, o: dict(
            clips_path=o["clips"], model=_model(p, o), overlap=p.overlap, scale=p.scale,
            max_frames=p.max_frames)),
        Stage(build_vocabulary, "vocabulary", lambda p, o: dict(
            shards=o["features"]["shards"], size=_vocabulary_size(p, o),
            max_descriptors=p.vocabulary_descriptors, seed=p.seed)),
        Stage(clip_histograms, "histograms", lambda p, o: dict(
            shards=o["features"]["shards"], vocabulary_path=o["vocabulary"])),
        Stage(classify_clips, "classification", lambda p, o: dict(
            features_path=o["histograms"], clips_path=o["clips"], layout=p.layout,
            classifier=p.classifier, C=p.C, seed=p.seed, name=f"{p.n_layers}-layer ISA")),
        Stage(motion_energy_features, "motion_energy", lambda p, o: dict(
            clips_path=o["clips"], size=MOTION_ENERGY_SIZE, scale=p.scale,
            max_frames=p.max_frames)),
        Stage(classify_clips.with_options(name="classify-motion-energy"),
              "motion_energy_classification", lambda p, o: dict(
                  features_path=o["motion_energy"], clips_path=o["clips"], layout=p.layout,
                  classifier="linear", C=1.0, seed=p.seed, name="motion energy")),
        Stage(transformed_test, "transformed_test", lambda p, o: dict(
            clips_path=o["clips"], model=_model(p, o), vocabulary_path=o["vocabulary"],
            histograms_path=o["histograms"], motion_energy_path=o["motion_energy"],
            layout=p.layout, classifier=p.classifier, C=p.C, overlap=p.overlap, scale=p.scale,
            max_frames=p.max_frames, motion_energy_size=MOTION_ENERGY_SIZE,
            max_descriptors=p.vocabulary_descriptors, kinds=list(p.test_changes),
            strengths=list(p.test_strengths), seed=p.seed),
              when=_transformed_test),
    ),
    summarise=_summary,
    headline=_headline,
    report=Stage(write_action_report, "report", lambda p, results: dict(
        results=results, model=results["model"])),
)
