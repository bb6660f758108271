"""The dense node: ``z = a @ kernel + bias`` on vectors (B, F) or per step on sequences (T, B, F).

LRP: the node's linear rule (ε with bias share by default, z⁺ as an option) on ``z``; a hidden
layer's activation (relu / linear) passes relevance unchanged to its pre-activation. The
network's output node is run without its activation: its pre-activation is the explained score.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, NamedTuple

from keras import ops

from .._typing import Tensor
from ..cells import ACTIVATIONS
from ..layout import DenseSpec
from ..rules import LinearRule
from .base import NodeContext, NodeType


class DenseParams(NamedTuple):
    """A dense layer's weights."""

    kernel: Tensor  # (D, C)
    bias: Tensor  # (C,); zeros when use_bias=False


class DenseForward(NamedTuple):
    """One dense layer after the forward pass."""

    inputs: Tensor  # (B, D) or (T, B, D)
    pre_activation: Tensor  # (B, C) or (T, B, C)


def dense_params(spec: DenseSpec, arrays: Sequence[Tensor]) -> DenseParams:
    """``[kernel, (bias)]`` -> :class:`DenseParams` (a zero bias when ``use_bias`` is off)."""
    kernel = arrays[0]
    bias = arrays[1] if spec.use_bias else ops.zeros((spec.units,), dtype=kernel.dtype)
    return DenseParams(kernel, bias)


def dense_relevance(
    rule: LinearRule, params: DenseParams, fwd: DenseForward, relevance: Tensor, eps: Tensor, bias_factor: Tensor
) -> Tensor:
    """Relevance at the inputs of a dense layer by ``rule`` (the activation passes relevance unchanged)."""
    return rule.dense(fwd.inputs, params.kernel, params.bias, fwd.pre_activation, relevance, eps, bias_factor)


def dense_gradient(spec: DenseSpec, params: DenseParams, fwd: DenseForward, grad: Tensor, is_last: bool) -> Tensor:
    """Gradient at the inputs of a dense layer (the last layer's activation is not applied)."""
    if not is_last:
        activation, derivative = ACTIVATIONS[spec.activation]
        grad = grad * derivative(activation(fwd.pre_activation))
    return ops.matmul(grad, ops.transpose(params.kernel))


def lrp_dense(
    spec: DenseSpec, params: DenseParams, fwd: DenseForward, relevance: Tensor, ctx: Any, is_last: bool
) -> Tensor:
    """LRP through a dense layer with the rule ``ctx.rules.dense_rule(is_last)`` (the forecaster's head)."""
    return dense_relevance(ctx.rules.dense_rule(is_last), params, fwd, relevance, ctx.eps, ctx.bias_factor)


def gradient_dense(
    spec: DenseSpec, params: DenseParams, fwd: DenseForward, grad: Tensor, ctx: Any, is_last: bool
) -> Tensor:
    """The gradient through a dense layer (the forecaster's head; same signature as :func:`lrp_dense`)."""
    return dense_gradient(spec, params, fwd, grad, is_last)


class DenseNode(NodeType):
    """Keras ``Dense`` (and ``TimeDistributed(Dense)``): a linear node with an elementwise activation."""

    kinds: ClassVar[tuple[str, ...]] = ("dense",)

    def params(self, spec: DenseSpec, arrays: Sequence[Tensor]) -> DenseParams:
        """Kernel and bias."""
        return dense_params(spec, arrays)

    def cache_floats(self, spec: DenseSpec, steps: int) -> int:
        """Inputs and pre-activation, per step read."""
        return steps * (spec.input_size + spec.units)

    def forward(
        self, spec: DenseSpec, params: DenseParams, inputs: Sequence[Tensor], mask: Tensor | None
    ) -> tuple[Tensor, DenseForward]:
        """``activation(a @ kernel + bias)``; the cache keeps ``a`` and the pre-activation."""
        pre = ops.matmul(inputs[0], params.kernel) + params.bias
        return ACTIVATIONS[spec.activation][0](pre), DenseForward(inputs[0], pre)

    def relevance(
        self, spec: DenseSpec, params: DenseParams, cache: DenseForward, relevance: Tensor, ctx: NodeContext
    ) -> tuple[tuple[Tensor | None, ...], Tensor | None]:
        """The node's linear rule on its pre-activation."""
        rule = ctx.rules.linear if ctx.rules is not None else None
        if rule is None:
            raise TypeError("a dense node needs resolved rules")  # the network always resolves them
        return (dense_relevance(rule, params, cache, relevance, ctx.eps, ctx.bias_factor),), None

    def gradient(
        self, spec: DenseSpec, params: DenseParams, cache: DenseForward, grad: Tensor, ctx: NodeContext
    ) -> tuple[Tensor | None, ...]:
        """Through the activation's derivative and the transposed kernel."""
        return (dense_gradient(spec, params, cache, grad, ctx.is_output),)
