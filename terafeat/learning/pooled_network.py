"""A small stack of RICA simple units + L2 pooling over whole frames, with
optional contrast normalisation, trained greedily without labels; forward
and input gradient of any output unit (for its optimal stimulus).

The ICML 2012 network stacks three stages of (local filtering, L2 pooling,
local contrast normalisation) over 200 x 200 frames.  At our scale the
frames are small (about 20 x 20) and the filters see the whole frame, so the
"local" contrast normalisation becomes a normalisation over all the units of
a frame: subtract their mean, divide by their standard deviation.

A network is a list of stages, each with ``forward(X) -> (Y, cache)`` and
``backward(cache, dY) -> dX`` over rows X (m, d_in), Y (m, d_out).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from terafeat.learning.pooling import l2_pool, subspace_pooling
from terafeat.learning.rica import RICA
from terafeat.learning.whitening import Whitener

__all__ = [
    "ContrastNorm",
    "PooledNetwork",
    "PooledStage",
    "WhitenStage",
    "assemble_pooled_network",
    "fit_layer_whitener",
    "fit_pooled_network",
    "frame_rows",
    "next_layer_input",
]


@dataclass
class ContrastNorm:
    """Per row: ``(x - mean(x)) / sqrt(var(x) + c)`` over its d entries."""

    c: float = 1e-2

    def forward(self, X: np.ndarray):
        centred = X - X.mean(axis=1, keepdims=True)
        scale = np.sqrt(np.mean(centred ** 2, axis=1, keepdims=True) + self.c)
        return centred / scale, (centred, scale)

    def backward(self, cache, dY: np.ndarray) -> np.ndarray:
        centred, scale = cache
        d = centred.shape[1]
        dU = dY / scale - centred * np.sum(dY * centred, axis=1, keepdims=True) / (d * scale ** 3)
        return dU - dU.mean(axis=1, keepdims=True)


@dataclass
class WhitenStage:
    """A fitted ``Whitener`` (its per-row DC removal included) as a stage."""

    whitener: Whitener

    def forward(self, X: np.ndarray):
        return self.whitener.transform(X), None

    def backward(self, cache, dY: np.ndarray) -> np.ndarray:
        dX = dY @ self.whitener.whitening_.T
        return dX - dX.mean(axis=1, keepdims=True) if self.whitener.remove_dc else dX


@dataclass
class PooledStage:
    """Simple units ``Z = X W^T`` (W: (k, d)), pooled ``sqrt(eps + Z^2 V^T)`` (V: (p, k))."""

    W: np.ndarray
    pool: np.ndarray
    eps: float

    def forward(self, X: np.ndarray):
        Z = X @ self.W.T
        pooled = l2_pool(Z, self.pool, self.eps)
        return pooled, (Z, pooled)

    def backward(self, cache, dY: np.ndarray) -> np.ndarray:
        Z, pooled = cache
        return ((dY / pooled) @ self.pool * Z) @ self.W


class PooledNetwork:
    """A fitted stack of stages over flattened frames (m, h * w); its outputs are
    the last stage's units."""

    def __init__(self, stages: list, frame_shape: tuple[int, int]):
        self.stages = stages
        self.frame_shape = tuple(frame_shape)

    def _rows(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        d = int(np.prod(self.frame_shape))
        if images.shape[-2:] != self.frame_shape and images.shape[-1:] != (d,):
            raise ValueError(f"images of shape {images.shape} are not {self.frame_shape} frames")
        return images.reshape(-1, d).astype(np.float64)

    def transform(self, images: np.ndarray, batch_size: int = 2048) -> np.ndarray:
        """Output units of images (n, h, w) (or flat (n, h * w)): (n, units) float32."""
        rows = self._rows(images)
        outputs = []
        for start in range(0, len(rows), batch_size):
            Y = rows[start:start + batch_size]
            for stage in self.stages:
                Y = stage.forward(Y)[0]
            outputs.append(Y.astype(np.float32))
        return np.concatenate(outputs)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The stages as named arrays (for ``storage.save_arrays``); see ``from_arrays``."""
        arrays = {"frame_shape": np.array(self.frame_shape),
                  "kinds": np.array([type(stage).__name__ for stage in self.stages])}
        for i, stage in enumerate(self.stages):
            if isinstance(stage, ContrastNorm):
                arrays[f"{i}.c"] = np.array(stage.c)
            elif isinstance(stage, WhitenStage):
                arrays.update({f"{i}.{key}": value
                               for key, value in stage.whitener.to_arrays().items()})
            else:
                arrays.update({f"{i}.W": stage.W, f"{i}.pool": stage.pool,
                               f"{i}.eps": np.array(stage.eps)})
        return arrays

    @classmethod
    def from_arrays(cls, arrays) -> PooledNetwork:
        """Inverse of ``to_arrays`` (accepts an ``np.load`` of a saved .npz)."""
        stages = []
        for i, kind in enumerate(np.asarray(arrays["kinds"]).tolist()):
            fields = {key.split(".", 1)[1]: arrays[key] for key in arrays
                      if key.startswith(f"{i}.")}
            if kind == "ContrastNorm":
                stages.append(ContrastNorm(float(fields["c"])))
            elif kind == "WhitenStage":
                stages.append(WhitenStage(Whitener.from_arrays(fields)))
            elif kind == "PooledStage":
                stages.append(PooledStage(np.asarray(fields["W"]), np.asarray(fields["pool"]),
                                          float(fields["eps"])))
            else:
                raise ValueError(f"unknown network stage {kind!r} in the saved network")
        return cls(stages, tuple(int(v) for v in np.asarray(arrays["frame_shape"])))

    def unit_response(self, unit: int):
        """``(response(x) -> float, gradient(x) -> (h * w,))`` of one output unit
        at a flat input x, in float64 (for :func:`terafeat.analysis.optimal_stimulus.optimal_stimulus`)."""

        def forward(x):
            caches, Y = [], self._rows(x)
            for stage in self.stages:
                Y, cache = stage.forward(Y)
                caches.append(cache)
            return Y, caches

        def response(x):
            return float(forward(x)[0][0, unit])

        def gradient(x):
            Y, caches = forward(x)
            grad = np.zeros_like(Y)
            grad[0, unit] = 1.0
            for stage, cache in zip(reversed(self.stages), reversed(caches)):
                grad = stage.backward(cache, grad)
            return grad.ravel()

        return response, gradient


def frame_rows(frames: np.ndarray, normalize_frames: bool = True,
               contrast_c: float = 1e-2) -> np.ndarray:
    """Frames (m, h, w) as float64 rows (m, h * w), contrast-normalised when asked:
    the input of layer 1."""
    frames = np.asarray(frames)
    if frames.ndim != 3:
        raise ValueError(f"frames must be (m, h, w), got shape {frames.shape}")
    X = frames.reshape(len(frames), -1).astype(np.float64)
    return ContrastNorm(contrast_c).forward(X)[0] if normalize_frames else X


def fit_layer_whitener(X: np.ndarray, index: int, n_components: int | None,
                       whitening_eps: float) -> tuple[Whitener, np.ndarray]:
    """Layer ``index`` (0-based)'s whitener fitted on its input X (m, d): PCA to
    ``n_components`` (None: all, ZCA); layer 1's removes each row's DC.  Returns it
    and the whitened rows (m, n_out) float64."""
    whitener = Whitener(method="zca" if n_components is None else "pca", n_components=n_components,
                        eps=whitening_eps, remove_dc=index == 0, dtype=np.float64)
    return whitener, whitener.fit_transform(X)


def next_layer_input(whitened: np.ndarray, W: np.ndarray, group_size: int, eps: float,
                     lcn: bool = True, contrast_c: float = 1e-2) -> np.ndarray:
    """A layer's pooled units over its whitened input (m, d), W: (k, d) simple units
    pooled in groups of ``group_size``, contrast-normalised when ``lcn``: the next
    layer's input (m, k / group_size) float64."""
    stage = PooledStage(np.asarray(W, np.float64),
                        subspace_pooling(len(W), group_size, dtype=np.float64), eps)
    X = stage.forward(whitened)[0]
    return ContrastNorm(contrast_c).forward(X)[0] if lcn else X


def assemble_pooled_network(frame_shape: tuple[int, int],
                            layers: list[tuple[Whitener, np.ndarray, int, float]],
                            normalize_frames: bool = True, lcn: bool = True,
                            contrast_c: float = 1e-2) -> PooledNetwork:
    """The network of trained layers, each (whitener, simple units W (k, d), pooling
    group size, eps); contrast normalisation as in :func:`fit_pooled_network`."""
    stages = [ContrastNorm(contrast_c)] if normalize_frames else []
    for index, (whitener, W, group_size, eps) in enumerate(layers):
        if index and lcn:
            stages.append(ContrastNorm(contrast_c))
        stages += [WhitenStage(whitener), PooledStage(
            np.asarray(W, np.float64), subspace_pooling(len(W), group_size, dtype=np.float64),
            eps)]
    return PooledNetwork(stages, frame_shape)


def fit_pooled_network(frames: np.ndarray, layers: list[dict], normalize_frames: bool = True,
                       lcn: bool = True, contrast_c: float = 1e-2, dtype=np.float32,
                       random_state: int = 0, callback=None) -> PooledNetwork:
    """Greedy layer-wise training of a PooledNetwork on unlabelled frames.

    frames: (m, h, w).  layers: one dict per layer with ``n_components``
    (PCA-whitened dimensions; None keeps all, ZCA), ``n_features`` (RICA simple
    units), ``group_size`` (simple units per L2 pooling unit), ``lam``,
    ``eps``, ``whitening_eps``, ``max_iter``.  normalize_frames: contrast
    normalisation of each frame first; lcn: contrast normalisation of the
    pooled units between layers.  Layer 1 whitening removes each frame's DC.
    callback(layer_index, iteration, objective) reports training progress.
    Returns the network; each layer's RICA objective curve is in its
    ``objectives_`` list, scipy's stopping message in ``messages_``.
    """
    X = frame_rows(frames, normalize_frames, contrast_c)
    trained, objectives, messages = [], [], []
    for index, layer in enumerate(layers):
        whitener, whitened = fit_layer_whitener(X, index, layer.get("n_components"),
                                                layer["whitening_eps"])
        report = None if callback is None else (lambda i, value, index=index: callback(index, i, value))
        pool = subspace_pooling(layer["n_features"], layer["group_size"], dtype=np.float64)
        rica = RICA(n_features=layer["n_features"], lam=layer["lam"], eps=layer["eps"],
                    max_iter=layer["max_iter"], dtype=dtype, random_state=random_state + index,
                    pool=pool, callback=report).fit(whitened)
        trained.append((whitener, rica.W_, layer["group_size"], layer["eps"]))
        objectives.append(rica.objective_)
        messages.append(rica.optimizer_message_)
        X = next_layer_input(whitened, rica.W_, layer["group_size"], layer["eps"], lcn, contrast_c)
    network = assemble_pooled_network(np.asarray(frames).shape[1:], trained, normalize_frames,
                                      lcn, contrast_c)
    network.objectives_ = objectives
    network.messages_ = messages
    return network
