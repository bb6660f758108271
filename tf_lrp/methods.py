"""Attribution methods, one signature each, and the read-only :data:`METHODS` table.

Every method is a pure ``keras.ops`` function::

    method(layout, rules, arrays, x, mask, target, eps, bias_factor) -> Attribution

with ``x`` (B, T, D) floats or (B, T) token ids, ``mask`` (B, T) bool or None, ``target`` (B,)
int32 where ``-1`` means "the predicted class", and ``eps`` / ``bias_factor`` 0-d tensors
(read by LRP only). The explainer compiles them through :mod:`tf_lrp.backend`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, NamedTuple

from keras import ops

from .layout import NetworkLayout
from .network import GRADIENT, LRP, Context, Forward, backward, forward
from .rules import RuleSet

Tensor = Any


class Attribution(NamedTuple):
    """What a method returns (tensors)."""

    relevance: Tensor  # (B, T, D) per input dimension (embedding dimensions for token models)
    scores: Tensor  # (B, C)
    target: Tensor  # (B,) int32, the explained output
    initial_state: Tensor  # (B,) relevance that reached the zero initial states (0 for gradients)


def resolve_target(scores: Tensor, target: Tensor) -> Tensor:
    """``target`` with every ``-1`` replaced by the argmax of that row of ``scores``."""
    predicted = ops.cast(ops.argmax(scores, axis=-1), "int32")
    return ops.where(target < 0, predicted, ops.cast(target, "int32"))


def _one_hot(scores: Tensor, target: Tensor) -> Tensor:
    return ops.one_hot(target, ops.shape(scores)[-1], dtype=scores.dtype)


def _gradient(
    layout: NetworkLayout,
    arrays: Sequence[Tensor],
    fwd: Forward,
    target: Tensor,
    rules: RuleSet,
    eps: Tensor,
    bias_factor: Tensor,
) -> Tensor:
    seed = _one_hot(fwd.scores, target)
    return backward(GRADIENT, layout, arrays, fwd, seed, Context(eps, bias_factor, rules)).inputs


def lrp(
    layout: NetworkLayout,
    rules: RuleSet,
    arrays: Sequence[Tensor],
    x: Tensor,
    mask: Tensor | None,
    target: Tensor,
    eps: Tensor,
    bias_factor: Tensor,
) -> Attribution:
    """Layer-wise relevance propagation (Arras et al. 2017), seeded with the target's score."""
    fwd = forward(layout, arrays, x, mask)
    target = resolve_target(fwd.scores, target)
    seed = _one_hot(fwd.scores, target) * fwd.scores
    result = backward(LRP, layout, arrays, fwd, seed, Context(eps, bias_factor, rules))
    return Attribution(result.inputs, fwd.scores, target, result.initial_state)


def gradient_x_input(
    layout: NetworkLayout,
    rules: RuleSet,
    arrays: Sequence[Tensor],
    x: Tensor,
    mask: Tensor | None,
    target: Tensor,
    eps: Tensor,
    bias_factor: Tensor,
) -> Attribution:
    """Gradient of the target's score times the input (Shrikumar et al. 2016)."""
    fwd = forward(layout, arrays, x, mask)
    target = resolve_target(fwd.scores, target)
    grad = _gradient(layout, arrays, fwd, target, rules, eps, bias_factor)
    return Attribution(grad * fwd.inputs, fwd.scores, target, ops.zeros_like(fwd.scores[:, 0]))


def sensitivity(
    layout: NetworkLayout,
    rules: RuleSet,
    arrays: Sequence[Tensor],
    x: Tensor,
    mask: Tensor | None,
    target: Tensor,
    eps: Tensor,
    bias_factor: Tensor,
) -> Attribution:
    """Sensitivity analysis: the squared gradient of the target's score (Simonyan et al. 2014)."""
    fwd = forward(layout, arrays, x, mask)
    target = resolve_target(fwd.scores, target)
    grad = _gradient(layout, arrays, fwd, target, rules, eps, bias_factor)
    return Attribution(grad * grad, fwd.scores, target, ops.zeros_like(fwd.scores[:, 0]))


def scores(layout: NetworkLayout, arrays: Sequence[Tensor], x: Tensor, mask: Tensor | None) -> Tensor:
    """Only the forward pass: (B, C) scores."""
    return forward(layout, arrays, x, mask).scores


Method = Callable[..., Attribution]

#: method name -> implementation; the CLI and the tests take their choices from here.
METHODS: Mapping[str, Method] = MappingProxyType(
    {"lrp": lrp, "gradient_x_input": gradient_x_input, "sensitivity": sensitivity}
)
