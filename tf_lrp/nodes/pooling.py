"""Pooling over time: ``GlobalMaxPooling1D``, ``GlobalAveragePooling1D`` and the sum, (T, B, F) -> (B, F).

* **Max** (winner takes all): the relevance of each output unit goes to the step(s) where the
  maximum was taken, split equally between ties; conserving. Like Keras, the max ignores the mask:
  a padded step of a recurrent layer holds the state carried from the last valid step, so
  relevance reaching it flows back to that step through the recurrent node's carry.
* **Average** (proportional): ``z_j = Σ_t w_t x_tj / n`` over the valid steps (Keras's mask-aware
  mean, ``w_t`` the step mask, ``n = Σ_t w_t``) is a linear node without bias; the ε-rule gives
  ``R_tj = (w_t x_tj / n + bias_factor · ε_j w_t / n) · R_j / (z_j + ε_j)`` with
  ``ε_j = ε·sign(z_j)``: the stabiliser's share of unit j is spread over its n valid inputs, so
  bias_factor = 1 conserves exactly; masked steps get exactly zero.
* **Sum** (``keras.ops.sum(x, axis=1)``: the sum of an attention pooling's weighted steps):
  ``z_j = Σ_t w_t x_tj`` over the valid steps, the same ε-rule with the stabiliser's share spread
  evenly over the n valid steps: ``R_tj = w_t (x_tj + bias_factor · ε_j / n) · R_j / (z_j + ε_j)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, NamedTuple

from keras import ops

from .._typing import Tensor
from ..layout import PoolingSpec
from ..rules import signed_eps
from .base import NodeContext, NodeType


class PoolingCache(NamedTuple):
    """What the backward steps read."""

    inputs: Tensor  # (T, B, F)
    pooled: Tensor  # (B, F)
    weights: Tensor  # (T, B, F): max: the winners' equal shares; average: w_t / n


def _max_weights(inputs: Tensor, pooled: Tensor) -> Tensor:
    """(T, B, F) 1/k at the k steps that hold each unit's maximum, else 0."""
    winners = ops.cast(inputs == ops.expand_dims(pooled, 0), inputs.dtype)
    return winners / ops.sum(winners, axis=0, keepdims=True)


def _valid_steps(inputs: Tensor, mask: Tensor | None) -> Tensor:
    """(T, B, 1) 1 at the valid steps, 0 at masked ones."""
    return ops.ones_like(inputs[..., :1]) if mask is None else ops.cast(mask, inputs.dtype)


def _average_weights(inputs: Tensor, mask: Tensor | None) -> Tensor:
    """(T, B, F) ``w_t / n``: 1/n at the n valid steps, 0 at masked ones (broadcast over features)."""
    valid = _valid_steps(inputs, mask)
    return ops.broadcast_to(valid / ops.sum(valid, axis=0, keepdims=True), ops.shape(inputs))


class PoolingNode(NodeType):
    """Global max or average pooling over the time axis."""

    kinds: ClassVar[tuple[str, ...]] = ("global_max_pooling", "global_average_pooling", "global_sum_pooling")
    takes_mask: ClassVar[bool] = True

    def cache_floats(self, spec: PoolingSpec, steps: int) -> int:
        """The step weights (T·F) and the pooled vector (F); the inputs are the producer's."""
        return (steps + 1) * spec.features

    def forward(
        self, spec: PoolingSpec, params: Any, inputs: Sequence[Tensor], mask: Tensor | None
    ) -> tuple[Tensor, PoolingCache]:
        """The max over all steps (Keras ignores the mask there), the mean or the sum over the valid steps."""
        x = inputs[0]
        if spec.kind == "global_max_pooling":
            pooled = ops.max(x, axis=0)
            return pooled, PoolingCache(x, pooled, _max_weights(x, pooled))
        if spec.kind == "global_sum_pooling":
            weights = ops.broadcast_to(_valid_steps(x, mask), ops.shape(x))
            pooled = ops.sum(weights * x, axis=0)
            return pooled, PoolingCache(x, pooled, weights)
        weights = _average_weights(x, mask)
        pooled = ops.sum(weights * x, axis=0)
        return pooled, PoolingCache(x, pooled, weights)

    def relevance(
        self, spec: PoolingSpec, params: Any, cache: PoolingCache, relevance: Tensor, ctx: NodeContext
    ) -> tuple[tuple[Tensor | None, ...], Tensor | None]:
        """Winner takes all (max) or the ε-rule on the mean (average); see the module."""
        if spec.kind == "global_max_pooling":
            return (cache.weights * ops.expand_dims(relevance, 0),), None
        stabiliser = signed_eps(cache.pooled, ctx.eps)
        q = ops.expand_dims(relevance / (cache.pooled + stabiliser), 0)
        share = ctx.bias_factor * ops.expand_dims(stabiliser, 0) * q
        if spec.kind == "global_sum_pooling":  # the share spread over the n valid steps
            share = share / ops.sum(cache.weights, axis=0, keepdims=True)
        return (cache.weights * (cache.inputs * q + share),), None

    def gradient(
        self, spec: PoolingSpec, params: Any, cache: PoolingCache, grad: Tensor, ctx: NodeContext
    ) -> tuple[Tensor | None, ...]:
        """The gradient of the max (split between ties), of the mean or of the sum."""
        return (cache.weights * ops.expand_dims(grad, 0),)
