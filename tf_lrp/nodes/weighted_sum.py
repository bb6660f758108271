"""The weighted sum over time of an attention pooling: ``o_j = Σ_t w_t v_tj``.

Inputs: the weights (T, B, 1) (a ``softmax`` over time, usually) and the values (T, B, F); the
output is one vector per sample (B, F). Keras ``Dot(axes=1)([weights, values])``, PyTorch
``(w * out).sum(dim=1)`` and ``torch.bmm(w.transpose(1, 2), out).squeeze(1)``.

This is the attention node's product ``A·V`` with one query; the rules are
:mod:`~tf_lrp.nodes.attention`'s, reused:

* **CP-LRP** (default): the weights are constants; ``o = w·v`` is a linear node without bias in
  the values, and its ε-rule (:func:`~tf_lrp.nodes.attention.weighted_sum_relevance`) gives the
  values all the relevance (bias_factor = 1 conserves exactly); the weights get none.
* **AttnLRP** (``RuleSet(attention="attnlrp")``): the ε-rule over the products ``w_t v_tj``, each
  split half and half between weight and value
  (:func:`~tf_lrp.nodes.attention.attnlrp_weighted_sum`); the weights' half goes on to the softmax.

Steps whose weight is 0 (masked by the softmax) get exactly zero relevance. **Gradient**: ``w_t g``
for the values, ``Σ_j v_tj g_j`` for the weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, NamedTuple

from keras import ops

from .._typing import Tensor
from ..layout import WeightedSumSpec
from .attention import attnlrp_weighted_sum, weighted_sum_relevance
from .base import NodeContext, NodeType


class WeightedSumCache(NamedTuple):
    """Batch-major, as the attention rules read them."""

    weights: Tensor  # (B, 1, T)
    values: Tensor  # (B, T, F)
    output: Tensor  # (B, 1, F)


class WeightedSumNode(NodeType):
    """``Σ_t w_t v_t``: CP-LRP (values take all) or AttnLRP; the true gradient (see the module)."""

    kinds: ClassVar[tuple[str, ...]] = ("weighted_sum",)

    def cache_floats(self, spec: WeightedSumSpec, steps: int) -> int:
        """The weights and values (batch-major copies) and the output."""
        return steps * (1 + spec.features) + spec.features

    def forward(
        self, spec: WeightedSumSpec, params: Any, inputs: Sequence[Tensor], mask: Tensor | None
    ) -> tuple[Tensor, WeightedSumCache]:
        """``(B, 1, T) @ (B, T, F)`` -> (B, F)."""
        weights = ops.transpose(inputs[0], (1, 2, 0))
        values = ops.transpose(inputs[1], (1, 0, 2))
        output = ops.matmul(weights, values)
        return output[:, 0, :], WeightedSumCache(weights, values, output)

    def relevance(
        self, spec: WeightedSumSpec, params: Any, cache: WeightedSumCache, relevance: Tensor, ctx: NodeContext
    ) -> tuple[tuple[Tensor | None, ...], Tensor | None]:
        """CP-LRP: all to the values; AttnLRP: half of each product to its weight, half to its value."""
        r_out = ops.expand_dims(relevance, 1)
        if ctx.rules is None or ctx.rules.attention == "cp_lrp":
            r_values = weighted_sum_relevance(
                cache.weights, cache.values, cache.output, r_out, ctx.eps, ctx.bias_factor
            )
            return (None, ops.transpose(r_values, (1, 0, 2))), None
        r_values, r_weights = attnlrp_weighted_sum(
            cache.weights, cache.values, cache.output, r_out, ctx.eps, ctx.bias_factor
        )
        return (ops.transpose(r_weights, (2, 0, 1)), ops.transpose(r_values, (1, 0, 2))), None

    def gradient(
        self, spec: WeightedSumSpec, params: Any, cache: WeightedSumCache, grad: Tensor, ctx: NodeContext
    ) -> tuple[Tensor | None, ...]:
        """``Σ_j v_tj g_j`` (T, B, 1) and ``w_t g`` (T, B, F)."""
        g_weights = ops.sum(cache.values * ops.expand_dims(grad, 1), axis=-1, keepdims=True)  # (B, T, 1)
        g_values = ops.transpose(cache.weights, (2, 0, 1)) * ops.expand_dims(grad, 0)
        return ops.transpose(g_weights, (1, 0, 2)), g_values
