"""Geometry of a locally connected layer (receptive-field grid, pooling, sizes) and the tiling
of its grid into bands of rows for model parallelism."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np


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


