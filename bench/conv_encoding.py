"""Convolutional encoding speed: our cache-blocked im2col encoder vs the plain version and
vs OpenCV filtering, on the same filters and images, in one run.

Run from the repository root::

    python bench/conv_encoding.py            # 1600 filters, 6x6x3, 32x32 images
    python bench/conv_encoding.py --quick    # 400 filters, fewer images

Three ways to compute the same Coates-style features (contrast-normalised windows,
ZCA whitening, k filters, split soft threshold, sum over the four quadrants):

* ours: ``terafeat.encoding.convolutional.ConvolutionalEncoder`` (normalisation, whitening and
  filters folded into one matrix; per pooling cell, chunks of windows small enough for
  the cache; pooled sums of max(z, a) / min(z, -a));
* plain: the same algebra over the whole im2col matrix of a batch of images, one new
  array per intermediate (what a first transcription does);
* OpenCV: ``cv2.filter2D`` per filter and channel on the whitened-normalised image
  would not apply per-window normalisation, so it runs only the filtering part (k
  filters x 3 channels per image) and is timed on a subset of filters, scaled to k.

Each line gives images per second, the GEMM rate the machine reaches on the filtering
product alone (same shapes), and the ratio to ours.  Single process; set
OPENBLAS_NUM_THREADS to compare thread counts.
"""
from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

from terafeat.encoding.convolutional import ConvolutionalEncoder, contrast_normalize, image_windows
from terafeat.encoding.pooled_layer import pool_grid


def plain_encode(encoder: ConvolutionalEncoder, images: np.ndarray) -> np.ndarray:
    """The same features with whole-batch intermediates."""
    windows = image_windows(images, encoder.patch_size)
    n, P, d = windows.shape
    side = int(round(np.sqrt(P)))
    z = (contrast_normalize(windows.reshape(-1, d)) - encoder.mean) @ encoder.whitening \
        @ encoder.filters.T
    z = z.reshape(n, side, side, -1)
    maps = np.concatenate([np.maximum(z - encoder.alpha, 0), np.maximum(-z - encoder.alpha, 0)],
                          axis=3)
    return pool_grid(maps, encoder.grid)


def best_of(repeats: int, call) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    k, n_images = (400, 64) if args.quick else (1600, 128)
    p, side = 6, 32
    rng = np.random.default_rng(0)
    d = p * p * 3
    filters = rng.normal(size=(k, d)).astype(np.float32)
    filters /= np.linalg.norm(filters, axis=1, keepdims=True)
    whitening = (np.eye(d) + 0.05 * rng.normal(size=(d, d))).astype(np.float32)
    encoder = ConvolutionalEncoder(filters, whitening, np.zeros(d, np.float32), p)
    images = rng.random((n_images, side, side, 3), dtype=np.float32)
    positions = (side - p + 1) ** 2

    ours = best_of(3, lambda: encoder.transform(images))
    plain_batch = images[:16]
    plain = best_of(2, lambda: plain_encode(encoder, plain_batch)) * n_images / len(plain_batch)
    assert np.allclose(encoder.transform(plain_batch), plain_encode(encoder, plain_batch),
                       rtol=1e-4, atol=1e-2)
    A = rng.random((positions * 16, d + 1), dtype=np.float32)
    gemm = best_of(3, lambda: A @ encoder.weights_)
    gemm_rate = 2 * A.shape[0] * A.shape[1] * k / gemm / 1e9
    kernels = filters[:32].reshape(32, p, p, 3)
    cv_images = images[:8]

    def opencv():
        for image in cv_images:
            for kernel in kernels:
                for channel in range(3):
                    cv2.filter2D(image[:, :, channel], -1, kernel[:, :, channel])

    opencv_time = best_of(2, opencv) * (k / len(kernels)) * (n_images / len(cv_images))
    flops = 2 * positions * (d + 1) * k
    print(f"{k} filters of {p}x{p}x3 on {n_images} {side}x{side} images "
          f"({positions} windows each); machine GEMM on the filtering shape: "
          f"{gemm_rate:.1f} GFLOP/s")
    print(f"{'method':<34}{'images/s':>10}{'GFLOP/s eq.':>13}{'x ours':>9}")
    for name, seconds in (("ours (cache-blocked)", ours), ("plain (whole-batch arrays)", plain),
                          ("OpenCV filter2D (filtering only)", opencv_time)):
        print(f"{name:<34}{n_images / seconds:>10.1f}{flops * n_images / seconds / 1e9:>13.1f}"
              f"{seconds / ours:>9.2f}")
    print(f"ours reaches {flops * n_images / ours / 1e9 / gemm_rate:.0%} of the machine's GEMM "
          "rate counting only the filtering product")


if __name__ == "__main__":
    main()
