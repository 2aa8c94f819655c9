"""Flow ``face_neuron``: a network trained without labels on natural-image crops and
video frames, a few of which are faces; is one of its units a face detector?
(Le et al., ICML 2012, at our scale), with the "Why RICA?" comparison."""
from __future__ import annotations

from typing import Annotated

from prefect import flow
from pydantic import Field

from flows.parameters import (Backend, CacheRoot, DaskAddress, Dtype, Lam, OutputRoot, Seed,
                              Solver, documented, fits_in_memory, parameter_model,
                              training_bytes, rica_bytes)
from flows.stages import FlowPlan, Stage, run_flow
from tasks.comparison import compare_methods
from tasks.face_frames import sample_face_frames
from tasks.face_network import build_face_network, whiten_face_layer
from tasks.face_report import write_face_neuron_report
from tasks.face_scoring import score_units
from tasks.face_views import inspect_unit
from tasks.training import train_rica_layer
from terafeat.datasets.bundled import NATURAL_IMAGES

#: The most layers the network stacks.
MAX_LAYERS = 2


@flow(name="face_neuron", log_prints=True)
@documented
def face_neuron(
    *,
    images: Annotated[tuple[str, ...], Field(min_length=1, description="bundled images to "
                                             "crop frames from")] = NATURAL_IMAGES,
    data_root: Annotated[str | None, Field(description="frames of the videos found under "
                                           "this folder join the crop sources (null: "
                                           "none)")] = "data",
    max_videos: Annotated[int, Field(ge=0, description="videos read from data_root at "
                                     "most")] = 20,
    frames_per_video: Annotated[int, Field(ge=1, description="frames per video, about 1 per "
                                           "second")] = 30,
    n_frames: Annotated[int, Field(ge=200, description="unlabelled training frames")] = 20_000,
    frame_size: Annotated[int, Field(ge=8, le=48, description="side of the square grey "
                                     "frames, pixels")] = 20,
    face_fraction: Annotated[float, Field(ge=0, le=0.5, description="fraction of training "
                                          "frames that are (jittered) lfw_subset "
                                          "training-half faces")] = 0.05,
    normalize_frames: Annotated[bool, Field(description="contrast-normalise each frame "
                                            "first")] = True,
    lcn: Annotated[bool, Field(description="contrast-normalise the pooled units between "
                               "layers")] = True,
    n_layers: Annotated[int, Field(ge=1, le=MAX_LAYERS, description="stacked layers of (RICA, "
                                   "L2 pooling)")] = 1,
    n_components: Annotated[int, Field(ge=2, description="PCA-whitened dimensions of layer "
                                       "1")] = 50,
    n_features: Annotated[int, Field(ge=2, description="layer-1 RICA simple units")] = 200,
    group_size: Annotated[int, Field(ge=1, description="layer-1 simple units per L2 pooling "
                                     "unit")] = 4,
    layer2_features: Annotated[int, Field(ge=2, description="layer-2 RICA simple "
                                          "units")] = 100,
    layer2_group_size: Annotated[int, Field(ge=1, description="layer-2 simple units per "
                                            "pooling unit")] = 2,
    lam: Lam = 10.0,
    eps: Annotated[float, Field(gt=0, allow_inf_nan=False, description="smoothing of the L1 / "
                                "L2-pooling penalty sqrt(eps + u^2)")] = 1e-2,
    whitening_eps: Annotated[float, Field(ge=0, allow_inf_nan=False, description="whitening "
                                          "regulariser added to each eigenvalue")] = 1e-2,
    max_iter: Annotated[int, Field(ge=1, description="L-BFGS iterations per layer")] = 200,
    n_nonfaces_per_face: Annotated[float, Field(gt=0, allow_inf_nan=False, description="non-face "
                                                "crops per held-out face")] = 2.0,
    control_without_faces: Annotated[bool, Field(description="also train on the same frames "
                                                 "minus the faces and score it alike")] = True,
    n_top: Annotated[int, Field(ge=1, le=100, description="top stimuli shown for the best "
                                "unit")] = 16,
    comparison: Annotated[bool, Field(description="run the 'Why RICA?' comparison in this "
                                      "flow")] = False,
    comparison_results: Annotated[str | None, Field(description="instead, include "
                                                    "bench/why_rica.py's JSON output from "
                                                    "this path")] = None,
    comparison_patches: Annotated[int, Field(ge=500, description="comparison: training "
                                             "patches")] = 10_000,
    comparison_max_iter: Annotated[int, Field(ge=1, description="comparison: iterations per "
                                              "method")] = 100,
    comparison_trajectories: Annotated[int, Field(ge=100, description="comparison: patches "
                                                  "for the invariance score")] = 2000,
    comparison_cifar: Annotated[str | None, Field(description="comparison: path of "
                                                  "cifar10.tar (optional)")] = None,
    seed: Seed = 0,
    dtype: Dtype = "float64",
    output_root: OutputRoot = "reports",
    cache_root: CacheRoot = "data/cache",
    backend: Backend = "local",
    dask_address: DaskAddress = None,
    solver: Solver = "lbfgs",
) -> dict:
    """Frames -> unsupervised network, layer by layer -> every unit scored as a face
    detector -> the best unit's top stimuli, optimal stimulus, invariance -> report.
    Returns results.json's content."""
    return run_flow(PLAN, locals())


def _shapes_fit(params) -> None:
    if params.n_features % params.group_size or (
            params.layer2_features % params.layer2_group_size):
        raise ValueError("group_size must divide n_features and layer2_group_size must "
                         "divide layer2_features")
    if params.n_components > params.frame_size ** 2:
        raise ValueError(f"n_components {params.n_components} exceeds the "
                         f"{params.frame_size}x{params.frame_size} frame's pixels")


def _solver_needs_dask(params) -> None:
    if params.solver != "lbfgs" and params.backend != "dask":
        raise ValueError(f"solver {params.solver!r} needs backend='dask' (local training "
                         "uses L-BFGS)")


def _memory(params) -> dict[str, int]:
    pixels = params.frame_size ** 2
    return {f"the frames (n_frames={params.n_frames} x {pixels} pixels)":
                training_bytes(params.n_frames, pixels),
            f"layer 1's RICA optimiser (n_features={params.n_features} x n_components="
            f"{params.n_components})": rica_bytes(params.n_features, params.n_components)}


def _layer(params, layer: int) -> dict:
    """Layer ``layer``'s (1-based) whitened dimensions, simple units and group size."""
    if layer == 1:
        return {"n_components": params.n_components, "n_features": params.n_features,
                "group_size": params.group_size}
    return {"n_components": None, "n_features": params.layer2_features,
            "group_size": params.layer2_group_size}


def _network_stages(control: bool) -> tuple[Stage, ...]:
    """The stages that train one network, layer by layer, and assemble it: the network
    trained on all frames, or the control (``control``: the frames minus the faces)."""
    prefix, name = ("control_", "control") if control else ("", "face")

    def runs(params, layer=1):
        return params.n_layers >= layer and (not control or _controlled(params))

    stages = []
    for layer in range(1, MAX_LAYERS + 1):
        def whitening(p, o, layer=layer):
            lower = None if layer == 1 else {
                "whitened": o[f"{prefix}whitening{layer - 1}"]["whitened"],
                "W": o[f"{prefix}training{layer - 1}"]["W"],
                "group_size": _layer(p, layer - 1)["group_size"]}
            return dict(layer=layer, frames_path=o["frames"]["frames"],
                        normalize_frames=p.normalize_frames, lcn=p.lcn,
                        n_components=_layer(p, layer)["n_components"],
                        whitening_eps=p.whitening_eps, eps=p.eps, lower=lower,
                        without_faces=o["frames"]["is_face"] if control else None,
                        prefix=prefix)

        def training(p, o, layer=layer):
            shape = _layer(p, layer)
            return dict(whitened_path=o[f"{prefix}whitening{layer}"]["whitened"],
                        n_features=shape["n_features"], group_size=shape["group_size"],
                        lam=p.lam, eps=p.eps, max_iter=p.max_iter, dtype=p.dtype,
                        seed=p.seed + layer - 1, prefix=f"{prefix}layer{layer}-",
                        backend=p.backend, dask_address=p.dask_address, solver=p.solver)

        stages += [
            Stage(whiten_face_layer.with_options(name=f"whiten-{name}-layer-{layer}"),
                  f"{prefix}whitening{layer}", whitening,
                  lambda p, layer=layer: runs(p, layer)),
            Stage(train_rica_layer.with_options(
                name=f"train-{'control-' if control else ''}rica-layer-{layer}"),
                f"{prefix}training{layer}", training, lambda p, layer=layer: runs(p, layer))]

    def built(p, o):
        layers = range(1, p.n_layers + 1)
        return dict(frame_size=p.frame_size,
                    whitening=[o[f"{prefix}whitening{i}"] for i in layers],
                    training=[o[f"{prefix}training{i}"] for i in layers],
                    group_sizes=[_layer(p, i)["group_size"] for i in layers], eps=p.eps,
                    normalize_frames=p.normalize_frames, lcn=p.lcn, max_iter=p.max_iter,
                    prefix=prefix)

    builder = build_face_network.with_options(name="build-control-network") if control \
        else build_face_network
    return (*stages, Stage(builder, f"{prefix}training", built, runs))


def _controlled(params) -> bool:
    return params.control_without_faces and params.face_fraction > 0


def _headline(results: dict) -> list[dict]:
    rows = [("trained with faces mixed in", results["scores"]),
            ("control: no faces in training", results["control_scores"])]
    return [{"network": name, "best unit": s["best_unit"],
             "best unit accuracy": round(s["best_unit_accuracy"], 4),
             "random unit accuracy": round(s["random_unit_accuracy"], 4),
             "linear ceiling": round(s["linear_accuracy"], 4),
             "majority": round(s["majority_accuracy"], 4),
             "in-sample best": round(s["in_sample_best"], 4)} for name, s in rows if s]


PLAN = FlowPlan(
    name="face_neuron",
    model=parameter_model(face_neuron, checks=(_shapes_fit, _solver_needs_dask, fits_in_memory(_memory))),
    stages=(
        Stage(sample_face_frames, "frames", lambda p, o: dict(
            images=list(p.images), data_root=p.data_root, n_frames=p.n_frames,
            frame_size=p.frame_size, face_fraction=p.face_fraction, max_videos=p.max_videos,
            frames_per_video=p.frames_per_video, seed=p.seed)),
        *_network_stages(control=False),
        Stage(score_units, "scores", lambda p, o: dict(
            network_path=o["training"]["network"], frame_size=p.frame_size,
            n_nonfaces_per_face=p.n_nonfaces_per_face, seed=p.seed)),
        Stage(inspect_unit, "unit", lambda p, o: dict(
            network_path=o["training"]["network"], images_path=o["scores"]["images"],
            responses_path=o["scores"]["responses"], unit=o["scores"]["best_unit"],
            n_top=p.n_top, seed=p.seed)),
        *_network_stages(control=True),
        Stage(score_units.with_options(name="score-control-units"), "control_scores",
              lambda p, o: dict(network_path=o["control_training"]["network"],
                                frame_size=p.frame_size,
                                n_nonfaces_per_face=p.n_nonfaces_per_face, seed=p.seed,
                                prefix="control_"), _controlled),
        Stage(compare_methods, "comparison", lambda p, o: dict(
            results_path=p.comparison_results, n_patches=p.comparison_patches,
            max_iter=p.comparison_max_iter, n_trajectories=p.comparison_trajectories,
            cifar_tar=p.comparison_cifar, seed=p.seed),
            lambda p: p.comparison or bool(p.comparison_results)),
    ),
    summarise=lambda p, o: {},
    headline=_headline,
    report=Stage(write_face_neuron_report, "report", lambda p, results: dict(results=results)),
)
