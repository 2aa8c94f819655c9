"""Single-layer convolutional features in the Coates–Ng style, with a learned filter bank.

Every patch_size x patch_size window of an image (every ``stride`` pixels; the image first converted to
a colour space of :mod:`terafeat.media.colour`) is contrast-normalised, whitened and
filtered; the responses go through a non-linearity and are pooled (sum, or L2: root of
the summed squares) over a grid of cells (2x2: the four quadrants), or over the centre
of a 3x3 grid and its surround (PCam labels a tile by its central third).
Normalisation, whitening and filtering are folded into one (d + 1, k) matrix; each
pooling cell's windows are filtered in cache-sized chunks, so the non-linearity and the
pooling sums run in the cache.  Those small products run on one BLAS thread (a threaded
BLAS spins on them when the cores are busy); the images of a call are spread over the
faster, as measured, of one thread and all (``terafeat.blas.FasterThreadCount``), and
each image's features do not depend on which.
"""
from __future__ import annotations

import functools

import numpy as np

from terafeat.blas import FasterThreadCount, blas_threads, one_blas_thread, thread_pool
from terafeat.media.colour import convert_tiles
from terafeat.media.images import check_choice
from terafeat.media.patches import dense_patches

NONLINEARITIES = ("split", "abs", "smooth_l1")
POOLINGS = ("sum", "l2")
#: Pooling layouts: ``grid`` x ``grid`` cells, or the centre cell of a 3x3 grid + the rest.
LAYOUTS = ("grid", "centre_surround")
#: Coates et al. add 10 to the patch variance of 0-255 pixels; ours are in [0, 1].
NORM_EPS = 10 / 255 ** 2


@functools.cache
def _image_threads() -> FasterThreadCount:
    """This process's choice between one thread and the BLAS threads in force at the first
    encoding, for encoding images (each image on one thread, one BLAS thread each)."""
    return FasterThreadCount(blas_threads())


def contrast_normalize(patches: np.ndarray, eps: float = NORM_EPS) -> np.ndarray:
    """Each row minus its mean, divided by sqrt(its variance + eps): (m, d) -> new (m, d).

    eps is in squared pixel units of [0, 1] images (default: Coates et al.'s 10
    for 0-255 pixels); it keeps flat patches from being blown up to noise.
    """
    patches = np.asarray(patches)
    out = patches - patches.mean(axis=1, keepdims=True)
    out /= np.sqrt(np.square(out).mean(axis=1, keepdims=True) + eps)
    return out


def image_windows(images: np.ndarray, patch_size: int) -> np.ndarray:
    """All stride-1 windows of a stack of images (n, h, w, c), flattened in
    :func:`terafeat.media.patches.dense_patches` order: (n, rows * cols, patch_size**2 * c)."""
    return np.stack([dense_patches(image, patch_size).reshape(-1, patch_size ** 2 * image.shape[2])
                     for image in images])


class ConvolutionalEncoder:
    """Encode images with a filter bank learned on whitened, contrast-normalised patches.

    Parameters
    ----------
    filters : (k, d_white) filters in the whitened space (e.g. RICA's ``W``).
    whitening : (d, d_white) whitening matrix; ``mean`` (d,) subtracted first.
    patch_size : window side in pixels; d = patch_size**2 * channels.
    nonlinearity : "split" (Coates–Ng soft threshold: [max(z - alpha, 0),
        max(-z - alpha, 0)], 2k maps), "abs" (|z|, k maps) or "smooth_l1"
        (sqrt(smoothing + z^2), RICA's own penalty, k maps).
    alpha : soft threshold of "split" (in whitened units).
    grid : pooling grid per side (2: quadrants), layout "grid".
    layout : "grid" (grid**2 cells) or "centre_surround" (2 cells: the central cell of a
        3x3 grid, then the other eight together).
    colour_mode : images (RGB) are converted to this colour space first
        (``terafeat.media.colour.convert_tiles``: "rgb", "hed", "he", "grey").
    pooling : "sum" over each cell, or "l2" (square root of the sum of squares).
    smoothing : the eps of "smooth_l1".
    norm_eps : see :func:`contrast_normalize`.
    stride : pixels between two windows along each axis (1: every window).
    chunk : windows filtered per matrix product; small enough that a (chunk, k)
        block of responses stays in the CPU cache for the element-wise passes.
    """

    def __init__(self, filters, whitening, mean, patch_size: int, nonlinearity: str = "split",
                 alpha: float = 0.25, grid: int = 2, norm_eps: float = NORM_EPS,
                 chunk: int = 128, pooling: str = "sum", smoothing: float = 1e-2,
                 layout: str = "grid", colour_mode: str = "rgb", stride: int = 1):
        check_choice("nonlinearity", nonlinearity, NONLINEARITIES)
        check_choice("pooling", pooling, POOLINGS)
        check_choice("layout", layout, LAYOUTS)
        filters = np.asarray(filters, dtype=np.float32)
        whitening = np.asarray(whitening, dtype=np.float32)
        if whitening.shape[1] != filters.shape[1]:
            raise ValueError(f"filters of {filters.shape[1]} dims do not fit a whitening "
                             f"matrix with {whitening.shape[1]} outputs")
        mean = np.asarray(mean, dtype=np.float32)
        self.filters, self.whitening, self.mean = filters, whitening, mean
        combined = whitening @ filters.T  # (d, k)
        bias = -mean @ combined
        self.weights_ = np.vstack([combined, bias[None, :]])  # (d + 1, k); last row: bias
        self.patch_size = patch_size
        self.nonlinearity = nonlinearity
        self.alpha = float(alpha)
        self.grid = grid
        self.norm_eps = norm_eps
        self.chunk = chunk
        self.pooling = pooling
        self.smoothing = float(smoothing)
        self.layout = layout
        if int(stride) < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        self.stride = int(stride)
        self.colour_mode = colour_mode

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Everything :meth:`from_arrays` needs (for ``np.savez``)."""
        return {"filters": self.filters, "whitening": self.whitening, "mean": self.mean,
                "patch_size": np.array(self.patch_size), "nonlinearity": np.array(self.nonlinearity),
                "alpha": np.array(self.alpha), "grid": np.array(self.grid),
                "norm_eps": np.array(self.norm_eps), "pooling": np.array(self.pooling),
                "smoothing": np.array(self.smoothing), "layout": np.array(self.layout),
                "colour_mode": np.array(self.colour_mode), "stride": np.array(self.stride)}

    @classmethod
    def from_arrays(cls, arrays) -> "ConvolutionalEncoder":
        """Inverse of :meth:`to_arrays` (accepts an ``np.load`` of a saved .npz)."""
        return cls(arrays["filters"], arrays["whitening"], arrays["mean"],
                   int(arrays["patch_size"]), str(arrays["nonlinearity"]),
                   float(arrays["alpha"]), int(arrays["grid"]), float(arrays["norm_eps"]),
                   pooling=str(arrays["pooling"]), smoothing=float(arrays["smoothing"]),
                   **{key: str(arrays[key]) for key in ("layout", "colour_mode")
                      if key in arrays},
                   stride=int(arrays["stride"]) if "stride" in arrays else 1)

    @property
    def n_cells(self) -> int:
        """Pooling cells per image: grid**2, or 2 for "centre_surround"."""
        return 2 if self.layout == "centre_surround" else self.grid ** 2

    @property
    def n_outputs(self) -> int:
        """Features per image: n_cells x (2k for "split", k for "abs")."""
        k = self.weights_.shape[1]
        return self.n_cells * k * (2 if self.nonlinearity == "split" else 1)

    def transform(self, images) -> np.ndarray:
        """images (n, h, w, c) in [0, 1] (float) or uint8 -> (n, n_outputs) float32.

        Output columns: cell-major, then (positive maps, negative maps) for "split".
        """
        images = np.asarray(images)
        if images.ndim != 4:
            raise ValueError(f"expected images (n, h, w, c), got shape {images.shape}")
        if images.dtype == np.uint8:
            images = images.astype(np.float32) / 255
        if self.colour_mode != "rgb":
            images = convert_tiles(images, self.colour_mode)
        d = self.patch_size ** 2 * images.shape[3]
        if d + 1 != self.weights_.shape[0]:
            raise ValueError(f"{images.shape[3]}-channel images give {d}-dim patches; the "
                             f"encoder was fitted on {self.weights_.shape[0] - 1}-dim ones")
        n = len(images)
        out = np.empty((n, self.n_cells, self.n_outputs // self.n_cells), np.float32)
        if n == 0:
            return out.reshape(0, self.n_outputs)
        with _image_threads().timed(units=n) as n_threads, one_blas_thread():
            bounds = np.linspace(0, n, min(n_threads, n) + 1).astype(int)
            list(thread_pool(n_threads).map(
                lambda start, stop: self._encode(images[start:stop], out[start:stop]),
                bounds[:-1], bounds[1:]))
        if self.pooling == "l2":
            np.sqrt(out, out=out)
        return out.reshape(n, -1)

    def _encode(self, images: np.ndarray, out: np.ndarray) -> None:
        """The pooled sums of images (n, h, w, c) into ``out`` (n, cells, maps) in place."""
        n, h, w, c = images.shape
        d = self.patch_size ** 2 * c
        rows, cols = (-(-(side - self.patch_size + 1) // self.stride) for side in (h, w))
        chunks = cell_chunks(rows, cols, self.grid, self.chunk, self.layout)
        k = self.weights_.shape[1]
        buffers = np.empty((2, max(len(rows) for _, rows in chunks), k), np.float32)
        for i in range(n):
            windows = dense_patches(images[i].astype(np.float32, copy=False),
                                    self.patch_size, self.stride).reshape(-1, d)
            patches = np.ones((len(windows), d + 1), np.float32)
            patches[:, :d] = contrast_normalize(windows, self.norm_eps)
            out[i] = 0
            for cell, rows in chunks:
                self._pool_chunk(patches[rows], out[i, cell], buffers[:, :len(rows)])

    def _pool_chunk(self, patches: np.ndarray, pooled: np.ndarray, buffers: np.ndarray) -> None:
        """Add the pooled responses of (m, d + 1) patches of one cell to ``pooled`` in place
        (for L2 pooling: their squares; the root is taken once the cell is complete).

        The chunk is small enough for the cache, so the element-wise passes stay there.
        """
        responses, spare = buffers
        np.matmul(patches, self.weights_, out=responses)
        k, m = self.weights_.shape[1], len(patches)
        if self.nonlinearity == "split" and self.pooling == "sum":
            # sum max(z - a, 0) = sum max(z, a) - m a;  sum max(-z - a, 0) = -sum min(z, -a) - m a
            pooled[:k] += np.maximum(responses, self.alpha, out=spare).sum(axis=0) - m * self.alpha
            pooled[k:] -= np.minimum(responses, -self.alpha, out=spare).sum(axis=0) + m * self.alpha
            return
        for part, maps in enumerate(self._maps(responses, spare)):
            if self.pooling == "l2":
                np.square(maps, out=maps)
            pooled[part * k:(part + 1) * k] += maps.sum(axis=0)

    def _maps(self, responses: np.ndarray, spare: np.ndarray) -> list[np.ndarray]:
        """The non-linearity's maps of (m, k) responses, computed in place in the two buffers."""
        if self.nonlinearity == "abs":
            return [np.abs(responses, out=responses)]
        if self.nonlinearity == "smooth_l1":
            np.square(responses, out=responses)
            responses += self.smoothing
            return [np.sqrt(responses, out=responses)]
        positive = np.subtract(responses, self.alpha, out=spare)
        np.maximum(positive, 0, out=positive)
        negative = np.negative(responses, out=responses)
        negative -= self.alpha
        return [positive, np.maximum(negative, 0, out=negative)]


def cell_chunks(rows: int, cols: int, grid: int, chunk: int,
                layout: str = "grid") -> list[tuple[int, np.ndarray]]:
    """(cell, window indices) pairs covering a rows x cols map cell by cell, at most
    ``chunk`` windows each; cells row-major, split as :func:`numpy.array_split` does
    (layout "centre_surround": cell 0 the centre of a 3x3 split, cell 1 the rest)."""
    side = 3 if layout == "centre_surround" else grid
    if not 1 <= side <= min(rows, cols):
        raise ValueError(f"a {side}x{side} pooling grid does not fit {rows}x{cols} maps")
    index = np.arange(rows * cols).reshape(rows, cols)
    cells = [index[np.ix_(row_part, col_part)].ravel()
             for row_part in np.array_split(np.arange(rows), side)
             for col_part in np.array_split(np.arange(cols), side)]
    if layout == "centre_surround":
        cells = [cells[4], np.sort(np.concatenate(cells[:4] + cells[5:]))]
    return [(cell, part) for cell, windows in enumerate(cells)
            for part in np.array_split(windows, -(-len(windows) // chunk))]
