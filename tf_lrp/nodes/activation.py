"""The activation node: an elementwise function ``y = f(x)`` on vectors (B, F) or sequences (T, B, F).

LRP: relevance passes an elementwise activation unchanged (the identity rule: the activation
follows a linear node, whose rule explains the pre-activation); conserving. Gradient: the
activation's derivative at the cached input, written once below in ``keras.ops``
(:data:`ELEMENTWISE`, one entry per name of :data:`tf_lrp.layout.ELEMENTWISE_ACTIVATIONS`, with
Keras 3's default parameters; ``leaky_relu`` takes the spec's ``negative_slope``). The ``prelu``
node (Keras ``PReLU``) is the same idea with a learned slope per feature: ``relu(x) - alpha·relu(-x)``,
relevance unchanged, gradient 1 for x > 0 else alpha.

GELU (both forms) is computed from its formula with ``erf`` / ``tanh``, not by ``ops.gelu``:
TensorFlow's float64 GELU kernel (and so its autodiff) is accurate to only about 5e-9, so the
forward pass then differs from a TensorFlow Keras model by that much (the derivative is exact).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, ClassVar

from keras import ops

from .._typing import Tensor
from ..layout import LEAKY_RELU_SLOPE, ActivationSpec, PReLUSpec
from .base import NodeContext, NodeType

Function = Callable[[Tensor], Tensor]

#: Keras's SELU constants
_SELU_ALPHA = 1.67326324235437728481704299167171
_SELU_SCALE = 1.05070098735548049341933498529460
#: Keras's defaults: soft/hard_shrink(threshold=0.5), squareplus(b=4) (leaky_relu: layout.LEAKY_RELU_SLOPE)
_SHRINK, _SQUAREPLUS_B = 0.5, 4.0
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def _where(condition: Tensor, x: Tensor, yes: Any, no: Any) -> Tensor:
    """``yes`` where ``condition`` else ``no`` (numbers broadcast to ``x``)."""
    return ops.where(condition, yes + ops.zeros_like(x), no + ops.zeros_like(x))


def _inside(x: Tensor, low: float, high: float) -> Tensor:
    """1 where ``low < x < high`` else 0, in x's dtype."""
    return ops.cast(ops.logical_and(x > low, x < high), x.dtype)



def _gelu(x: Tensor) -> Tensor:
    return 0.5 * x * (1 + ops.erf(x / math.sqrt(2.0)))


def _gelu_tanh(x: Tensor) -> Tensor:
    return 0.5 * x * (1 + ops.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)))


def _gelu_derivative(x: Tensor) -> Tensor:
    return 0.5 * (1 + ops.erf(x / math.sqrt(2.0))) + x * ops.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)



def _gelu_tanh_derivative(x: Tensor) -> Tensor:
    t = ops.tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x * x * x))
    return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x)


def _silu_derivative(x: Tensor) -> Tensor:
    s = ops.sigmoid(x)
    return s + x * s * (1 - s)


def _mish(x: Tensor) -> Tensor:
    return x * ops.tanh(ops.softplus(x))


def _mish_derivative(x: Tensor) -> Tensor:
    t = ops.tanh(ops.softplus(x))
    return t + x * (1 - t * t) * ops.sigmoid(x)


def _hard_sigmoid(x: Tensor) -> Tensor:
    return ops.relu6(x + 3) / 6


def _sparse_plus_derivative(x: Tensor) -> Tensor:
    return _inside(x, -1.0, 1.0) * (x + 1) / 2 + ops.cast(ops.greater_equal(x, 1.0), x.dtype)


def _hard_silu_derivative(x: Tensor) -> Tensor:
    return _hard_sigmoid(x) + x * _inside(x, -3.0, 3.0) / 6




def leaky_relu(slope: float) -> tuple[Function, Function]:
    """``leaky_relu`` with its ``negative_slope`` and its derivative (the slope the backend applies)."""
    return (
        lambda x: ops.leaky_relu(x, negative_slope=slope),
        # TensorFlow keeps the slope as a float32 attribute: read it back as the backend's own -f(-1)
        lambda x: _where(x > 0, x, 1.0, -ops.leaky_relu(-ops.ones_like(x), negative_slope=slope)),
    )


#: name -> (activation, derivative as a function of the activation's *input*)
ELEMENTWISE: Mapping[str, tuple[Function, Function]] = MappingProxyType(
    {
        "linear": (lambda x: x, ops.ones_like),
        "relu": (ops.relu, lambda x: ops.cast(x > 0, x.dtype)),
        "relu6": (ops.relu6, lambda x: _inside(x, 0.0, 6.0)),
        "leaky_relu": leaky_relu(LEAKY_RELU_SLOPE),
        "elu": (ops.elu, lambda x: _where(x > 0, x, 1.0, ops.exp(x))),
        "selu": (ops.selu, lambda x: _SELU_SCALE * _where(x > 0, x, 1.0, _SELU_ALPHA * ops.exp(x))),
        "celu": (ops.celu, lambda x: _where(x > 0, x, 1.0, ops.exp(x))),
        "gelu": (_gelu, _gelu_derivative),
        "gelu_approximate": (_gelu_tanh, _gelu_tanh_derivative),
        "sigmoid": (ops.sigmoid, lambda x: ops.sigmoid(x) * (1 - ops.sigmoid(x))),
        "hard_sigmoid": (ops.hard_sigmoid, lambda x: _inside(x, -3.0, 3.0) / 6),
        "log_sigmoid": (ops.log_sigmoid, lambda x: ops.sigmoid(-x)),
        "sparse_sigmoid": (ops.sparse_sigmoid, lambda x: _inside(x, -1.0, 1.0) / 2),
        "tanh": (ops.tanh, lambda x: 1 - ops.tanh(x) ** 2),
        "hard_tanh": (ops.hard_tanh, lambda x: _inside(x, -1.0, 1.0)),
        "tanh_shrink": (ops.tanh_shrink, lambda x: ops.tanh(x) ** 2),
        "softplus": (ops.softplus, ops.sigmoid),
        "sparse_plus": (ops.sparse_plus, _sparse_plus_derivative),
        "squareplus": (
            lambda x: ops.squareplus(x, _SQUAREPLUS_B),
            lambda x: (1 + x / ops.sqrt(x * x + _SQUAREPLUS_B)) / 2,
        ),
        "softsign": (ops.softsign, lambda x: 1 / (1 + ops.abs(x)) ** 2),
        "silu": (ops.silu, _silu_derivative),
        "hard_silu": (ops.hard_silu, _hard_silu_derivative),
        "mish": (_mish, _mish_derivative),
        "exponential": (ops.exp, ops.exp),
        "soft_shrink": (
            lambda x: ops.soft_shrink(x, _SHRINK),
            lambda x: ops.cast(ops.abs(x) > _SHRINK, x.dtype),
        ),
        "hard_shrink": (
            lambda x: ops.hard_shrink(x, _SHRINK),
            lambda x: ops.cast(ops.abs(x) > _SHRINK, x.dtype),
        ),
    }
)


def functions(spec: ActivationSpec) -> tuple[Function, Function]:
    """The node's activation and derivative (:data:`ELEMENTWISE`, or ``leaky_relu`` with the spec's slope)."""
    if spec.activation == "leaky_relu" and spec.negative_slope != LEAKY_RELU_SLOPE:
        return leaky_relu(spec.negative_slope)
    return ELEMENTWISE[spec.activation]


class ActivationNode(NodeType):
    """Keras ``Activation`` (elementwise): relevance passes unchanged; gradient by the derivative."""

    kinds: ClassVar[tuple[str, ...]] = ("activation",)

    def cache_floats(self, spec: ActivationSpec, steps: int) -> int:
        """The input, per step read (for the derivative)."""
        return steps * spec.features

    def forward(
        self, spec: ActivationSpec, params: Any, inputs: Sequence[Tensor], mask: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """``f(x)``; the cache keeps ``x``."""
        return functions(spec)[0](inputs[0]), inputs[0]

    def relevance(
        self, spec: ActivationSpec, params: Any, cache: Tensor, relevance: Tensor, ctx: NodeContext
    ) -> tuple[tuple[Tensor | None, ...], Tensor | None]:
        """The identity: the relevance of ``f(x)_j`` is that of ``x_j``."""
        return (relevance,), None

    def gradient(
        self, spec: ActivationSpec, params: Any, cache: Tensor, grad: Tensor, ctx: NodeContext
    ) -> tuple[Tensor | None, ...]:
        """``grad · f'(x)``."""
        return (grad * functions(spec)[1](cache),)


class PReLUNode(NodeType):
    """Keras ``PReLU``: ``relu(x) - alpha * relu(-x)``; relevance passes unchanged, gradient 1 or alpha."""

    kinds: ClassVar[tuple[str, ...]] = ("prelu",)

    def params(self, spec: PReLUSpec, arrays: Sequence[Tensor]) -> Tensor:
        """``[alpha]`` -> alpha (F,)."""
        return arrays[0]

    def cache_floats(self, spec: PReLUSpec, steps: int) -> int:
        """The input, per step read (for the derivative)."""
        return steps * spec.features

    def forward(
        self, spec: PReLUSpec, params: Tensor, inputs: Sequence[Tensor], mask: Tensor | None
    ) -> tuple[Tensor, Tensor]:
        """Keras's arithmetic: ``relu(x) + (-alpha) · relu(-x)``; the cache keeps ``x``."""
        x = inputs[0]
        return ops.relu(x) + (-params) * ops.relu(-x), x

    def relevance(
        self, spec: PReLUSpec, params: Tensor, cache: Tensor, relevance: Tensor, ctx: NodeContext
    ) -> tuple[tuple[Tensor | None, ...], Tensor | None]:
        """The identity: the relevance of ``y_j`` is that of ``x_j``."""
        return (relevance,), None

    def gradient(
        self, spec: PReLUSpec, params: Tensor, cache: Tensor, grad: Tensor, ctx: NodeContext
    ) -> tuple[Tensor | None, ...]:
        """``grad`` where ``x > 0``, else ``grad · alpha``."""
        return (grad * ops.where(cache > 0, ops.ones_like(cache), params + ops.zeros_like(cache)),)
