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

import numpy as np

from terafeat.learning.rica import normalize_rows, unit_norm_gradient
from terafeat.locally_connected.geometry import LayerGeometry, Tiling
from terafeat.locally_connected.maps import extract_patches, overlap_add, sum_pool, sum_pool_adjoint
from terafeat.validation import check_dtype

#: Weight of the pooled sparsity term (ICML 2012).
LAMBDA = 0.1
#: Smoothing inside the pooling square root.
EPS = 1e-2

# ----------------------------------------------------------------------------- weights

def initial_weights(geometry: LayerGeometry, rows: tuple[int, int], random_state: int,
                    dtype=np.float32) -> np.ndarray:
    """V (2, L_t, k, D) for grid rows [a, b): each grid row's weights from its own seeded
    stream, so a tile draws exactly its part of the full layer's start.  Both halves
    are N(0, 1/D): Adagrad moves each weight by about the learning rate per step, so
    encoding weights of scale 1 (their norm ~ sqrt(D)) would barely turn the
    normalised filters, and training would fit the decoder alone."""
    dtype = check_dtype(dtype)
    cols, k, D = geometry.grid[1], geometry.maps, geometry.patch_dim
    blocks = [np.random.default_rng([int(random_state), row]).standard_normal((2, cols, k, D))
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


