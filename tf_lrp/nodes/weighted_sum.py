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

With ``per_step`` (Keras ``Multiply()([values, weights])``, summed over time by a
``global_sum_pooling`` after it) the node outputs the products ``z_tj = w_t v_tj`` themselves, each
a node of one term: CP-LRP gives the value ``(z_tj + bias_factor · ε_tj) R_tj / (z_tj + ε_tj)``
(all of it at bias_factor = 1), AttnLRP half of that to the value and half to the weight.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, NamedTuple

from keras import ops

from .._typing import Tensor
from ..layout import WeightedSumSpec
from ..rules import signed_eps
from .attention import attnlrp_weighted_sum, uses_cp_lrp, weighted_sum_relevance
from .base import NodeContext, NodeType


class WeightedSumCache(NamedTuple):
    """Batch-major, as the attention rules read them."""

    weights: Tensor  # (B, 1, T)
    values: Tensor  # (B, T, F)
    output: Tensor  # (B, 1, F)


def _per_step_relevance(
    cache: tuple[Tensor, Tensor, Tensor], relevance: Tensor, ctx: NodeContext
) -> tuple[Tensor | None, Tensor]:
    """The products ``z_tj = w_t v_tj`` (T, B, F), each a one-term ε-node: CP-LRP all to v, AttnLRP half and half."""
    product = cache[2]
    stabiliser = signed_eps(product, ctx.eps)
    r_product = (product + ctx.bias_factor * stabiliser) * relevance / (product + stabiliser)
    if uses_cp_lrp(ctx):
        return None, r_product
    return ops.sum(r_product, axis=-1, keepdims=True) / 2, r_product / 2


class WeightedSumNode(NodeType):
    """``Σ_t w_t v_t``: CP-LRP (values take all) or AttnLRP; the true gradient (see the module)."""

    kinds: ClassVar[tuple[str, ...]] = ("weighted_sum",)

    def cache_floats(self, spec: WeightedSumSpec, steps: int) -> int:
        """The weights and values (batch-major copies) and the output (per step with ``per_step``)."""
        return steps * (1 + spec.features) + (steps if spec.per_step else 1) * spec.features

    def forward(
        self, spec: WeightedSumSpec, params: Any, inputs: Sequence[Tensor], mask: Tensor | None
    ) -> tuple[Tensor, Any]:
        """``(B, 1, T) @ (B, T, F)`` -> (B, F); with ``per_step`` the products (T, B, F)."""
        if spec.per_step:
            product = inputs[0] * inputs[1]
            return product, (inputs[0], inputs[1], product)
        weights = ops.transpose(inputs[0], (1, 2, 0))
        values = ops.transpose(inputs[1], (1, 0, 2))
        output = ops.matmul(weights, values)
        return output[:, 0, :], WeightedSumCache(weights, values, output)

    def relevance(
        self, spec: WeightedSumSpec, params: Any, cache: Any, relevance: Tensor, ctx: NodeContext
    ) -> tuple[tuple[Tensor | None, ...], Tensor | None]:
        """CP-LRP: all to the values; AttnLRP: half of each product to its weight, half to its value."""
        if spec.per_step:
            return _per_step_relevance(cache, relevance, ctx), None
        r_out = ops.expand_dims(relevance, 1)
        if uses_cp_lrp(ctx):
            r_values = weighted_sum_relevance(
                cache.weights, cache.values, cache.output, r_out, ctx.eps, ctx.bias_factor
            )
            return (None, ops.transpose(r_values, (1, 0, 2))), None
        r_values, r_weights = attnlrp_weighted_sum(
            cache.weights, cache.values, cache.output, r_out, ctx.eps, ctx.bias_factor
        )
        return (ops.transpose(r_weights, (2, 0, 1)), ops.transpose(r_values, (1, 0, 2))), None

    def gradient(
        self, spec: WeightedSumSpec, params: Any, cache: Any, grad: Tensor, ctx: NodeContext
    ) -> tuple[Tensor | None, ...]:
        """``Σ_j v_tj g_j`` (T, B, 1) and ``w_t g`` (T, B, F)."""
        if spec.per_step:
            weights, values, _ = cache
            return ops.sum(values * grad, axis=-1, keepdims=True), weights * grad
        g_weights = ops.sum(cache.values * ops.expand_dims(grad, 1), axis=-1, keepdims=True)  # (B, T, 1)
        g_values = ops.transpose(cache.weights, (2, 0, 1)) * ops.expand_dims(grad, 0)
        return ops.transpose(g_weights, (1, 0, 2)), g_values
