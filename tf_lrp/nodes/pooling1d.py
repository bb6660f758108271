"""Pooling over windows of time steps: Keras ``MaxPooling1D`` / ``AveragePooling1D``, (T, B, F) -> (T', B, F).

Each output step ``t'`` pools the window of padded steps ``t'·s + k`` (k < pool_size) per feature
(:class:`~tf_lrp.nodes.windows.Window`; ``same`` padding as TensorFlow's SAME).

* **Max** (winner takes all): the relevance of each output goes to the step(s) of its window that
  hold the maximum, split equally between ties; padded steps never win (Keras pads with -inf).
  Conserving. The gradient is split between ties the same way.
* **Average** (proportional): ``z = Σ_k x_k / m`` over the window's ``m`` real (unpadded) steps
  (TensorFlow's SAME average leaves the padding out of the count) is a linear node without bias;
  the ε-rule gives ``R_k = (x_k / m + bias_factor·ε_z / m) · R / (z + ε_z)``, ``ε_z = ε·sign(z)``:
  the stabiliser's share goes to the real steps only, so bias_factor = 1 conserves exactly.

Keras's pooling layers drop the mask (the output has no mask).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, NamedTuple

from keras import ops

from .._typing import Tensor
from ..layout import Pooling1DSpec
from ..rules import signed_eps
from .base import NodeContext, NodeType
from .windows import Window


class Pooling1DCache(NamedTuple):
    """What the backward steps read."""

    inputs: Tensor  # (T, B, F)
    pooled: Tensor  # (T', B, F)
    weights: list[Tensor]  # per tap (T', B, F): max: the winners' equal shares; average: real / m


def _window(spec: Pooling1DSpec, x: Tensor) -> Window:
    return Window.of(x, spec.pool_size, spec.strides, 1, spec.padding)


class Pooling1DNode(NodeType):
    """Max or average pooling over windows of time steps."""

    kinds: ClassVar[tuple[str, ...]] = ("max_pooling1d", "average_pooling1d")
    reads_padding: ClassVar[bool] = True

    def cache_floats(self, spec: Pooling1DSpec, steps: int) -> int:
        """The tap weights (pool_size · T' · F ≤ pool_size · T · F) and the pooled sequence."""
        return (spec.pool_size + 1) * steps * spec.features

    def output_mask(self, spec: Pooling1DSpec, mask: Tensor | None) -> Tensor | None:
        """None: Keras's pooling layers drop the mask."""
        return None

    def forward(
        self, spec: Pooling1DSpec, params: Any, inputs: Sequence[Tensor], mask: Tensor | None
    ) -> tuple[Tensor, Pooling1DCache]:
        """The max or the mean over each window's real steps."""
        x = inputs[0]
        window = _window(spec, x)
        real = window.taps(window.pad(ops.ones_like(x[:, :, :1])))  # per tap (T', B, 1): 1 on real steps
        if spec.kind == "max_pooling1d":
            taps = window.taps(window.pad(x, float("-inf")))
            pooled = taps[0]
            for tap in taps[1:]:
                pooled = ops.maximum(pooled, tap)
            winners = [ops.cast(tap == pooled, x.dtype) * r for tap, r in zip(taps, real, strict=True)]
            count = winners[0]
            for winner in winners[1:]:
                count = count + winner
            return pooled, Pooling1DCache(x, pooled, [winner / count for winner in winners])
        count = real[0]
        for r in real[1:]:
            count = count + r
        taps = window.taps(window.pad(x))
        weights = [ops.broadcast_to(r / count, ops.shape(tap)) for r, tap in zip(real, taps, strict=True)]
        pooled = weights[0] * taps[0]
        for weight, tap in zip(weights[1:], taps[1:], strict=True):
            pooled = pooled + weight * tap
        return pooled, Pooling1DCache(x, pooled, weights)

    def relevance(
        self, spec: Pooling1DSpec, params: Any, cache: Pooling1DCache, relevance: Tensor, ctx: NodeContext
    ) -> tuple[tuple[Tensor | None, ...], Tensor | None]:
        """Winner takes all (max) or the ε-rule on each window's mean (average); see the module."""
        window = _window(spec, cache.inputs)
        if spec.kind == "max_pooling1d":
            return (window.transpose([weight * relevance for weight in cache.weights]),), None
        stabiliser = signed_eps(cache.pooled, ctx.eps)
        q = relevance / (cache.pooled + stabiliser)
        share = ctx.bias_factor * stabiliser * q
        taps = window.taps(window.pad(cache.inputs))
        return (window.transpose([w * (tap * q + share) for w, tap in zip(cache.weights, taps, strict=True)]),), None

    def gradient(
        self, spec: Pooling1DSpec, params: Any, cache: Pooling1DCache, grad: Tensor, ctx: NodeContext
    ) -> tuple[Tensor | None, ...]:
        """The gradient of the max (split between ties) or of the mean."""
        window = _window(spec, cache.inputs)
        return (window.transpose([weight * grad for weight in cache.weights]),)
