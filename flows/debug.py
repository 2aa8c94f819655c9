"""``terafeat task``: run one stage of a past run alone, with no Prefect server.

The stage reads its inputs from a previous run folder, takes that run's
parameters (``results.json``) with any overrides, and writes to a new folder,
so the original run is never touched.  A stage name may belong to several
flows (``whiten``, ``train-rica``): the run's flow picks which.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from flows.registry import FLOWS
from terafeat.storage import load_json, new_run_dir


@dataclass(frozen=True)
class Stage:
    """A stage of one flow: the files it reads from the run folder and how to call it."""

    flow: str
    inputs: tuple[str, ...]
    # (source run folder, flow parameters, the run's results.json, output folder) -> task result
    call: Callable


def _whiten(run: Path, p, results: dict, out: Path):
    from tasks.whitening import whiten_patches
    if results["flow"] == "action_recognition":  # layer 1's PCA whitening of the blocks
        return whiten_patches.fn(str(run / "blocks-layer1.npy"), str(out), "pca", p.whitening_eps,
                                 results["sizes"]["n_components1"], prefix="layer1-")
    if results["flow"] == "imagenet":  # contrast-normalised patches: their mean is zero
        return whiten_patches.fn(str(run / "patches.npy"), str(out), p.whitening,
                                 p.whitening_eps, p.whitening_components(), remove_dc=False)
    return whiten_patches.fn(str(run / "patches.npy"), str(out), "zca", p.whitening_eps,
                             remove_dc=getattr(p, "remove_dc", True))


def _train(run: Path, p, results: dict, out: Path):
    from tasks.training import train_rica_layer
    if results["flow"] == "action_recognition":
        return train_rica_layer.fn(str(run / "layer1-whitened.npy"), str(out), p.n_features1,
                                   p.lam, p.eps, p.max_iter, "float32", p.seed, p.group_size,
                                   prefix="layer1-", **p.backend_options())
    group_size = p.group_size if results["flow"] == "histology" else 1
    return train_rica_layer.fn(str(run / "whitened.npy"), str(out), p.n_features, p.lam, p.eps,
                               p.max_iter, p.dtype, p.seed, group_size, **p.backend_options())


def _evaluate(run: Path, p, results: dict, out: Path):
    from tasks.evaluation import evaluate_face_features
    return evaluate_face_features.fn(str(run / "whitener.npz"), str(run / "W.npy"),
                                     str(run / "patches.npy"), p.patch_size, p.group_size, p.eps,
                                     p.n_folds, p.seed)


def _sample_tile_patches(run: Path, p, results: dict, out: Path):
    from tasks.tiles import sample_tile_patches
    return sample_tile_patches.fn(str(run / "tiles.csv"), str(out), p.n_patches, p.patch_size,
                                  p.colour_mode, p.patch_tiles, p.batch_size, p.seed)


def _extract_tile_features(run: Path, p, results: dict, out: Path):
    from tasks.tile_features import extract_tile_features
    return extract_tile_features.fn(str(run / "tiles.csv"), str(out), str(run / "whitener.npz"),
                                    str(run / "W.npy"), str(run / "patches.npy"), p.colour_mode,
                                    p.patch_size, p.stride, p.pooling, p.group_size, p.eps,
                                    p.pixel_size, p.batch_size, p.simple_units, p.alpha)


def _sample_blocks(run: Path, p, results: dict, out: Path):
    from tasks.blocks import sample_training_blocks
    from tasks.video import clip_shapes
    clips = str(run / "clips.json")
    sizes = results["sizes"]
    shapes = {"layer1": sizes["layer1_block"]}
    if "layer2_block" in sizes:
        shapes["layer2"] = sizes["layer2_block"]
    return sample_training_blocks.fn(clips, str(out), shapes,
                                     clip_shapes.fn(clips, p.scale, p.max_frames), p.n_blocks,
                                     p.scale, p.max_frames, p.seed)


def _extract_descriptors(run: Path, p, results: dict, out: Path):
    from tasks.features import extract_descriptors
    model = dict(results["model"])
    for layer in ("layer1", "layer2"):  # the run's files, wherever the run folder now is
        if model.get(layer):
            model[layer] = {part: str(run / Path(path).name) for part, path in model[layer].items()}
    return extract_descriptors.fn(str(run / "clips.json"), str(out), model, p.overlap, p.scale,
                                  p.max_frames)


def _run_listing(run: Path, results: dict) -> dict:
    """The run's listing summary, its files where the run folder now is."""
    listing = dict(results["listing"])
    for key in ("listing", "train_images"):
        listing[key] = str(run / Path(listing[key]).name)
    return listing


def _sample_image_patches(run: Path, p, results: dict, out: Path):
    from tasks.image_patches import sample_image_patches
    return sample_image_patches.fn(_run_listing(run, results), str(out), p.n_patches,
                                   p.patch_size, p.image_size, p.patch_images, p.seed)


def _train_kmeans(run: Path, p, results: dict, out: Path):
    from tasks.kmeans_filters import train_kmeans_filters
    return train_kmeans_filters.fn(str(run / "whitened.npy"), str(out), p.n_features, p.seed)


def _encode_images(run: Path, p, results: dict, out: Path):
    from tasks.image_encoding import encode_images
    banks = {"rica": str(run / "W.npy")}
    if p.kmeans_peer:
        banks["kmeans"] = str(run / "kmeans-W.npy")
    return encode_images.fn(_run_listing(run, results), str(out), str(run / "whitener.npz"),
                            banks, p.patch_size, p.encoding(), p.image_size,
                            p.batch_size, p.shard_size, p.encode_on, p.dask_address)


_LAYERS = ("layer1-whitener.npz", "layer1-W.npy", "layer2-whitener.npz", "layer2-W.npy")
STAGES: dict[str, tuple[Stage, ...]] = {
    "whiten": (Stage("quickstart", ("patches.npy",), _whiten),
               Stage("imagenet", ("patches.npy",), _whiten),
               Stage("histology", ("patches.npy",), _whiten),
               Stage("action_recognition", ("blocks-layer1.npy",), _whiten)),
    "train-rica": (Stage("quickstart", ("whitened.npy",), _train),
                   Stage("imagenet", ("whitened.npy",), _train),
                   Stage("histology", ("whitened.npy",), _train),
                   Stage("action_recognition", ("layer1-whitened.npy",), _train)),
    "evaluate-faces": (Stage("quickstart", ("whitener.npz", "W.npy", "patches.npy"), _evaluate),),
    "sample-tile-patches": (Stage("histology", ("tiles.csv",), _sample_tile_patches),),
    "extract-tile-features": (Stage("histology", ("tiles.csv", "whitener.npz", "W.npy",
                                                  "patches.npy"), _extract_tile_features),),
    "sample-image-patches": (Stage("imagenet", ("train_images.csv",), _sample_image_patches),),
    "train-kmeans": (Stage("imagenet", ("whitened.npy",), _train_kmeans),),
    "encode-images": (Stage("imagenet", ("listing.csv", "whitener.npz", "W.npy"),
                            _encode_images),),
    "sample-blocks": (Stage("action_recognition", ("clips.json",), _sample_blocks),),
    "extract-descriptors": (Stage("action_recognition", ("clips.json", *_LAYERS),
                                  _extract_descriptors),),
}


def stage_inputs(name: str, run: Path) -> tuple[str, ...]:
    """The files stage ``name`` reads from the run folder ``run`` (its flow's variant)."""
    return _pick(name, Path(run), load_json(Path(run) / "results.json"))[0].inputs


def _pick(name: str, run: Path, results: dict) -> tuple[Stage, dict]:
    flow = results.get("flow")
    for stage in STAGES[name]:
        if stage.flow == flow:
            layers = results.get("parameters", {}).get("layers")
            if layers == 1 and name == "extract-descriptors":  # no layer 2 in a 1-layer run
                stage = Stage(stage.flow, stage.inputs[:3], stage.call)
            return stage, results
    flows = ", ".join(stage.flow for stage in STAGES[name])
    raise ValueError(f"{run}: a {flow} run; stage {name} belongs to {flows}")


def run_stage(name: str, run: Path, overrides: dict, output_root: Path) -> tuple[Path, object]:
    """Run stage ``name`` on the run folder ``run``; returns (output folder, task result).

    Errors name the problem: an unknown stage (listing the known ones), a run
    folder without ``results.json`` or without an input file, a run of a flow
    without that stage, parameters the flow's model rejects.
    """
    if name not in STAGES:
        raise ValueError(f"unknown stage {name!r}; stages: {', '.join(sorted(STAGES))}")
    run = Path(run)
    results_path = run / "results.json"
    if not results_path.is_file():
        raise ValueError(f"{run}: no results.json here: not a finished run folder")
    stage, results = _pick(name, run, load_json(results_path))
    missing = [file for file in stage.inputs if not (run / file).exists()]
    if missing:
        raise ValueError(f"{run}: stage {name} needs {', '.join(missing)}, which this run lacks")
    model = FLOWS[stage.flow].load()[1]
    params = model.model_validate({**results["parameters"], **overrides})
    out = new_run_dir(output_root / "tasks", name, run.name)
    return out, stage.call(run, params, results, out)
