"""Attribution methods, one signature each, and the read-only :data:`METHODS` table.

Every method is a pure ``keras.ops`` function::

    method(layout, rules, arrays, x, mask, target, eps, bias_factor) -> Attribution

with ``x`` (B, T, D) floats or (B, T) token ids, ``mask`` (B, T) bool or None, ``target`` (B,)
int32 where ``-1`` means "the predicted class", and ``eps`` / ``bias_factor`` 0-d tensors
(read by LRP only). Methods listed in :data:`EXTRA_INPUTS` take further tensors after
``bias_factor`` (a baseline, integration points, occluded positions, noise). The explainer
compiles them through :mod:`tf_lrp.backend`.
"""

from __future__ import annotations

import dataclasses
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


def _embedded(layout: NetworkLayout, arrays: Sequence[Tensor], x: Tensor) -> tuple[NetworkLayout, list[Tensor], Tensor]:
    """Move a token model's embedding lookup out of the network.

    Returns the layout and weights without the embedding and the (B, T, E) embedded inputs
    (unchanged for a network without embedding), so that methods can perturb the vectors.
    """
    if layout.embedding is None:
        return layout, list(arrays), x
    stripped = dataclasses.replace(layout, layers=layout.layers[1:])
    return stripped, list(arrays[1:]), ops.take(arrays[0], x, axis=0)


def _repeat(tensor: Tensor | None, copies: Tensor) -> Tensor | None:
    """Stack ``copies`` copies of a batch along the batch axis: (B, ...) -> (copies·B, ...)."""
    if tensor is None:
        return None
    shape = ops.shape(tensor)
    tiled = ops.broadcast_to(ops.expand_dims(tensor, 0), (copies, *shape))
    return ops.reshape(tiled, (-1, *shape[1:]))


def _picked(scores_: Tensor, target: Tensor) -> Tensor:
    """``scores_[b, target[b]]`` for (N, C) scores and (N,) targets -> (N,)."""
    return ops.sum(scores_ * _one_hot(scores_, target), axis=-1)


def integrated_gradients(
    layout: NetworkLayout,
    rules: RuleSet,
    arrays: Sequence[Tensor],
    x: Tensor,
    mask: Tensor | None,
    target: Tensor,
    eps: Tensor,
    bias_factor: Tensor,
    baseline: Tensor,
    alphas: Tensor,
    weights: Tensor,
) -> Attribution:
    """Integrated gradients (Sundararajan et al. 2017) on the straight path from a baseline.

    ``R = (x - x') ⊙ Σ_k w_k ∇f(x' + α_k (x - x'))``: a quadrature of the path integral over
    the points ``alphas`` with ``weights`` (the explainer passes the trapezoid rule). All
    points of the call run in one batched forward and backward pass: the batch is repeated
    S times, (S·B, T, D). Partial sums over chunks of ``alphas`` add up to the full result.
    For token models the path runs in embedding space.

    Args:
        layout: the network layout (static).
        rules: unused (one signature for all methods).
        arrays: weights in Keras order.
        x: (B, T, D) inputs or (B, T) token ids.
        mask: (B, T) bool or None.
        target: (B,) int32, ``-1`` for the predicted class (of ``x``).
        eps: unused.
        bias_factor: unused.
        baseline: (B, T, D) the baseline ``x'`` (embedding vectors for token models).
        alphas: (S,) points in [0, 1] on the path.
        weights: (S,) quadrature weights.

    Returns:
        The :class:`Attribution`; ``relevance`` is (B, T, D).
    """
    layout, arrays, inputs = _embedded(layout, arrays, x)
    fwd = forward(layout, arrays, inputs, mask)
    target = resolve_target(fwd.scores, target)
    points = ops.shape(alphas)[0]
    difference = inputs - baseline
    path = ops.expand_dims(baseline, 0) + alphas[:, None, None, None] * ops.expand_dims(difference, 0)
    shape = ops.shape(inputs)
    flat = ops.reshape(path, (-1, *shape[1:]))
    path_fwd = forward(layout, arrays, flat, _repeat(mask, points))
    grad = _gradient(layout, arrays, path_fwd, _repeat(target, points), rules, eps, bias_factor)
    grad = ops.reshape(grad, (points, *shape))
    average = ops.sum(weights[:, None, None, None] * grad, axis=0)
    return Attribution(average * difference, fwd.scores, target, ops.zeros_like(fwd.scores[:, 0]))


def occlusion(
    layout: NetworkLayout,
    rules: RuleSet,
    arrays: Sequence[Tensor],
    x: Tensor,
    mask: Tensor | None,
    target: Tensor,
    eps: Tensor,
    bias_factor: Tensor,
    baseline: Tensor,
    positions: Tensor,
) -> Attribution:
    """Occlusion (Zeiler & Fergus 2014) per time step: the drop of the target's score.

    For each time step ``t`` in ``positions`` the step's input vector is replaced by the
    baseline's (zeros by default; embedding vectors for token models) and the batch is
    re-scored; all P occluded copies run in one batched forward pass (P·B, T, D). The step's
    relevance ``f(x) - f(x with step t occluded)`` is spread evenly over its D features, so
    ``token_relevance`` is the score drop. Steps not in ``positions`` get 0; partial results
    over chunks of positions add up. Masked steps get exactly 0.

    Args:
        layout: the network layout (static).
        rules: unused.
        arrays: weights in Keras order.
        x: (B, T, D) inputs or (B, T) token ids.
        mask: (B, T) bool or None.
        target: (B,) int32, ``-1`` for the predicted class.
        eps: unused.
        bias_factor: unused.
        baseline: (B, T, D) replacement vectors.
        positions: (P,) int32 time steps to occlude in this call.

    Returns:
        The :class:`Attribution`; ``relevance`` is (B, T, D).
    """
    layout, arrays, inputs = _embedded(layout, arrays, x)
    fwd = forward(layout, arrays, inputs, mask)
    target = resolve_target(fwd.scores, target)
    count = ops.shape(positions)[0]
    shape = ops.shape(inputs)
    hit = ops.expand_dims(ops.arange(shape[1], dtype="int32"), 0) == ops.expand_dims(positions, 1)  # (P, T)
    occluded = ops.where(hit[:, None, :, None], ops.expand_dims(baseline, 0), ops.expand_dims(inputs, 0))
    occluded_scores = forward(layout, arrays, ops.reshape(occluded, (-1, *shape[1:])), _repeat(mask, count)).scores
    drop = ops.expand_dims(_picked(fwd.scores, target), 0) - ops.reshape(
        _picked(occluded_scores, _repeat(target, count)), (count, -1)
    )  # (P, B)
    per_step = ops.matmul(ops.transpose(drop), ops.cast(hit, drop.dtype))  # (B, T)
    if mask is not None:
        per_step = ops.where(mask, per_step, ops.zeros_like(per_step))
    features = ops.cast(shape[2], per_step.dtype)
    relevance = ops.broadcast_to(ops.expand_dims(per_step / features, -1), shape)
    return Attribution(relevance, fwd.scores, target, ops.zeros_like(fwd.scores[:, 0]))


def random(
    layout: NetworkLayout,
    rules: RuleSet,
    arrays: Sequence[Tensor],
    x: Tensor,
    mask: Tensor | None,
    target: Tensor,
    eps: Tensor,
    bias_factor: Tensor,
    noise: Tensor,
) -> Attribution:
    """A control: the given (seeded) ``noise`` (B, T, D) as relevance, 0 on masked steps.

    The explainer draws the noise from ``numpy.random.default_rng(seed)``, uniform in
    [-1, 1), so the control is reproducible on every backend.
    """
    layout, arrays, inputs = _embedded(layout, arrays, x)
    fwd = forward(layout, arrays, inputs, mask)
    target = resolve_target(fwd.scores, target)
    relevance = noise if mask is None else ops.where(mask[..., None], noise, ops.zeros_like(noise))
    return Attribution(relevance, fwd.scores, target, ops.zeros_like(fwd.scores[:, 0]))


def scores(layout: NetworkLayout, arrays: Sequence[Tensor], x: Tensor, mask: Tensor | None) -> Tensor:
    """Only the forward pass: (B, C) scores."""
    return forward(layout, arrays, x, mask).scores


Method = Callable[..., Attribution]

#: method name -> implementation; the CLI and the tests take their choices from here.
METHODS: Mapping[str, Method] = MappingProxyType(
    {
        "lrp": lrp,
        "gradient_x_input": gradient_x_input,
        "sensitivity": sensitivity,
        "integrated_gradients": integrated_gradients,
        "occlusion": occlusion,
        "random": random,
    }
)

#: Extra tensor arguments a method takes after ``bias_factor``, as (name, kind): kind
#: ``"inputs"`` is (B, T, D) like the (embedded) inputs and is split with the batch;
#: ``"points"`` is a (S,) float vector and ``"positions"`` a (P,) int32 vector, both shared by
#: the whole call; the explainer may split them into chunks and add up the relevance.
EXTRA_INPUTS: Mapping[str, tuple[tuple[str, str], ...]] = MappingProxyType(
    {
        "integrated_gradients": (("baseline", "inputs"), ("alphas", "points"), ("weights", "points")),
        "occlusion": (("baseline", "inputs"), ("positions", "positions")),
        "random": (("noise", "inputs"),),
    }
)
