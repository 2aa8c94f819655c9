"""The locally connected network of ICML 2012 (Le et al.): untied local filters trained
with reconstruction TICA, L2 pooling over neighbouring units of a map, local contrast
normalisation; and the tiling of a layer's receptive-field grid for model parallelism.

Array layouts (all float32 by default, float64 available):

* frames: (n, H, W, c) images or maps, one per row of a data shard.
* a layer's input region: (rows, W, n, c), pixel-major, so that the patches of
  all locations come out as one (L, n, D) stack and the filters act as one
  batched matmul over locations (np.matmul over L), no Python loop over them.
* parameters V: (2, L, k, D): V[0] the encoding filters before normalisation
  (each (location, map) filter is used as ``V[0] / ||V[0]||``), V[1] the
  decoding filters W2.  L = locations (row-major over the grid), k = maps,
  D = field * field * c, in (c, field, field) order.

Objective of one layer on n frames (Le et al. 2012, reconstruction TICA)::

    J = (1/n) sum_i ||W2 W1^T x_i - x_i||^2 + (lam/n) sum_i sum_j sqrt(eps + H_j (W1^T x_i)^2)

W1^T x: the responses of the local filters; W2 maps them back to the image,
overlapping receptive fields adding up (the reconstruction couples
neighbouring locations).  H: sums of squares over ``pool x pool`` neighbouring
locations of the same map, every ``pool_stride`` locations.

Tiling: the grid's rows are split into contiguous bands (:class:`Tiling`).  A
tile computes its locations' responses and its partial reconstruction
(:func:`tile_forward`); neighbours exchange only the squared responses under
pooling units that cross the border and the partial reconstructions of the
pixel rows their receptive fields share; then each tile has its own exact
loss share and gradient (:func:`tile_backward`).  One tile is the
single-machine case, through the same code.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.ndimage import gaussian_filter

from terafeat.rica import normalize_rows, unit_norm_gradient
from terafeat.storage import save_arrays
from terafeat.validation import check_dtype

__all__ = ["LayerGeometry", "Tiling", "TileForward", "extract_patches", "overlap_add",
           "sum_pool", "sum_pool_adjoint", "l2_pool_maps", "local_mean", "contrast_parts",
           "local_contrast_normalize", "filter_and_pool",
           "initial_weights", "encoder_weights", "tile_region", "tile_forward", "tile_backward",
           "layer_objective", "encode_layer", "network_forward", "network_input", "save_network",
           "load_network", "stack_geometries", "unit_responses", "stage_responses", "random_network",
           "UNIT_KINDS", "LAMBDA", "EPS"]

#: Weight of the pooled sparsity term (ICML 2012).
LAMBDA = 0.1
#: Smoothing inside the pooling square root.
EPS = 1e-2


@dataclass(frozen=True)
class LayerGeometry:
    """One (filter, pool, LCN) stage: input (H, W, c), square receptive fields of side
    ``field`` every ``stride`` pixels, ``maps`` filters per location, L2 pooling over
    ``pool x pool`` locations every ``pool_stride``, LCN over ``lcn_size`` pixels."""

    input_shape: tuple[int, int, int]
    field: int
    stride: int
    maps: int
    pool: int = 3
    pool_stride: int = 1
    lcn_size: int = 5

    def __post_init__(self):
        H, W, c = (int(v) for v in self.input_shape)
        for name in ("field", "stride", "maps", "pool", "pool_stride", "lcn_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if min(H, W, c) < 1:
            raise ValueError(f"input_shape must be positive (H, W, c), got {self.input_shape}")
        if self.field > min(H, W):
            raise ValueError(f"receptive field {self.field} exceeds the input {H}x{W}")
        if self.pool > min(self.grid):
            raise ValueError(f"pool {self.pool} exceeds the grid of receptive fields {self.grid}")

    @property
    def grid(self) -> tuple[int, int]:
        """(rows, columns) of receptive fields."""
        H, W, _ = self.input_shape
        return (H - self.field) // self.stride + 1, (W - self.field) // self.stride + 1

    @property
    def n_locations(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def patch_dim(self) -> int:
        return self.field * self.field * self.input_shape[2]

    @property
    def covered(self) -> tuple[int, int]:
        """(rows, columns) of input pixels under some receptive field."""
        rows, cols = self.grid
        return (rows - 1) * self.stride + self.field, (cols - 1) * self.stride + self.field

    @property
    def pooled_grid(self) -> tuple[int, int]:
        rows, cols = self.grid
        return (rows - self.pool) // self.pool_stride + 1, (cols - self.pool) // self.pool_stride + 1

    @property
    def output_shape(self) -> tuple[int, int, int]:
        """(rows, columns, maps) of the stage's output (pooled, normalised)."""
        return (*self.pooled_grid, self.maps)

    @property
    def n_connections(self) -> int:
        """Input-to-unit connections of the local filters (each has its own weight)."""
        return self.n_locations * self.maps * self.patch_dim

    @property
    def n_parameters(self) -> int:
        """Encoding and decoding weights."""
        return 2 * self.n_connections

    def pixel_rows(self, a: int, b: int) -> tuple[int, int]:
        """Input pixel rows [start, stop) under the receptive fields of grid rows [a, b)."""
        return a * self.stride, (b - 1) * self.stride + self.field

    def units_touching(self, a: int, b: int) -> tuple[int, int]:
        """Pooling-unit rows [start, stop) whose windows overlap grid rows [a, b)."""
        p, ps = self.pool, self.pool_stride
        start = max(0, (a - p) // ps + 1)
        return start, max(start, min(self.pooled_grid[0], -(-b // ps)))

    def units_starting(self, a: int, b: int) -> tuple[int, int]:
        """Pooling-unit rows [start, stop) whose first grid row lies in [a, b)."""
        start = min(-(-a // self.pool_stride), self.pooled_grid[0])
        return start, max(start, min(self.pooled_grid[0], -(-b // self.pool_stride)))


def stack_geometries(input_shape: tuple[int, int, int], fields, strides, maps, pool: int = 3,
                     pool_stride: int = 1, lcn_size: int = 5) -> list[LayerGeometry]:
    """Stages stacked on an (H, W, c) input: stage i has ``fields[i]``, ``strides[i]``,
    ``maps[i]`` and takes stage i-1's output; a ValueError names the stage that does not fit."""
    if not len(fields) == len(strides) == len(maps):
        raise ValueError(f"fields, strides and maps need one entry per layer, got "
                         f"{len(fields)}, {len(strides)} and {len(maps)}")
    geometries, shape = [], tuple(input_shape)
    for i, (field, stride, k) in enumerate(zip(fields, strides, maps)):
        try:
            geometries.append(LayerGeometry(shape, int(field), int(stride), int(k), int(pool),
                                            int(pool_stride), int(lcn_size)))
        except ValueError as error:
            raise ValueError(f"layer {i + 1} (input {shape[0]}x{shape[1]}x{shape[2]}): {error}") \
                from None
        shape = geometries[-1].output_shape
    return geometries


class Tiling:
    """The grid rows of a layer split into ``n_tiles`` contiguous bands (model parallelism).

    Tile t owns grid rows ``bands[t] = (a, b)`` (all columns), their filters,
    the pooling units starting in them, and the input pixel rows from its first
    field's top to the next tile's (the last: to the bottom of the covered area).
    It reads the pixel rows under its fields (``pixel_rows(t)``).
    """

    def __init__(self, geometry: LayerGeometry, n_tiles: int):
        rows = geometry.grid[0]
        if not 1 <= int(n_tiles) <= rows:
            raise ValueError(f"partitions must be between 1 and the {rows} rows of the "
                             f"receptive-field grid, got {n_tiles}")
        self.geometry = geometry
        edges = np.linspace(0, rows, int(n_tiles) + 1).round().astype(int)
        self.bands = [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]

    def __len__(self) -> int:
        return len(self.bands)

    def pixel_rows(self, t: int) -> tuple[int, int]:
        return self.geometry.pixel_rows(*self.bands[t])

    def owned_pixel_rows(self, t: int) -> tuple[int, int]:
        start = self.bands[t][0] * self.geometry.stride
        stop = (self.bands[t + 1][0] * self.geometry.stride if t + 1 < len(self)
                else self.geometry.covered[0])
        return start, stop

    def needed_rows(self, t: int) -> tuple[int, int]:
        """Grid rows [start, stop) whose responses the pooling units touching tile t need,
        its own rows included."""
        a, b = self.bands[t]
        j0, j1 = self.geometry.units_touching(a, b)
        if j1 <= j0:
            return a, b
        ps, p = self.geometry.pool_stride, self.geometry.pool
        return min(a, j0 * ps), max(b, (j1 - 1) * ps + p)

    @cached_property
    def response_sends(self) -> dict[int, list[tuple[int, int, int]]]:
        """{t: [(u, start, stop)]}: grid rows of t's squared responses that tile u needs."""
        sends = {t: [] for t in range(len(self))}
        for t, (a, b) in enumerate(self.bands):
            for u in range(len(self)):
                lo, hi = self.needed_rows(u)
                if u != t and max(a, lo) < min(b, hi):
                    sends[t].append((u, max(a, lo), min(b, hi)))
        return sends

    @cached_property
    def reconstruction_sends(self) -> dict[int, list[tuple[int, int, int]]]:
        """{t: [(u, start, stop)]}: pixel rows where t's and u's fields overlap; t sends
        u its partial reconstruction there."""
        sends = {t: [] for t in range(len(self))}
        for t in range(len(self)):
            a, b = self.pixel_rows(t)
            for u in range(len(self)):
                lo, hi = self.pixel_rows(u)
                if u != t and max(a, lo) < min(b, hi):
                    sends[t].append((u, max(a, lo), min(b, hi)))
        return sends

    def neighbours(self, t: int) -> list[int]:
        """Tiles that send to tile t."""
        return sorted({u for u in range(len(self))
                       for v, _, _ in self.response_sends[u] + self.reconstruction_sends[u]
                       if v == t})

    def border_bytes(self, n_frames: int, itemsize: int) -> int:
        """Bytes all tiles send each other in one step over ``n_frames`` frames."""
        g = self.geometry
        per_response_row = g.grid[1] * g.maps * n_frames * itemsize
        per_pixel_row = g.covered[1] * g.input_shape[2] * n_frames * itemsize
        return sum((stop - start) * per_response_row for sends in self.response_sends.values()
                   for _, start, stop in sends) + \
            sum((stop - start) * per_pixel_row for sends in self.reconstruction_sends.values()
                for _, start, stop in sends)


# ----------------------------------------------------------------------------- building blocks

def extract_patches(region: np.ndarray, field: int, stride: int, rows: int, cols: int) -> np.ndarray:
    """Patches of a (P, Q, n, c) region at ``rows x cols`` locations: (rows*cols, n, c*field*field)."""
    windows = sliding_window_view(region, (field, field), axis=(0, 1))
    windows = windows[:(rows - 1) * stride + 1:stride, :(cols - 1) * stride + 1:stride]
    n, c = region.shape[2:]
    return windows.reshape(rows * cols, n, c * field * field)


def overlap_add(patches: np.ndarray, field: int, stride: int, rows: int, cols: int, c: int) -> np.ndarray:
    """Adjoint of :func:`extract_patches`: (rows*cols, n, c*field*field) patches summed into
    a ((rows-1)*stride+field, (cols-1)*stride+field, n, c) region."""
    n = patches.shape[1]
    blocks = patches.reshape(rows, cols, n, c, field, field)
    region = np.zeros(((rows - 1) * stride + field, (cols - 1) * stride + field, n, c),
                      dtype=patches.dtype)
    for u in range(field):
        for v in range(field):
            region[u:u + (rows - 1) * stride + 1:stride,
                   v:v + (cols - 1) * stride + 1:stride] += blocks[..., u, v]
    return region


def sum_pool(values: np.ndarray, size: int, stride: int) -> np.ndarray:
    """Sums over ``size x size`` windows every ``stride`` of a (R, C, ...) grid:
    ((R-size)//stride+1, (C-size)//stride+1, ...)."""
    R, C = values.shape[:2]
    out_rows, out_cols = (R - size) // stride + 1, (C - size) // stride + 1
    pooled = np.zeros((out_rows, out_cols, *values.shape[2:]), dtype=values.dtype)
    for u in range(size):
        for v in range(size):
            pooled += values[u:u + (out_rows - 1) * stride + 1:stride,
                             v:v + (out_cols - 1) * stride + 1:stride]
    return pooled


def sum_pool_adjoint(pooled: np.ndarray, size: int, stride: int, shape: tuple[int, int]) -> np.ndarray:
    """Adjoint of :func:`sum_pool`: each unit's value added to the (R, C) = ``shape``
    grid positions under its window."""
    out_rows, out_cols = pooled.shape[:2]
    values = np.zeros((*shape, *pooled.shape[2:]), dtype=pooled.dtype)
    for u in range(size):
        for v in range(size):
            values[u:u + (out_rows - 1) * stride + 1:stride,
                   v:v + (out_cols - 1) * stride + 1:stride] += pooled
    return values


def l2_pool_maps(responses: np.ndarray, size: int, stride: int, eps: float) -> np.ndarray:
    """L2 pooling of each map over neighbouring locations: (R, C, n, k) responses ->
    ``sqrt(eps + sum_window responses^2)`` of shape (R', C', n, k)."""
    pooled = sum_pool(responses * responses, size, stride)
    pooled += eps
    return np.sqrt(pooled, out=pooled)


def local_mean(values: np.ndarray, size: int, adjoint: bool = False) -> np.ndarray:
    """Gaussian-weighted local mean over axes 1, 2 of (n, h, w) values, about ``size``
    wide; windows are cut at the borders and renormalised.  ``adjoint``: the transposed
    operator (for gradients)."""
    sigma = max(size / 4.0, 0.5)
    options = dict(sigma=sigma, mode="constant", truncate=(size // 2) / sigma)
    weight = gaussian_filter(np.ones(values.shape[1:], dtype=values.dtype), **options)
    if adjoint:
        return gaussian_filter(values / weight, axes=(1, 2), **options)
    return gaussian_filter(values, axes=(1, 2), **options) / weight


def contrast_parts(maps: np.ndarray, size: int, floor: float = 1e-4):
    """(centred (n, h, w, c), spread (n, h, w), mean spread (n, 1, 1), divisor (n, h, w))
    of :func:`local_contrast_normalize`."""
    centred = maps - local_mean(maps.mean(axis=3), size)[..., None]
    spread = np.sqrt(np.maximum(local_mean((centred * centred).mean(axis=3), size), 0))
    mean_spread = spread.mean(axis=(1, 2), keepdims=True)
    return centred, spread, mean_spread, np.maximum(np.maximum(spread, mean_spread), floor)


def local_contrast_normalize(maps: np.ndarray, size: int, floor: float = 1e-4) -> np.ndarray:
    """Subtractive then divisive local contrast normalisation of (n, h, w, c) maps
    (Jarrett et al. 2009), over a Gaussian window about ``size`` wide and all maps.

    ``v = x - G*mean_c(x)``; ``sigma = sqrt(G*mean_c(v^2))``;
    ``y = v / max(mean(sigma), sigma, floor)``, the mean over each frame; G:
    :func:`local_mean`.
    """
    centred, _, _, divisor = contrast_parts(maps, size, floor)
    return (centred / divisor[..., None]).astype(maps.dtype, copy=False)


# ----------------------------------------------------------------------------- weights

def initial_weights(geometry: LayerGeometry, rows: tuple[int, int], seed: int,
                    dtype=np.float32) -> np.ndarray:
    """V (2, L_t, k, D) for grid rows [a, b): each grid row's weights from its own seeded
    stream, so a tile draws exactly its part of the full layer's start.  Both halves
    are N(0, 1/D): Adagrad moves each weight by about the learning rate per step, so
    encoding weights of scale 1 (their norm ~ sqrt(D)) would barely turn the
    normalised filters, and training would fit the decoder alone."""
    dtype = check_dtype(dtype)
    cols, k, D = geometry.grid[1], geometry.maps, geometry.patch_dim
    blocks = [np.random.default_rng([int(seed), row]).standard_normal((2, cols, k, D))
              for row in range(*rows)]
    V = np.concatenate(blocks, axis=1)
    V *= 1.0 / math.sqrt(D)
    return V.astype(dtype)


def encoder_weights(V: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(W1 (L, k, D) with unit-norm filters, norms (L*k, 1)) from V (2, L, k, D)."""
    L, k, D = V.shape[1:]
    W1, norms = normalize_rows(V[0].reshape(L * k, D))
    return W1.reshape(L, k, D), norms


# ----------------------------------------------------------------------------- tile objective

def tile_region(frames: np.ndarray, geometry: LayerGeometry, pixel_rows: tuple[int, int]) -> np.ndarray:
    """The (rows, W_covered, n, c) input region of frames (n, H, W, c) that a tile reads."""
    start, stop = pixel_rows
    return np.ascontiguousarray(frames[:, start:stop, :geometry.covered[1]].transpose(1, 2, 0, 3))


@dataclass
class TileForward:
    """What a tile keeps between its forward and backward pass of one step."""

    region: np.ndarray          # (P_t, Wc, n, c) input
    patches: np.ndarray         # (L_t, n, D)
    W1: np.ndarray              # (L_t, k, D)
    norms: np.ndarray           # (L_t*k, 1)
    responses: np.ndarray       # (L_t, n, k)
    reconstruction: np.ndarray  # (P_t, Wc, n, c), this tile's part


def tile_forward(V: np.ndarray, region: np.ndarray, tiling: Tiling, t: int):
    """Tile t's responses and partial reconstruction; returns (TileForward, outgoing)
    with outgoing ``{u: (squared responses (rows, cols, n, k), reconstruction rows
    (rows, Wc, n, c))}``: exactly what neighbour u needs from t."""
    g = tiling.geometry
    a, b = tiling.bands[t]
    W1, norms = encoder_weights(V)
    patches = extract_patches(region, g.field, g.stride, b - a, g.grid[1])
    responses = np.matmul(patches, W1.transpose(0, 2, 1))
    reconstruction = overlap_add(np.matmul(responses, V[1]), g.field, g.stride, b - a, g.grid[1],
                                 g.input_shape[2])
    squares = (responses * responses).reshape(b - a, g.grid[1], *responses.shape[1:])
    p0 = tiling.pixel_rows(t)[0]
    outgoing = {}
    for u, lo, hi in tiling.response_sends[t]:
        outgoing.setdefault(u, [None, None])[0] = squares[lo - a:hi - a]
    for u, lo, hi in tiling.reconstruction_sends[t]:
        outgoing.setdefault(u, [None, None])[1] = reconstruction[lo - p0:hi - p0]
    return (TileForward(region, patches, W1, norms, responses, reconstruction),
            {u: tuple(pair) for u, pair in outgoing.items()})


def tile_backward(V: np.ndarray, forward: TileForward, incoming: dict, tiling: Tiling, t: int,
                  lam: float = LAMBDA, eps: float = EPS) -> tuple[float, np.ndarray]:
    """Tile t's share of J and dJ/dV (2, L_t, k, D), given ``incoming`` {u: what
    :func:`tile_forward` of tile u sent t}.  The shares of all tiles sum to J and
    concatenate (along L) to dJ/dV of the whole layer."""
    g = tiling.geometry
    a, b = tiling.bands[t]
    cols, n, k = g.grid[1], forward.responses.shape[1], g.maps
    dtype = forward.responses.dtype
    # pooled sparsity: squared responses over the rows the touching pooling units need
    lo, hi = tiling.needed_rows(t)
    squares = np.zeros((hi - lo, cols, n, k), dtype=dtype)
    squares[a - lo:b - lo] = (forward.responses ** 2).reshape(b - a, cols, n, k)
    for u, (rows, _) in incoming.items():
        for v, start, stop in tiling.response_sends[u]:
            if v == t:
                squares[start - lo:stop - lo] = rows
    j0, j1 = g.units_touching(a, b)
    d_responses = np.zeros_like(forward.responses)
    sparsity = 0.0
    if j1 > j0:
        first = j0 * g.pool_stride - lo
        pooled = np.sqrt(eps + sum_pool(squares[first:], g.pool, g.pool_stride)[:j1 - j0])
        own0, own1 = g.units_starting(a, b)
        sparsity = float(pooled[own0 - j0:own1 - j0].sum(dtype=np.float64))
        spread = sum_pool_adjoint(lam / pooled, g.pool, g.pool_stride, (hi - lo - first, cols))
        scale = np.zeros((hi - lo, cols, n, k), dtype=dtype)
        scale[first:first + spread.shape[0]] = spread
        d_responses += forward.responses * scale[a - lo:b - lo].reshape(-1, n, k)
    # reconstruction: add the neighbours' parts on the shared pixel rows
    reconstruction = forward.reconstruction.copy()
    p0 = tiling.pixel_rows(t)[0]
    for u, (_, rows) in incoming.items():
        for v, start, stop in tiling.reconstruction_sends[u]:
            if v == t:
                reconstruction[start - p0:stop - p0] += rows
    residual = reconstruction - forward.region
    own_lo, own_hi = tiling.owned_pixel_rows(t)
    error = float(np.square(residual[own_lo - p0:own_hi - p0], dtype=np.float64).sum())
    residual_patches = extract_patches(residual, g.field, g.stride, b - a, cols)
    residual_patches *= 2
    d_responses += np.matmul(residual_patches, V[1].transpose(0, 2, 1))
    grad = np.empty_like(V)
    grad[1] = np.matmul(forward.responses.transpose(0, 2, 1), residual_patches)
    dW1 = np.matmul(d_responses.transpose(0, 2, 1), forward.patches)
    L, D = V.shape[1], V.shape[3]
    grad[0] = unit_norm_gradient(dW1.reshape(L * k, D), forward.W1.reshape(L * k, D),
                                 forward.norms).reshape(L, k, D)
    grad *= dtype.type(1.0 / n)
    return (error + lam * sparsity) / n, grad


def layer_objective(V: np.ndarray, frames: np.ndarray, geometry: LayerGeometry,
                    n_tiles: int = 1, lam: float = LAMBDA, eps: float = EPS) -> tuple[float, np.ndarray]:
    """J and dJ/dV (2, L, k, D) of one layer on frames (n, H, W, c), computed by
    ``n_tiles`` tiles in this process exchanging their borders."""
    tiling = Tiling(geometry, n_tiles)
    forwards, mail = [], {t: {} for t in range(n_tiles)}
    for t, (a, b) in enumerate(tiling.bands):
        forward, outgoing = tile_forward(V[:, a * geometry.grid[1]:b * geometry.grid[1]],
                                         tile_region(frames, geometry, tiling.pixel_rows(t)),
                                         tiling, t)
        forwards.append(forward)
        for u, message in outgoing.items():
            mail[u][t] = message
    shares = [tile_backward(V[:, a * geometry.grid[1]:b * geometry.grid[1]], forwards[t], mail[t],
                            tiling, t, lam, eps) for t, (a, b) in enumerate(tiling.bands)]
    return sum(value for value, _ in shares), np.concatenate([grad for _, grad in shares], axis=1)


# ----------------------------------------------------------------------------- inference

def encode_layer(frames: np.ndarray, W1: np.ndarray, geometry: LayerGeometry,
                 eps: float = EPS, chunk: int = 64) -> np.ndarray:
    """One trained stage on frames (n, H, W, c): local filters W1 (L, k, D), L2 pooling,
    LCN.  Returns (n, *geometry.output_shape) in W1's dtype, ``chunk`` frames at a time."""
    g = geometry
    if frames.shape[1:] != tuple(g.input_shape):
        raise ValueError(f"frames of shape {frames.shape[1:]} do not match the layer's input "
                         f"{tuple(g.input_shape)}")
    outputs = [local_contrast_normalize(filter_and_pool(frames[start:start + chunk], W1, g, eps)[1],
                                        g.lcn_size) for start in range(0, len(frames), chunk)]
    return np.concatenate(outputs)


def filter_and_pool(frames: np.ndarray, W1: np.ndarray, geometry: LayerGeometry,
                    eps: float = EPS) -> tuple[np.ndarray, np.ndarray]:
    """(responses (L, n, k), L2-pooled maps (n, rows, cols, k)) of frames (n, H, W, c)."""
    g = geometry
    region = tile_region(frames.astype(W1.dtype, copy=False), g, (0, g.covered[0]))
    responses = np.matmul(extract_patches(region, g.field, g.stride, *g.grid), W1.transpose(0, 2, 1))
    pooled = l2_pool_maps(responses.reshape(*g.grid, *responses.shape[1:]), g.pool,
                          g.pool_stride, eps)
    return responses, pooled.transpose(2, 0, 1, 3)


def network_forward(frames: np.ndarray, layers, eps: float = EPS, chunk: int = 64) -> np.ndarray:
    """Frames (n, H, W, c) through trained stages [(geometry, V)]: the top stage's
    output (n, rows, cols, maps)."""
    for geometry, V in layers:
        frames = encode_layer(frames, encoder_weights(V)[0], geometry, eps, chunk)
    return frames


def network_input(images: np.ndarray, lcn_size: int, dtype=np.float32) -> np.ndarray:
    """Grey images (n, h, w) as the network's input: local contrast normalised (n, h, w, 1)."""
    images = np.asarray(images, dtype=check_dtype(dtype))
    if images.ndim != 3:
        raise ValueError(f"expected grey images (n, h, w), got shape {images.shape}")
    return local_contrast_normalize(images[..., None], lcn_size)


_GEOMETRY_FIELDS = ("field", "stride", "maps", "pool", "pool_stride", "lcn_size")


def save_network(path, layers) -> None:
    """Write stages [(geometry, V)] to one .npz file, atomically."""
    arrays = {}
    for i, (geometry, V) in enumerate(layers):
        arrays[f"V{i}"] = V
        arrays[f"geometry{i}"] = np.array([*geometry.input_shape,
                                           *(getattr(geometry, name) for name in _GEOMETRY_FIELDS)])
    save_arrays(path, arrays)


def load_network(path) -> list[tuple[LayerGeometry, np.ndarray]]:
    """The stages written by :func:`save_network`."""
    with np.load(path) as saved:
        layers = []
        for i in range(sum(name.startswith("V") for name in saved.files)):
            numbers = [int(v) for v in saved[f"geometry{i}"]]
            geometry = LayerGeometry(tuple(numbers[:3]), **dict(zip(_GEOMETRY_FIELDS, numbers[3:])))
            layers.append((geometry, saved[f"V{i}"]))
    return layers


#: The top stage's units that can be scored: its local filters' responses W1^T x
#: (simple units, signed), or its outputs after L2 pooling and LCN.
UNIT_KINDS = ("simple", "output")


def stage_responses(images: np.ndarray, layers, chunk: int = 64) -> list[dict[str, np.ndarray]]:
    """Every stage's units on grey images (n, H, W) (made network input as in training):
    one dict per stage, {"simple": (n, L * k) local filter responses, unit index =
    location * k + map, "output": (n, rows * cols * k) pooled, normalised outputs,
    index = (row * cols + col) * k + map}."""
    frames = network_input(images, layers[0][0].lcn_size, layers[0][1].dtype)
    stages = []
    for geometry, V in layers:
        W1 = encoder_weights(V)[0]
        simple, outputs = [], []
        for start in range(0, len(frames), chunk):
            responses, pooled = filter_and_pool(frames[start:start + chunk], W1, geometry)
            simple.append(responses.transpose(1, 0, 2).reshape(len(pooled), -1))
            outputs.append(local_contrast_normalize(pooled, geometry.lcn_size))
        frames = np.concatenate(outputs)
        stages.append({"simple": np.concatenate(simple),
                       "output": frames.reshape(len(frames), -1)})
    return stages


def unit_responses(images: np.ndarray, layers, kind: str = "simple", chunk: int = 64) -> np.ndarray:
    """Top-stage units' responses to grey images (n, H, W) of ``kind`` ("simple" or
    "output"), indexed as in :func:`stage_responses`."""
    if kind not in UNIT_KINDS:
        raise ValueError(f"kind must be one of {UNIT_KINDS}, got {kind!r}")
    return stage_responses(images, layers, chunk)[-1][kind]


def random_network(geometries, seed: int, dtype=np.float32) -> list[tuple[LayerGeometry, np.ndarray]]:
    """Untrained stages [(geometry, V)] of the given shapes: the weights that training
    with ``seed`` starts each stage from (:func:`initial_weights`); the baseline
    network of the same shape."""
    return [(g, initial_weights(g, (0, g.grid[0]), seed, dtype)) for g in geometries]
