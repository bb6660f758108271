"""Elementwise merges of inputs of one shape: ``Add`` / ``Subtract`` / ``Average`` and ``Multiply``.

* **merge** (``Add``, ``Subtract``, ``Average``): ``z = Σ_k c_k x_k`` with ``c_k = 1`` (add),
  ``+1, -1`` (subtract) or ``1/K`` (average) is a linear node without bias. The ε-rule splits
  the relevance in proportion to each input's contribution ``c_k x_k``:
  ``R_kj = (c_k x_kj + bias_factor · ε_j / K) · R_j / (z_j + ε_j)`` with ``ε_j = ε·sign(z_j)``;
  the stabiliser's share of unit j is spread over its K inputs (as in ``pooling.py``), so
  bias_factor = 1 conserves exactly. Gradient: ``c_k g``.
* **multiply** (``Multiply`` of two or more tensors): a product node ``z = x_0 ⊙ x_1 ⊙ ...``,
  split by the node's product rule (``tf_lrp.rules.product``; the rule map's ``"product"`` rule
  kind, :class:`~tf_lrp.rules.Half` by default: exact, conserving, and it needs neither a
  designated gate nor a denominator that vanishes where ``x_0 = -x_1``). With
  :class:`~tf_lrp.rules.SignalTakesAll` the input ``gate`` names (1 by default, the second) is
  the gate and gets nothing (two inputs only). With n > 2 inputs (:func:`split_many`): half is
  ``R/n`` each, proportional / abs share ``R`` in proportion to ``x_k`` / ``|x_k|``.
  Gradient: ``g ⊙ Π_{m≠k} x_m``.

Masks as Keras 3 merges them (``Merge.compute_mask``): no mask if an input has none, else the OR
of the inputs' step masks. Neither node reads the mask.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Sequence
from typing import Any, ClassVar

from keras import ops

from .._typing import Tensor
from ..layout import MergeSpec, MultiplySpec
from ..rules import Absolute, Half, ProductRule, SignalTakesAll, signed_eps, split_product
from .base import NodeContext, NodeType


def coefficients(operation: str, count: int) -> tuple[float, ...]:
    """``c_k`` of each of the ``count`` inputs of ``operation``."""
    if operation == "subtract":
        return (1.0, -1.0)
    if operation == "average":
        return (1.0 / count,) * count
    return (1.0,) * count


def merged_mask(masks: Sequence[Tensor | None]) -> Tensor | None:
    """Keras's merged step mask: None if an input has none, else a step is valid where any input's is."""
    if any(mask is None for mask in masks):
        return None
    merged = masks[0]
    for mask in masks[1:]:
        merged = ops.logical_or(merged, mask)
    return merged


class MergeNode(NodeType):
    """Keras ``Add`` / ``Subtract`` / ``Average``: relevance in proportion to ``c_k x_k`` (ε-rule, no bias)."""

    kinds: ClassVar[tuple[str, ...]] = ("merge",)

    def merge_masks(self, spec: MergeSpec, masks: Sequence[Tensor | None]) -> Tensor | None:
        """Keras's merge: None if an input has none, else the OR."""
        return merged_mask(masks)

    def cache_floats(self, spec: MergeSpec, steps: int) -> int:
        """The output, per step read (the inputs are their producers')."""
        return steps * spec.features

    def forward(
        self, spec: MergeSpec, params: Any, inputs: Sequence[Tensor], mask: Tensor | None
    ) -> tuple[Tensor, tuple[tuple[Tensor, ...], Tensor]]:
        """``Σ_k c_k x_k`` (the average as Keras computes it: the sum, then divided by K)."""
        if spec.operation == "subtract":
            z = inputs[0] - inputs[1]
        else:
            z = inputs[0]
            for x in inputs[1:]:
                z = z + x
            if spec.operation == "average":
                z = z / len(inputs)
        return z, (tuple(inputs), z)

    def relevance(
        self, spec: MergeSpec, params: Any, cache: tuple[tuple[Tensor, ...], Tensor], relevance: Tensor,
        ctx: NodeContext,
    ) -> tuple[tuple[Tensor | None, ...], Tensor | None]:  # fmt: skip
        """Each input's share ``c_k x_k`` of the stabilised output, plus ``1/K`` of the stabiliser's."""
        inputs, z = cache
        stabiliser = signed_eps(z, ctx.eps)
        q = relevance / (z + stabiliser)
        share = ctx.bias_factor * stabiliser * q / len(inputs)
        weights = coefficients(spec.operation, len(inputs))
        return tuple(c * x * q + share for c, x in zip(weights, inputs, strict=True)), None

    def gradient(
        self, spec: MergeSpec, params: Any, cache: tuple[tuple[Tensor, ...], Tensor], grad: Tensor, ctx: NodeContext
    ) -> tuple[Tensor | None, ...]:
        """``c_k g``."""
        return tuple(c * grad for c in coefficients(spec.operation, len(cache[0])))


def _product(factors: Sequence[Tensor]) -> Tensor:
    """``x_0 ⊙ x_1 ⊙ ...`` in Keras's order (left to right)."""
    return functools.reduce(operator.mul, factors)


def split_many(
    rule: ProductRule, factors: Sequence[Tensor], relevance: Tensor, eps: Tensor, bias_factor: Tensor
) -> tuple[Tensor, ...]:
    """The n-ary product rules for ``z = Π_k x_k`` (n > 2), each (..., F).

    ``Half`` (uniform): ``R_k = R / n``. ``Proportional`` / ``Absolute``: weights ``w_k = x_k`` /
    ``|x_k|``, ``R_k = (w_k + bias_factor · ε_j / n) · R / (Σ_m w_m + ε_j)`` with
    ``ε_j = ε·sign(Σ_m w_m)``: conserving at bias_factor = 1. For n = 2 these are the binary
    rules of :func:`tf_lrp.rules.split_product`. ``SignalTakesAll`` needs one signal; the rule
    map refuses it for n > 2 (:meth:`tf_lrp.rules.RuleSet.resolve_nodes`).
    """
    count = len(factors)
    if isinstance(rule, Half):
        return tuple(relevance / count for _ in factors)
    if isinstance(rule, SignalTakesAll):
        raise TypeError("SignalTakesAll has no n-ary form")  # the rule map refuses it first
    weights = [ops.abs(x) if isinstance(rule, Absolute) else x for x in factors]
    total = functools.reduce(operator.add, weights)
    stabiliser = signed_eps(total, eps)
    q = relevance / (total + stabiliser)
    share = bias_factor * stabiliser * q / count
    return tuple(w * q + share for w in weights)


class MultiplyNode(NodeType):
    """Keras ``Multiply`` of two or more tensors: a product node split by the node's product rule."""

    kinds: ClassVar[tuple[str, ...]] = ("multiply",)

    def merge_masks(self, spec: MultiplySpec, masks: Sequence[Tensor | None]) -> Tensor | None:
        """Keras's merge: None if an input has none, else the OR."""
        return merged_mask(masks)

    def cache_floats(self, spec: MultiplySpec, steps: int) -> int:
        """Nothing beyond the inputs, which are their producers'."""
        return 0

    def forward(
        self, spec: MultiplySpec, params: Any, inputs: Sequence[Tensor], mask: Tensor | None
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        """``x_0 ⊙ x_1 ⊙ ...``."""
        return _product(inputs), tuple(inputs)

    def relevance(
        self, spec: MultiplySpec, params: Any, cache: tuple[Tensor, ...], relevance: Tensor, ctx: NodeContext
    ) -> tuple[tuple[Tensor | None, ...], Tensor | None]:
        """Two inputs: ``split_product`` with the rule's gate (default the second); more: :func:`split_many`."""
        if ctx.rules is None:
            raise TypeError("a multiply node needs resolved rules")  # the network always resolves them
        rule = ctx.rules.product
        if len(cache) > 2:
            return split_many(rule, cache, relevance, ctx.eps, ctx.bias_factor), None
        gate = rule.gate if isinstance(rule, SignalTakesAll) else 1
        r_gate, r_signal = split_product(rule, cache[gate], cache[1 - gate], relevance, ctx.eps, ctx.bias_factor)
        return ((r_signal, r_gate) if gate == 1 else (r_gate, r_signal)), None

    def gradient(
        self, spec: MultiplySpec, params: Any, cache: tuple[Tensor, ...], grad: Tensor, ctx: NodeContext
    ) -> tuple[Tensor | None, ...]:
        """``g ⊙ Π_{m≠k} x_m`` per input (the product of the others, no division)."""
        return tuple(grad * _product([x for m, x in enumerate(cache) if m != k]) for k in range(len(cache)))
