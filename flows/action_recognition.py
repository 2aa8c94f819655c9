"""Flow ``action_recognition``: stacked convolutional ISA on video clips, bag of words,
SVM (Le, Zou, Yeung & Ng, CVPR 2011), beside the classic motion-energy peer."""
from __future__ import annotations

import math
from typing import Literal

from prefect import flow, get_run_logger
from pydantic import Field, model_validator

from flows.options import StageCache, TrainingBackend
from flows.legacy_stages import Stopwatch, open_run_dir, publish_report
from reporting.toolkit import environment
from tasks.action_report import write_action_report
from tasks.blocks import sample_training_blocks
from tasks.classification import classify_clips
from tasks.features import convolve_layer1, extract_descriptors, motion_energy_features
from tasks.training import train_rica_layer
from tasks.video import clip_shapes, scan_action_videos
from tasks.vocabulary import build_vocabulary, clip_histograms
from tasks.whitening import whiten_patches
from terafeat.atomic_files import load_json
from terafeat.media.blocks import SUBBLOCKS, fit_to_clips, layer2_shape

#: A vocabulary gets at most one word per this many descriptors (small data sets).
DESCRIPTORS_PER_WORD = 40
MOTION_ENERGY_SIZE = 16


class ActionRecognitionParams(TrainingBackend, StageCache):
    """Parameters of the action_recognition flow; defaults follow Le et al. (CVPR 2011)."""

    layout: Literal["ucf", "kth", "folders", "hollywood2"] = Field(
        "ucf", description="on-disk layout: UCF101-style class folders (Weizmann), KTH names, "
                           "<class>/<video> folders, or Hollywood2's AVIClips + ClipSets")
    data_root: str = Field("data/weizmann4", description="folder the data set unpacks into")
    scale: float = Field(1.0, gt=0, le=1, description="frame resize factor (the authors' code "
                                                      "halves KTH/Hollywood2 frames: 0.5)")
    max_frames: int | None = Field(None, ge=2, description="read at most this many frames per clip")
    block_size: int = Field(16, ge=2, description="layer-1 block side, pixels")
    block_frames: int = Field(10, ge=2, description="layer-1 block length, frames")
    stride: int = Field(4, ge=1, description="stride of layer 1 inside a layer-2 block "
                                             "(space and time; 2x2x2 sub-blocks)")
    n_blocks: int = Field(30_000, ge=100, description="training blocks per layer "
                                                      "(the paper: 200,000)")
    n_components1: int = Field(300, ge=2, description="layer-1 PCA dimensions")
    n_features1: int = Field(300, ge=2, description="layer-1 simple units")
    n_components2: int = Field(200, ge=2, description="layer-2 PCA dimensions")
    n_features2: int = Field(200, ge=2, description="layer-2 simple units")
    group_size: int = Field(2, ge=1, description="ISA subspace size (the authors' code: 2)")
    lam: float = Field(10.0, gt=0, description="weight of RICA's reconstruction term")
    eps: float = Field(1e-2, gt=0, description="smoothing of the pooled penalty")
    whitening_eps: float = Field(1e-4, ge=0, description="added to each PCA eigenvalue")
    max_iter: int = Field(200, ge=1, description="L-BFGS iterations per layer")
    overlap: float = Field(0.5, ge=0, lt=1, description="overlap of the dense descriptor blocks")
    vocabulary_size: int = Field(3000, ge=2, description="k-means words (the paper: 3000); "
                                 f"at most one per {DESCRIPTORS_PER_WORD} descriptors is used")
    vocabulary_descriptors: int = Field(100_000, ge=100, description="descriptors k-means sees")
    classifier: Literal["chi2", "linear"] = Field("chi2", description="chi2-kernel or linear SVM")
    C: float = Field(100.0, gt=0, description="SVM regularisation (the paper: 100)")
    layers: Literal[1, 2] = Field(2, description="1: layer-1 descriptors only; 2: stacked")
    seed: int = Field(0, description="seed of every random choice")
    output_root: str = Field("reports", description="reports go to "
                                                    "<output_root>/action_recognition/<run>/")

    @model_validator(mode="after")
    def _groups_divide_features(self):
        for name in ("n_features1", "n_features2"):
            if getattr(self, name) % self.group_size:
                raise ValueError(f"group_size {self.group_size} must divide {name} "
                                 f"{getattr(self, name)}")
        return self


@flow(name="action_recognition", log_prints=True)
def action_recognition(params: ActionRecognitionParams = ActionRecognitionParams()) -> dict:
    """Scan -> blocks -> PCA + ISA layer 1 -> (layer 2) -> descriptors -> vocabulary ->
    histograms -> SVM, and the motion-energy peer -> report. Returns results.json's content."""
    logger = get_run_logger()
    run_dir = open_run_dir("action_recognition", params.output_root)
    run = str(run_dir)
    timed = Stopwatch()
    p = params
    cache = p.cache_root or None

    clips_path = timed("scan videos", scan_action_videos, p.data_root, p.layout, run,
                       cache_root=cache)
    shapes = timed("clip shapes", clip_shapes, clips_path, p.scale, p.max_frames)
    smallest = [min(shape[axis] for shape in shapes) for axis in range(3)]
    block, stride, factor = fit_to_clips(smallest, (p.block_frames, p.block_size, p.block_size),
                                         (p.stride,) * 3)
    if factor < 1:
        logger.warning("the smallest clip %s (frames, height, width) is smaller than a layer-2 "
                       "block: layer-1 block scaled to %s, stride to %s", smallest, block, stride)
    block_shapes = {"layer1": block, "layer2": layer2_shape(block, stride)}
    if p.layers == 1:
        block_shapes.pop("layer2")
    blocks = timed("sample blocks", sample_training_blocks, clips_path, run, block_shapes, shapes,
                   p.n_blocks, p.scale, p.max_frames, p.seed, cache_root=cache)

    model = {"group_size": p.group_size, "eps": p.eps, "block_shape": block, "stride": stride,
             "layer1": None, "layer2": None}
    sizes = {"scale": p.scale, "smallest_clip": smallest, "block_scale_factor": factor,
             "layer1_block": block, "stride": stride}
    training = {}
    layer_inputs = blocks["layer1"]
    for layer, n_components, n_features in ((1, p.n_components1, p.n_features1),
                                            (2, p.n_components2, p.n_features2))[:p.layers]:
        name = f"layer{layer}"
        if layer == 2:
            layer_inputs = timed("convolve layer 1", convolve_layer1, blocks["layer2"], run, model,
                                 cache_root=cache)
            sizes["layer2_block"] = block_shapes["layer2"]
        n_inputs = (math.prod(block) if layer == 1
                    else math.prod(SUBBLOCKS) * p.n_features1 // p.group_size)
        sizes[f"n_components{layer}"] = min(n_components, n_inputs)
        if sizes[f"n_components{layer}"] < n_components:
            logger.warning("%s: PCA to %d dims, not %d: its inputs have only %d", name,
                           n_inputs, n_components, n_inputs)
        whitener, whitened = timed(f"whiten {name}", whiten_patches, layer_inputs, run, "pca",
                                   p.whitening_eps, sizes[f"n_components{layer}"],
                                   prefix=f"{name}-", cache_root=cache)
        training[name] = timed(f"train {name}", train_rica_layer, whitened, run, n_features, p.lam,
                               p.eps, p.max_iter, "float32", p.seed + layer - 1, p.group_size,
                               prefix=f"{name}-", **p.backend_options(), cache_root=cache)
        model[name] = {"whitener": whitener, "W": training[name]["W"]}

    features = timed("extract descriptors", extract_descriptors, clips_path, run, model, p.overlap,
                     p.scale, p.max_frames, cache_root=cache)
    sizes["vocabulary"] = min(p.vocabulary_size,
                              max(2, features["n_descriptors"] // DESCRIPTORS_PER_WORD))
    if sizes["vocabulary"] < p.vocabulary_size:
        logger.warning("vocabulary of %d words, not %d: only %d descriptors", sizes["vocabulary"],
                       p.vocabulary_size, features["n_descriptors"])
    vocabulary = timed("vocabulary", build_vocabulary, features["shards"], run, sizes["vocabulary"],
                       p.vocabulary_descriptors, p.seed, cache_root=cache)
    histograms = timed("histograms", clip_histograms, features["shards"], vocabulary, run)
    evaluation = {"learned": timed("classify", classify_clips, histograms, clips_path, p.layout,
                                   p.classifier, p.C, p.seed, f"{p.layers}-layer ISA")}
    energy = timed("motion energy", motion_energy_features, clips_path, run, MOTION_ENERGY_SIZE,
                   p.scale, p.max_frames, cache_root=cache)
    evaluation["motion energy"] = timed("classify motion energy", classify_clips, energy,
                                        clips_path, p.layout, "linear", 1.0, p.seed, "motion energy")
    listing = load_json(clips_path)
    results = {"flow": "action_recognition", "run_dir": str(run_dir.resolve()),
               "parameters": p.model_dump(mode="json"), "n_clips": len(listing["clips"]),
               "skipped": listing["skipped"], "sizes": sizes, "model": model, "training": training,
               "features": features, "evaluation": evaluation, "timings": timed.timings,
               "cache": timed.sources, "environment": environment()}
    headline = [{"features": name, "protocol": scores["protocol"],
                 "score": round(scores["mean_ap" if scores["protocol"] == "mean_ap"
                                       else "accuracy"], 4)}
                for name, scores in evaluation.items()]
    results["headline"] = headline
    page = timed("write report", write_action_report, run, results, model)
    # the report written above carries every timing but its own
    results["report"] = publish_report("action_recognition", page, headline)
    return results
