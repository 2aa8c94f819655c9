"""Feature extraction mapped over shards of an image listing, in this process or on Dask.

Each shard is a row range of a listing file (CSV, see
:mod:`terafeat.datasets.image_sets`); whoever encodes it (this process or a Dask
worker, maybe on another machine reading shared storage) reads the listing and its
images itself, encodes them in batches and writes ``<name>.npy`` (features,
(n_kept, f) float32) and ``<name>.kept.npy`` (listing rows kept) atomically.  A shard
whose files exist is not encoded again, so a killed run resumes.  Memory of any
process: one batch of images and its encoding, whatever the data set size.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from terafeat.atomic_files import load_json, save_array, save_json
from terafeat.datasets.image_sets import read_listed_images
from terafeat.encoding.convolutional import ConvolutionalEncoder
from terafeat.encoding.tile_peers import peer_encoder
from terafeat.media.adaptations import ImageAdaptations
from terafeat.process_memory import peak_rss_bytes

logger = logging.getLogger(__name__)
RAW_PIXELS = "pixels"


def adaptations_path(features_path) -> Path:
    """The ``.adaptations.json`` beside a feature shard: what reading did to its images."""
    return Path(features_path).with_suffix(".adaptations.json")


def kept_path(features_path) -> Path:
    """The ``.kept.npy`` beside a feature shard: the listing rows its features belong to."""
    return Path(features_path).with_suffix(".kept.npy")


def load_encoder(path) -> Callable[[np.ndarray], np.ndarray]:
    """images (n, h, w, 3) -> (n, f) from a saved ``ConvolutionalEncoder.to_arrays()``
    (.npz), raw pixels (n, h * w * 3) for ``path`` = "pixels", or a tile peer
    (``tile_peers.peer_encoder``: "handcrafted", "pixels:<side>")."""
    if str(path) == RAW_PIXELS:
        return lambda images: images.reshape(len(images), -1)
    if (peer := peer_encoder(str(path))) is not None:
        return peer
    with np.load(path, allow_pickle=False) as arrays:
        return ConvolutionalEncoder.from_arrays(arrays).transform


def encode_shard(listing_path: str, start: int, stop: int, encoder_path: str, out_path: str,
                 image_size: int, batch_size: int, reader: dict | None = None) -> dict:
    """Encode listing rows [start, stop) into ``out_path`` (.npy) and its ``.kept.npy``.

    Runs wherever it is sent.  Returns {"rows", "kept", "problems" [(path, problem)],
    "adaptations" (``ImageAdaptations.to_dict()`` of the rows' distinct images, also
    kept in the shard's ``.adaptations.json``), "seconds", "peak_rss" (bytes, this
    process), "skipped" (files existed)}.
    """
    out, kept_out, noted = Path(out_path), kept_path(out_path), adaptations_path(out_path)
    started = time.perf_counter()
    if out.is_file() and kept_out.is_file():
        kept = np.load(kept_out)
        return {"rows": stop - start, "kept": len(kept), "problems": [], "skipped": True,
                "adaptations": load_json(noted) if noted.is_file()
                else ImageAdaptations().to_dict(),
                "seconds": 0.0, "peak_rss": peak_rss_bytes()}
    rows = pd.read_csv(listing_path, skiprows=range(1, start + 1), nrows=stop - start)
    encode = load_encoder(encoder_path)
    features, kept, problems, adaptations = [], [], [], ImageAdaptations()
    for first in range(0, len(rows), batch_size):
        images, batch_kept, batch_problems = read_listed_images(
            rows.iloc[first:first + batch_size], image_size, reader, adaptations)
        features.append(encode(images).astype(np.float32, copy=False))
        kept.append(batch_kept + first + start)
        problems += batch_problems
    features = np.concatenate(features) if features else np.empty((0, 0), np.float32)
    save_json(noted, adaptations.to_dict())
    save_array(out, features)
    save_array(kept_out, np.concatenate(kept) if kept else np.empty(0, np.int64))
    return {"rows": len(rows), "kept": len(features), "problems": problems, "skipped": False,
            "adaptations": adaptations.to_dict(), "seconds": time.perf_counter() - started,
            "peak_rss": peak_rss_bytes()}


def shard_ranges(n_rows: int, shard_size: int) -> list[tuple[int, int]]:
    """[(start, stop)] row ranges of at most ``shard_size`` rows covering ``n_rows``."""
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    return [(start, min(start + shard_size, n_rows)) for start in range(0, n_rows, shard_size)]


def encode_listing(listing_path: str, ranges: list[tuple[int, int]], encoder_path: str,
                   out_folder, image_size: int, batch_size: int, reader: dict | None = None,
                   client=None, prefix: str = "features",
                   progress: Callable[[int, int], None] | None = None) -> tuple[list[str], list[dict]]:
    """Encode every row range of the listing into ``out_folder/<prefix>-NNNNN.npy``.

    client: a ``distributed.Client`` to map the shards over its workers, or None to
    encode them here one after the other.  progress(done, total) is called as shards
    finish.  Returns (feature shard paths in row order, per-shard summaries).
    """
    out_folder = Path(out_folder)
    out_folder.mkdir(parents=True, exist_ok=True)
    paths = [str(out_folder / f"{prefix}-{index:05d}.npy") for index in range(len(ranges))]
    arguments = [(listing_path, start, stop, encoder_path, path, image_size, batch_size, reader)
                 for (start, stop), path in zip(ranges, paths)]
    summaries = [None] * len(ranges)
    if client is None:
        for index, args in enumerate(arguments):
            summaries[index] = encode_shard(*args)
            if progress:
                progress(index + 1, len(ranges))
        return paths, summaries
    from distributed import as_completed
    futures = {client.submit(encode_shard, *args, pure=False): index
               for index, args in enumerate(arguments)}
    for done, future in enumerate(as_completed(futures), start=1):
        summaries[futures[future]] = future.result()
        if progress:
            progress(done, len(ranges))
    return paths, summaries
