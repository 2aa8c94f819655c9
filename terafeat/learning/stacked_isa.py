"""Stacked convolutional ISA for video (Le, Zou, Yeung & Ng, CVPR 2011).

Layer 1 (:class:`ISALayer`) is PCA whitening to ``n_components`` dims and
RICA with ISA pooling on flattened (10, 16, 16) space-time blocks; its output
is the ``n_features / group_size`` pooled units. Layer 2 sees a (14, 20, 20)
block as 2x2x2 layer-1 blocks 4 apart (layer 1 applied convolutionally,
:func:`convolve_layer`), concatenates their outputs, and is another
ISALayer on top. The descriptor of a layer-2 block is the layer-2 output
beside the layer-1 output reduced to the same size (the leading components
of layer 2's PCA, which sees exactly the concatenated layer-1 outputs).
"""
from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from terafeat.learning.pooling import l2_pool, subspace_pooling
from terafeat.learning.rica import RICA
from terafeat.learning.whitening import Whitener
from terafeat.media.blocks import (
    LAYER1_BLOCK,
    LAYER1_STRIDE,
    SUBBLOCKS,
    block_windows,
    check_clip,
    check_shape,
    layer2_shape,
    overlap_stride,
)
from terafeat.validation import check_array, check_fitted_input

#: Blocks per batch when a layer is applied, bounding memory to about
#: BATCH_BLOCKS * 8 * 2560 * 4 bytes (80 MB) for the paper's sizes.
BATCH_BLOCKS = 1024


class ISALayer(TransformerMixin, BaseEstimator):
    """One ISA layer: PCA whitening, then RICA with ISA (subspace) pooling.

    Parameters (keyword-only)
    ----------
    n_components : PCA dimensions kept (300 for layer 1 and 200 for layer 2 in the paper).
    n_features : simple units k; ``group_size`` of them pool into one output,
        so the layer outputs ``n_features // group_size`` values.
    group_size : ISA subspace size (2 in the authors' code, 4 in the paper's runs).
    lam, eps, max_iter, random_state, dtype : as in :class:`terafeat.learning.rica.RICA`.
    whitening_eps : added to each PCA eigenvalue (squared input units).

    Attributes
    ----------
    whitener_ : the fitted :class:`terafeat.learning.whitening.Whitener` (PCA).
    W_ : (n_features, n_components) RICA filters in the whitened space.
    pool_ : (n_features // group_size, n_features) ISA pooling matrix.
    n_iter_ : RICA's L-BFGS iterations (set by fit).  n_features_in_ : input dimensions d.
    """

    _parameter_constraints: ClassVar[dict] = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "n_features": [Interval(Integral, 1, None, closed="left")],
        "group_size": [Interval(Integral, 1, None, closed="left")],
        "whitening_eps": [Interval(Real, 0, None, closed="left")],
        **{key: RICA._parameter_constraints[key] for key in ("lam", "eps", "max_iter",
                                                              "random_state")},
    }

    def __init__(self, *, n_components: int = 300, n_features: int = 300, group_size: int = 2,
                 lam: float = 10.0, eps: float = 1e-2, whitening_eps: float = 1e-4,
                 max_iter: int = 200, random_state=None, dtype=np.float32):
        self.n_components = n_components
        self.n_features = n_features
        self.group_size = group_size
        self.lam = lam
        self.eps = eps
        self.whitening_eps = whitening_eps
        self.max_iter = max_iter
        self.random_state = random_state
        self.dtype = dtype

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = [np.dtype(self.dtype).name]
        return tags

    def fit(self, X, y=None) -> "ISALayer":
        """Fit the whitener and the features on blocks X (m, d); y is ignored."""
        self._validate_params()
        X = check_array(X, dtype=self.dtype, name="blocks")
        whitener = Whitener(method="pca", n_components=min(int(self.n_components), X.shape[1]),
                            eps=self.whitening_eps, dtype=self.dtype).fit(X)
        pool = subspace_pooling(int(self.n_features), int(self.group_size), self.dtype)
        rica = RICA(n_features=int(self.n_features), lam=self.lam, eps=self.eps, max_iter=self.max_iter,
                    dtype=self.dtype, random_state=self.random_state, pool=pool)
        rica.fit(whitener.transform(X))
        self.n_iter_ = rica.n_iter_
        return self._set_fitted(whitener, rica.W_)

    @classmethod
    def from_fitted(cls, whitener: Whitener, W: np.ndarray, group_size: int,
                    eps: float = 1e-2) -> "ISALayer":
        """A layer from a fitted PCA whitener and filters W (k, n_components) trained apart."""
        if W.shape[1] != whitener.whitening_.shape[1]:
            raise ValueError(f"filters of {W.shape[1]} inputs do not fit the whitener's "
                             f"{whitener.whitening_.shape[1]} components")
        layer = cls(n_components=W.shape[1], n_features=W.shape[0], group_size=group_size,
                    eps=eps, dtype=W.dtype)
        return layer._set_fitted(whitener, W)

    def _set_fitted(self, whitener: Whitener, W: np.ndarray) -> "ISALayer":
        self.whitener_ = whitener
        self.W_ = W
        self.pool_ = subspace_pooling(W.shape[0], int(self.group_size), W.dtype)
        self.n_features_in_ = whitener.n_features_in_
        return self

    @property
    def n_outputs(self) -> int:
        """Pooled units per input: n_features // group_size."""
        return self.pool_.shape[0]

    def transform(self, X) -> np.ndarray:
        """Pooled units ``sqrt(eps + V (W whiten(x))^2)``: (m, d) -> (m, n_outputs) float32."""
        check_is_fitted(self)
        X = check_fitted_input(self, X, np.float32)
        return self.pool_whitened(self.whitener_.transform(X))

    def pool_whitened(self, whitened: np.ndarray) -> np.ndarray:
        """Pooled units of inputs already whitened by ``whitener_``: (m, n_components) -> (m, n_outputs)."""
        return l2_pool(whitened @ self.W_.T, self.pool_, self.eps)

    def fit_transform(self, X, y=None) -> np.ndarray:
        return self.fit(X).transform(X)

    def input_filters(self) -> np.ndarray:
        """Filters as input patterns (n_features, d): W_ mapped back through the PCA."""
        return self.W_ @ self.whitener_.dewhitening_


def convolve_layer(layer: ISALayer, blocks, block_shape: Sequence[int] = LAYER1_BLOCK,
                   stride: Sequence[int] = LAYER1_STRIDE, subblocks: Sequence[int] = SUBBLOCKS,
                   batch_blocks: int = BATCH_BLOCKS) -> np.ndarray:
    """Layer 1 applied convolutionally inside each layer-2 block, outputs concatenated.

    blocks: (m, F * H * W) flattened layer-2 blocks of shape
    ``layer2_shape(block_shape, stride, subblocks)``. Returns
    (m, n_sub * layer.n_outputs) float32, sub-blocks in (frame, row, column)
    order: row i holds ``layer.transform`` of every sub-block of block i.
    Works ``batch_blocks`` blocks at a time.
    """
    block_shape, stride = check_shape(block_shape), check_shape(stride, "stride")
    outer = layer2_shape(block_shape, stride, subblocks)
    blocks = check_array(blocks, dtype=np.float32, name="layer-2 blocks",
                         n_features=int(np.prod(outer)))
    n_sub = int(np.prod(subblocks))
    out = np.empty((len(blocks), n_sub * layer.n_outputs), np.float32)
    for start in range(0, len(blocks), batch_blocks):
        batch = blocks[start:start + batch_blocks].reshape((-1,) + outer)
        windows = block_windows(batch, block_shape, stride)
        sub = windows.reshape(len(batch) * n_sub, -1)
        out[start:start + len(batch)] = layer.transform(sub).reshape(len(batch), -1)
    return out


class StackedISA:
    """Two ISA layers, the second on layer 1 applied convolutionally; descriptors of blocks.

    Parameters
    ----------
    layer1, layer2 : unfitted :class:`ISALayer` (hyper-parameters), or fitted
        ones (e.g. from :meth:`ISALayer.from_fitted`); ``layer2=None`` is the
        one-layer model whose descriptor is layer 1's output on one block.
    block_shape, stride, subblocks : layer-1 block (frames, height, width),
        the stride of layer 1 inside a layer-2 block, and sub-blocks per axis.

    Attributes
    ----------
    block_shape_ : the block a descriptor describes: ``layer2_shape(...)``
        with two layers, ``block_shape`` with one.
    n_descriptor_ : descriptor length: 2 * layer2.n_outputs, or layer1.n_outputs.
    """

    def __init__(self, layer1: ISALayer, layer2: ISALayer | None = None,
                 block_shape: Sequence[int] = LAYER1_BLOCK, stride: Sequence[int] = LAYER1_STRIDE,
                 subblocks: Sequence[int] = SUBBLOCKS):
        self.layer1 = layer1
        self.layer2 = layer2
        self.block_shape = check_shape(block_shape)
        self.stride = check_shape(stride, "stride")
        self.subblocks = check_shape(subblocks, "subblocks")
        self.block_shape_ = (self.block_shape if layer2 is None
                             else layer2_shape(self.block_shape, self.stride, self.subblocks))

    def fit(self, blocks1, blocks2=None) -> "StackedISA":
        """Fit layer 1 on (m1, prod(block_shape)) blocks, then layer 2 on (m2, prod(block_shape_))
        blocks through the convolved layer 1 (skipped for a one-layer model)."""
        self.layer1.fit(blocks1)
        if self.layer2 is not None:
            if blocks2 is None:
                raise ValueError("a two-layer model needs layer-2 blocks to fit layer 2")
            self.layer2.fit(self.convolve(blocks2))
        return self

    def convolve(self, blocks2) -> np.ndarray:
        """Layer-1 outputs of the sub-blocks of layer-2 blocks: (m, n_sub * layer1.n_outputs)."""
        return convolve_layer(self.layer1, blocks2, self.block_shape, self.stride, self.subblocks)

    @property
    def n_descriptor_(self) -> int:
        return self.layer1.n_outputs if self.layer2 is None else 2 * self.layer2.n_outputs

    def transform(self, blocks) -> np.ndarray:
        """Descriptors of flattened blocks (m, prod(block_shape_)) -> (m, n_descriptor_) float32.

        Two layers: [layer-2 output, layer-1 output reduced to the same size
        by layer 2's leading PCA components].
        """
        if self.layer2 is None:
            return self.layer1.transform(blocks)
        convolved = self.convolve(blocks)
        whitened = self.layer2.whitener_.transform(convolved)
        return np.concatenate([self.layer2.pool_whitened(whitened),
                               whitened[:, :self.layer2.n_outputs]], axis=1)

    def clip_descriptors(self, clip, overlap: float = 0.5, name: str = "clip",
                         batch_blocks: int = BATCH_BLOCKS) -> np.ndarray:
        """Descriptors of every block on a dense grid over one (T, H, W) clip.

        Neighbouring blocks overlap by ``overlap`` of their extent (0.5 in the
        paper). Returns (n_positions, n_descriptor_) float32, positions in
        (frame, row, column) grid order; memory is bounded by ``batch_blocks``
        blocks at a time.
        """
        clip = check_clip(clip, self.block_shape_, name)
        windows = block_windows(clip, self.block_shape_, overlap_stride(self.block_shape_, overlap))
        per_frame = windows.shape[1] * windows.shape[2]
        step = max(1, batch_blocks // per_frame)
        return np.concatenate([
            self.transform(windows[start:start + step].reshape(-1, int(np.prod(self.block_shape_))))
            for start in range(0, windows.shape[0], step)])
