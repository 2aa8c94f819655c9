"""Stage: encode every listed image (learned features and raw pixels) into feature shards,
mapped over Dask workers that read the images themselves, or in this process."""
from __future__ import annotations

import contextlib
import time
from pathlib import Path

import numpy as np
import pandas as pd
from prefect import task

from tasks.logs import cached, report_progress, stage_logger
from tasks.whitening import load_whitener
from terafeat.atomic_files import load_array, save_arrays
from terafeat.distributed.cluster import get_client
from terafeat.encoding.convolutional import ConvolutionalEncoder
from terafeat.encoding.sharded import RAW_PIXELS, encode_listing, kept_path, shard_ranges
from terafeat.media.adaptations import ImageAdaptations, describe_adaptations


def split_ranges(listing_path: str, shard_size: int) -> dict[str, list[tuple[int, int]]]:
    """Row ranges of the listing per split ("train" rows come first, then "test")."""
    splits = pd.read_csv(listing_path, usecols=["split"])["split"].to_numpy()
    n_train = int((splits == "train").sum())
    return {"train": shard_ranges(n_train, shard_size),
            "test": [(start + n_train, stop + n_train)
                     for start, stop in shard_ranges(len(splits) - n_train, shard_size)]}


@task(name="encode-image-shards")
def encode_image_shards(*, listing: dict, run_dir: str, whitener_path: str, filter_banks: dict,
                  patch_size: int, encoding: dict, image_size: int, batch_size: int,
                  shard_size: int, encode_on: str = "dask", dask_address: str | None = None,
                  peers: dict[str, str] | None = None, cache_root: str | None = None) -> dict:
    """Feature shards ``features/<set>-<split>-NNNNN.npy`` (+ ``.kept.npy``) for each
    learned filter bank (``filter_banks``: {set name: path of (k, d_white) filters}, e.g.
    "rica", "kmeans") and for each of ``peers`` ({set name: ``sharded.load_encoder`` spec},
    default {"pixels": "pixels"}: raw pixels).

    encoding: ``ConvolutionalEncoder`` options (nonlinearity, alpha, grid, pooling, ...).

    encode_on: "dask" maps shards over the cluster at ``dask_address`` (else
    $TERAFEAT_DASK_ADDRESS, else a local cluster, one worker per core); "local" encodes
    here.  Returns {"shards": {set: {split: [paths]}}, "labels": {set: {split: [paths]}},
    "dims", "problems", "adaptations" (``ImageAdaptations.summary()`` of the listed
    images: sizes found, centre crops, resizes, grey to colour), "seconds", "peak_rss"
    (max over the processes that encoded: the workers, or this one; bytes, the high-water
    mark of each process's life), "images_per_second"}.
    """
    logger = stage_logger()

    def compute(out: Path) -> dict:
        whitener = load_whitener(whitener_path)
        sources = {}
        for name, W_path in filter_banks.items():
            encoder = ConvolutionalEncoder(load_array(W_path), whitener.whitening_,
                                           whitener.mean_, patch_size, **encoding)
            sources[name] = str(save_arrays(out / f"{name}-encoder.npz", encoder.to_arrays()))
        sources.update({"pixels": RAW_PIXELS} if peers is None else peers)
        rows = pd.read_csv(listing["listing"], usecols=["path", "record", "label"])
        labels = rows["label"].to_numpy()
        images = pd.factorize(pd.MultiIndex.from_frame(rows[["path", "record"]]))[0]
        ranges = split_ranges(listing["listing"], shard_size)
        total = len(sources) * sum(len(r) for r in ranges.values())
        done = [0]

        def report(_, __):
            done[0] += 1
            report_progress("extract features (shards)", done[0], total)
            if done[0] % 10 == 0 or done[0] == total:
                logger.info("encoded %d of %d shards", done[0], total)

        result = {"shards": {}, "labels": {}, "dims": {}, "problems": [], "seconds": {},
                  "peak_rss": 0, "images_per_second": {}}
        adaptations = ImageAdaptations()
        with (get_client(dask_address) if encode_on == "dask"
              else contextlib.nullcontext()) as client:
            for name, source in sources.items():
                started = time.perf_counter()
                result["shards"][name], result["labels"][name] = {}, {}
                for split, split_ranges_ in ranges.items():
                    paths, summaries = encode_listing(
                        listing["listing"], split_ranges_, source, out / "features", image_size,
                        batch_size, listing["reader"], client, prefix=f"{name}-{split}",
                        progress=report)
                    label_paths = []
                    for path in paths:
                        kept = np.load(kept_path(path))
                        label_paths.append(str(save_arrays(
                            Path(path).with_suffix(".labels.npz"),
                            {"labels": labels[kept], "images": images[kept]})))
                    result["shards"][name][split] = paths
                    result["labels"][name][split] = label_paths
                    result["peak_rss"] = max([result["peak_rss"]]
                                             + [s["peak_rss"] for s in summaries])
                    if name == next(iter(sources)):  # the other passes read the same files
                        result["problems"] += [list(p) for s in summaries for p in s["problems"]]
                        for summary in summaries:
                            adaptations += ImageAdaptations.from_dict(summary["adaptations"])
                    result["dims"][name] = int(np.load(paths[0], mmap_mode="r").shape[1])
                seconds = time.perf_counter() - started
                n_images = sum(stop - start for r in ranges.values() for start, stop in r)
                result["seconds"][name] = seconds
                result["images_per_second"][name] = n_images / seconds
                logger.info("%s features: %d dims, %.0f images/s, %.1f s", name,
                            result["dims"][name], n_images / seconds, seconds)
        result["adaptations"] = adaptations.summary()
        logger.info("peak memory of any encoding process: %.2f GB; %d unreadable images",
                    result["peak_rss"] / 1e9, len(result["problems"]))
        logger.info("images read: %s", describe_adaptations(result["adaptations"]))
        return result

    params = {"patch_size": patch_size, **encoding, "image_size": image_size,
              "batch_size": batch_size, "shard_size": shard_size, "reader": listing["reader"],
              **({} if peers is None else {"peers": peers})}
    return cached(cache_root, "encode-images", params,
                  {"listing": listing["listing"], "whitener": whitener_path,
                   **{f"W-{name}": path for name, path in filter_banks.items()}},
                  run_dir, compute, resumable=True)
