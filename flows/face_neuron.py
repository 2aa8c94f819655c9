"""Flow ``face_neuron``: a network trained without labels on natural-image crops and
video frames, a few of which are faces; is one of its units a face detector?
(Le et al., ICML 2012, at our scale), with the "Why RICA?" comparison."""
from __future__ import annotations

from typing import Literal

from prefect import flow, get_run_logger
from pydantic import BaseModel, ConfigDict, Field, model_validator

from flows.legacy_stages import Stopwatch, open_run_dir, publish_report
from tasks.comparison import compare_methods
from tasks.face_frames import sample_face_frames
from tasks.face_network import train_face_network
from tasks.face_report import write_face_neuron_report
from tasks.face_scoring import score_units
from tasks.face_views import inspect_unit
from terafeat.datasets.bundled import NATURAL_IMAGES


class FaceNeuronParams(BaseModel):
    """Parameters of the face_neuron flow (the Prefect UI shows them as a form)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    images: tuple[str, ...] = Field(NATURAL_IMAGES, description="bundled images to crop frames from")
    data_root: str | None = Field("data", description="frames of the videos found under this "
                                                      "folder join the crop sources (none: skip)")
    max_videos: int = Field(20, ge=0, description="videos read from data_root at most")
    frames_per_video: int = Field(30, ge=1, description="frames per video, about 1 per second")
    n_frames: int = Field(20_000, ge=200, description="unlabelled training frames")
    frame_size: int = Field(20, ge=8, le=48, description="side of the square grey frames, pixels")
    face_fraction: float = Field(0.05, ge=0, le=0.5, description="fraction of training frames "
                                 "that are (jittered) lfw_subset training-half faces")
    normalize_frames: bool = Field(True, description="contrast-normalise each frame first")
    lcn: bool = Field(True, description="contrast-normalise the pooled units between layers")
    second_layer: bool = Field(False, description="stack a second RICA + pooling layer")
    n_components: int = Field(50, ge=2, description="PCA-whitened dimensions of layer 1")
    n_features: int = Field(200, ge=2, description="layer-1 RICA simple units")
    group_size: int = Field(4, ge=1, description="layer-1 simple units per L2 pooling unit")
    layer2_features: int = Field(100, ge=2, description="layer-2 RICA simple units")
    layer2_group_size: int = Field(2, ge=1, description="layer-2 simple units per pooling unit")
    lam: float = Field(10.0, gt=0, description="weight of RICA's reconstruction term")
    eps: float = Field(1e-2, gt=0, description="smoothing of the L1 / L2-pooling penalty")
    whitening_eps: float = Field(1e-2, ge=0, description="whitening regulariser")
    max_iter: int = Field(200, ge=1, description="L-BFGS iterations per layer")
    n_nonfaces_per_face: float = Field(2.0, gt=0, description="non-face crops per held-out face")
    control_without_faces: bool = Field(
        True, description="also train on the same frames minus the faces and score it alike")
    n_top: int = Field(16, ge=1, le=100, description="top stimuli shown for the best unit")
    comparison: bool = Field(False, description="run the 'Why RICA?' comparison in this flow")
    comparison_results: str | None = Field(
        None, description="instead, include bench/why_rica.py's JSON output from this path")
    comparison_patches: int = Field(10_000, ge=500, description="comparison: training patches")
    comparison_max_iter: int = Field(100, ge=1, description="comparison: iterations per method")
    comparison_trajectories: int = Field(2000, ge=100,
                                         description="comparison: patches for invariance")
    comparison_cifar: str | None = Field(None, description="comparison: cifar10.tar (optional)")
    dtype: Literal["float32", "float64"] = Field(
        "float64", description="float64: float32's noisy objective can stop L-BFGS early here")
    seed: int = Field(0, description="seed of every random choice")
    output_root: str = Field("reports", description="reports go to <output_root>/face_neuron/<run>/")

    @model_validator(mode="after")
    def _check_shapes(self):
        if self.n_features % self.group_size or self.layer2_features % self.layer2_group_size:
            raise ValueError("group_size must divide n_features and layer2_group_size must "
                             "divide layer2_features")
        if self.n_components > self.frame_size ** 2:
            raise ValueError(f"n_components {self.n_components} exceeds the "
                             f"{self.frame_size}x{self.frame_size} frame's pixels")
        return self

    def layers(self) -> list[dict]:
        """Layer settings of ``terafeat.learning.pooled_network.fit_pooled_network``."""
        shared = {"lam": self.lam, "eps": self.eps, "whitening_eps": self.whitening_eps,
                  "max_iter": self.max_iter}
        layers = [dict(shared, n_components=self.n_components, n_features=self.n_features,
                       group_size=self.group_size)]
        if self.second_layer:
            layers.append(dict(shared, n_components=None, n_features=self.layer2_features,
                               group_size=self.layer2_group_size))
        return layers


@flow(name="face_neuron", log_prints=True)
def face_neuron(params: FaceNeuronParams = FaceNeuronParams()) -> dict:
    """Frames -> unsupervised network -> every unit scored as a face detector -> the
    best unit's top stimuli, optimal stimulus, invariance -> report."""
    logger = get_run_logger()
    run = str(open_run_dir("face_neuron", params.output_root).resolve())
    timed = Stopwatch()
    frames = timed("sample frames", sample_face_frames, run, list(params.images), params.data_root,
                   params.n_frames, params.frame_size, params.face_fraction, params.max_videos,
                   params.frames_per_video, params.seed)
    network_options = (params.layers(), params.normalize_frames, params.lcn, params.dtype,
                       params.seed)
    training = timed("train network", train_face_network, frames["frames"], run, *network_options)
    scores = timed("score units", score_units, training["network"], run, params.frame_size,
                   params.n_nonfaces_per_face, params.seed)
    unit = timed("inspect best unit", inspect_unit, training["network"], scores["images"],
                 scores["responses"], scores["best_unit"], run, params.n_top, params.seed)
    results = {"flow": "face_neuron", "run_dir": run, "parameters": params.model_dump(mode="json"),
               "frames": frames, "training": training, "scores": scores, "unit": unit}
    rows = [("trained with faces mixed in", scores)]
    if params.control_without_faces and frames["n_faces"]:
        control_training = timed("train control network", train_face_network, frames["frames"],
                                 run, *network_options, prefix="control_",
                                 without_faces=frames["is_face"])
        control = timed("score control units", score_units, control_training["network"], run,
                        params.frame_size, params.n_nonfaces_per_face, params.seed,
                        prefix="control_")
        results["control"] = {"training": control_training, "scores": control}
        rows.append(("control: no faces in training", control))
    if params.comparison or params.comparison_results:
        results["comparison"] = timed(
            "why RICA comparison", compare_methods, params.comparison_results,
            params.comparison_patches, params.comparison_max_iter, params.comparison_trajectories,
            params.comparison_cifar, params.seed)
    headline = [{"network": name, "best unit": s["best_unit"],
                 "best unit accuracy": round(s["best_unit_accuracy"], 4),
                 "random unit accuracy": round(s["random_unit_accuracy"], 4),
                 "linear ceiling": round(s["linear_accuracy"], 4),
                 "majority": round(s["majority_accuracy"], 4),
                 "in-sample best": round(s["in_sample_best"], 4)} for name, s in rows]
    results["headline"] = headline
    results["timings"] = timed.timings
    page = timed("write report", write_face_neuron_report, run, results)
    for row in headline:
        logger.info("%s: best unit %.3f, random unit %.3f, linear %.3f", row["network"],
                    row["best unit accuracy"], row["random unit accuracy"], row["linear ceiling"])
    results["report"] = publish_report("face_neuron", page, headline)
    return results
