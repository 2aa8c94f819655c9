"""Flow ``local_network`` (issue #9): the ICML 2012 architecture (Le et al.) at our
scale: stages of locally connected filters with untied weights, L2 pooling and local
contrast normalisation, trained greedily on unlabelled frames with model parallelism
(tiles of the receptive-field grid) and Downpour data parallelism (replicas) on Dask;
then its top-layer units as face detectors.  Measured runs: ``bench/local_network.py``."""
from __future__ import annotations

from typing import Annotated, Literal

from prefect import flow
from pydantic import Field

from flows.parameters import (Backend, CacheRoot, DaskAddress, Dtype, OutputRoot, Seed, Solver,
                              documented, parameter_model)
from flows.stages import FlowPlan, Stage, run_flow
from tasks.face_frames import sample_face_frames
from tasks.local_network import train_local_network
from tasks.local_report import write_local_network_report
from tasks.local_units import score_local_units
from terafeat.datasets.bundled import NATURAL_IMAGES
from terafeat.locally_connected.geometry import Tiling, stack_geometries
from terafeat.locally_connected.tile_objective import EPS, LAMBDA

#: The most stages of (filter, pool, LCN) the network stacks.
MAX_LAYERS = 3


@flow(name="local_network", log_prints=True)
@documented
def local_network(
    *,
    images: Annotated[tuple[str, ...], Field(min_length=1, description="bundled images to "
                                             "crop frames from")] = NATURAL_IMAGES,
    data_root: Annotated[str | None, Field(description="folder searched for videos whose "
                                           "frames join the training frames (null: bundled "
                                           "images only)")] = None,
    max_videos: Annotated[int, Field(ge=0, description="videos read from data_root at "
                                     "most")] = 20,
    frames_per_video: Annotated[int, Field(ge=1, description="frames taken per video (about 1 "
                                           "per second)")] = 20,
    frame_size: Annotated[int, Field(ge=16, le=200, description="side of the square grey "
                                     "frames, pixels")] = 64,
    n_frames: Annotated[int, Field(ge=8, description="unlabelled training frames")] = 2000,
    face_fraction: Annotated[float, Field(ge=0, le=1, description="fraction of the frames "
                                          "that are lfw faces (training half), as faces "
                                          "appear in unlabelled video")] = 0.5,
    n_layers: Annotated[int, Field(ge=1, le=MAX_LAYERS, description="stages of (filter, "
                                   "pool, LCN)")] = 3,
    fields: Annotated[tuple[int, ...], Field(min_length=1, description="receptive field side "
                                             "of each stage, input units")] = (8, 4, 3),
    strides: Annotated[tuple[int, ...], Field(min_length=1, description="receptive field "
                                              "spacing of each stage, input units")] = (2, 1, 1),
    maps: Annotated[tuple[int, ...], Field(min_length=1, description="filters (maps) per "
                                           "location of each stage")] = (16, 32, 40),
    pool: Annotated[int, Field(ge=1, description="L2 pooling over pool x pool neighbouring "
                               "units of a map")] = 3,
    pool_stride: Annotated[int, Field(ge=1, description="spacing of the pooling "
                                      "units")] = 1,
    lcn_size: Annotated[int, Field(ge=1, description="local contrast normalisation window, "
                                   "units")] = 5,
    partitions: Annotated[int, Field(ge=1, description="tiles of each stage's receptive-field "
                                     "grid (model parallelism; 1: one machine)")] = 1,
    replicas: Annotated[int, Field(ge=1, description="Downpour model replicas on separate "
                                   "data shards")] = 1,
    steps: Annotated[int, Field(ge=1, description="minibatch steps per stage and "
                                "replica")] = 2000,
    batch_size: Annotated[int, Field(ge=1, description="frames per minibatch")] = 16,
    learning_rate: Annotated[float, Field(gt=0, allow_inf_nan=False, description="Adagrad's "
                                          "gamma")] = 0.1,
    sparsity_weight: Annotated[float, Field(gt=0, allow_inf_nan=False, description="weight "
                                            "of the pooled sparsity term (ICML 2012: "
                                            "0.1)")] = LAMBDA,
    eps: Annotated[float, Field(gt=0, allow_inf_nan=False, description="smoothing of "
                                "sqrt(eps + H z^2)")] = EPS,
    n_nonfaces_per_face: Annotated[float, Field(gt=0, allow_inf_nan=False, description="non-face "
                                                "crops per face, in the selection part (lfw's "
                                                "training-half faces) and in the held-out part "
                                                "(its test-half faces); accuracy is balanced, "
                                                "so more crops only make it less noisy")] = 20.0,
    units: Annotated[Literal["simple", "output"], Field(description="top-layer units whose "
                                                        "best is inspected: the top stage's "
                                                        "filter responses (simple) or its "
                                                        "pooled, normalised outputs")] = "output",
    n_top: Annotated[int, Field(ge=1, description="strongest stimuli of the best unit "
                                "shown")] = 16,
    stimulus_iterations: Annotated[int, Field(ge=1, description="L-BFGS iterations of the "
                                              "optimal stimulus search (input of unit norm "
                                              "maximising the unit)")] = 100,
    seed: Seed = 0,
    dtype: Dtype = "float32",
    output_root: OutputRoot = "reports",
    cache_root: CacheRoot = "data/cache",
    backend: Backend = "local",
    dask_address: DaskAddress = None,
    solver: Solver = "downpour",
) -> dict:
    """Frames -> greedy tiled training -> face scoring of the top units -> report.
    Returns results.json's content."""
    return run_flow(PLAN, locals())


def _architecture(params) -> dict:
    """Keyword arguments of ``terafeat.locally_connected.geometry.stack_geometries``."""
    n = params.n_layers
    return {"fields": params.fields[:n], "strides": params.strides[:n], "maps": params.maps[:n],
            "pool": params.pool, "pool_stride": params.pool_stride, "lcn_size": params.lcn_size}


def _network_fits(params) -> None:
    for name in ("fields", "strides", "maps"):
        if len(getattr(params, name)) < params.n_layers:
            raise ValueError(f"{name} has {len(getattr(params, name))} entries for "
                             f"{params.n_layers} layers")
    for geometry in stack_geometries((params.frame_size, params.frame_size, 1),
                                     **_architecture(params)):
        Tiling(geometry, params.partitions)


def _solver_is_downpour(params) -> None:
    if params.solver != "downpour":
        raise ValueError(f"solver: local_network trains by Downpour SGD only (solver="
                         f"'downpour'), not {params.solver!r}")


def _headline(results: dict) -> list[dict]:
    training, units = results["training"], results["units"]
    return [{"connections": training["n_connections"],
             "parameters": training["n_parameters"],
             "frames/s": training["frames_per_second"],
             "border bytes/step": sum(r["border_bytes_per_step"] for r in training["layers"]),
             "parameter bytes/step": sum(r["parameter_bytes_per_step"]
                                         for r in training["layers"]),
             "units": units["kind"], "best unit": units["best_unit"],
             "best unit accuracy": round(units["best_unit_accuracy"], 4),
             "random unit accuracy": round(units["random_unit_accuracy"], 4),
             "random unit std": round(units["random_unit_std"], 4),
             f"margin over random + {units['margin_std']:g} std": round(units["margin"], 4),
             "beats random unit": units["beats_random"],
             "untrained network's best unit": round(units["untrained_best_unit_accuracy"], 4),
             "beats untrained network's best unit": units["beats_untrained"],
             "face detector": units["face_detector"],
             "best unit ROC area": round(units["best_unit_auc"], 4),
             "random unit ROC area": round(units["random_unit_auc"], 4),
             "random unit ROC area std": round(units["random_unit_auc_std"], 4),
             "linear ceiling": round(units["linear_accuracy"], 4),
             "face-template unit (reference)": round(units["template_unit_accuracy"], 4)}]


PLAN = FlowPlan(
    name="local_network",
    model=parameter_model(local_network, checks=(_network_fits, _solver_is_downpour)),
    stages=(
        Stage(sample_face_frames, "frames", lambda p, o: dict(
            images=list(p.images), data_root=p.data_root, n_frames=p.n_frames,
            frame_size=p.frame_size, face_fraction=p.face_fraction, max_videos=p.max_videos,
            frames_per_video=p.frames_per_video, seed=p.seed)),
        Stage(train_local_network, "training", lambda p, o: dict(
            frames_path=o["frames"]["frames"], architecture=_architecture(p),
            training={"partitions": p.partitions, "replicas": p.replicas, "steps": p.steps,
                      "batch_size": p.batch_size, "learning_rate": p.learning_rate,
                      "lam": p.sparsity_weight, "eps": p.eps, "seed": p.seed,
                      "dtype": p.dtype},
            backend=p.backend, dask_address=p.dask_address)),
        Stage(score_local_units, "units", lambda p, o: dict(
            network_path=o["training"]["network"], frame_size=p.frame_size,
            n_nonfaces_per_face=p.n_nonfaces_per_face, seed=p.seed, n_top=p.n_top,
            stimulus_iterations=p.stimulus_iterations, kind=p.units)),
    ),
    summarise=lambda p, o: {},
    headline=_headline,
    report=Stage(write_local_network_report, "report", lambda p, results: dict(
        results=results)),
)
