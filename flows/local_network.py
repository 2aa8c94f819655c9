"""Flow ``local_network``: the face-neuron experiment (Le et al., ICML 2012) on the paper's
architecture at our scale: stages of locally connected filters with untied weights, L2
pooling and local contrast normalisation, trained greedily on unlabelled frames (faces
mixed among object images or bundled crops) with model parallelism (tiles of the
receptive-field grid) and Downpour data parallelism (replicas) on Dask; the same network
trained on the same frames minus the faces, same seed and budget (the no-face control);
then the top-layer units as face detectors beside the controls, and the verdict table.
Measured runs: ``bench/local_network.py`` (speed), ``bench/face_neuron.py`` (seeds)."""
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
    data_root: Annotated[str | None, Field(description="object images in train/<class>/ "
                                           "and test/<class>/ folders (CIFAR-10 extracted): "
                                           "training-split images join the frames, "
                                           "test-split images are the held-out distractors; "
                                           "videos found under it join the frames (null: "
                                           "bundled crops only)")] = None,
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
                                "replica")] = 200,
    batch_size: Annotated[int, Field(ge=1, description="frames per minibatch")] = 16,
    learning_rate: Annotated[float, Field(gt=0, allow_inf_nan=False, description="Adagrad's "
                                          "gamma")] = 0.1,
    sparsity_weight: Annotated[float, Field(gt=0, allow_inf_nan=False, description="weight "
                                            "of the pooled sparsity term (ICML 2012: "
                                            "0.1)")] = LAMBDA,
    eps: Annotated[float, Field(gt=0, allow_inf_nan=False, description="smoothing of "
                                "sqrt(eps + H z^2)")] = EPS,
    n_nonfaces_per_face: Annotated[float, Field(
        gt=0, allow_inf_nan=False, description="distractors per face, in the selection part "
        "(lfw's training-half faces) and in the held-out part (its test-half faces); accuracy "
        "is balanced, so more distractors only make it less noisy")] = 10.0,
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
    """Frames -> greedy tiled training, with faces and without -> face scoring of the top
    units beside the controls -> report.  Returns results.json's content."""
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
             "distractors": results["frames"]["distractors"],
             "units": units["kind"], "best unit": units["best_unit"],
             **{f"{row['network']}": round(row["mean"], 4) for row in units["verdict"]["rows"]},
             "best unit ROC area": round(units["best_unit_auc"], 4),
             "optimal stimulus vs mean face (r)": round(units["stimulus_face_correlation"], 3),
             "no-face control's (r)": round(units["no_face_stimulus_face_correlation"], 3),
             "verdict": units["verdict"]["verdict"]}]


def _training(params, outputs, without_faces: bool) -> dict:
    """``train_local_network``'s keywords: on all frames, or (``without_faces``) on the
    frames minus the faces, same seed and budget."""
    return dict(frames_path=outputs["frames"]["frames"], architecture=_architecture(params),
                training={"partitions": params.partitions, "replicas": params.replicas,
                          "steps": params.steps, "batch_size": params.batch_size,
                          "learning_rate": params.learning_rate, "lam": params.sparsity_weight,
                          "eps": params.eps, "seed": params.seed, "dtype": params.dtype},
                backend=params.backend, dask_address=params.dask_address,
                without_faces=outputs["frames"]["is_face"] if without_faces else None,
                prefix="no_face_" if without_faces else "")


PLAN = FlowPlan(
    name="local_network",
    model=parameter_model(local_network, checks=(_network_fits, _solver_is_downpour)),
    stages=(
        Stage(sample_face_frames, "frames", lambda p, o: dict(
            images=list(p.images), data_root=p.data_root, n_frames=p.n_frames,
            frame_size=p.frame_size, face_fraction=p.face_fraction, max_videos=p.max_videos,
            frames_per_video=p.frames_per_video, n_nonfaces_per_face=p.n_nonfaces_per_face,
            seed=p.seed)),
        Stage(train_local_network, "training", lambda p, o: _training(p, o, False)),
        Stage(train_local_network.with_options(name="train-no-face-network"), "no_face_training",
              lambda p, o: _training(p, o, True)),
        Stage(score_local_units, "units", lambda p, o: dict(
            network_path=o["training"]["network"],
            no_face_network_path=o["no_face_training"]["network"],
            images_path=o["frames"]["images"], is_face_path=o["frames"]["image_is_face"],
            held_out_path=o["frames"]["held_out"], seed=p.seed, n_top=p.n_top,
            stimulus_iterations=p.stimulus_iterations, kind=p.units)),
    ),
    summarise=lambda p, o: {},
    headline=_headline,
    report=Stage(write_local_network_report, "report", lambda p, results: dict(
        results=results)),
)
