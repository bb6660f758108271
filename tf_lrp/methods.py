"""Attribution methods, one signature each, and the read-only :data:`METHODS` table.

Every method is a pure ``keras.ops`` function::

    method(layout, rules, arrays, x, mask, target, eps, bias_factor, *extras, step=None) -> Attribution

with ``x`` (B, T, D) floats or (B, T) token ids (a tuple, one per input, for a network with
several inputs), ``mask`` (B, T) bool or None (likewise), ``target`` (B,) int32 where ``-1``
means "the predicted class", and ``eps`` / ``bias_factor`` 0-d tensors (read by LRP only). For
a network with per-step outputs (scores (B, T, C)), ``step`` (B,) int32 picks the explained
output step per sample, ``-1`` (or None) the sum over the valid steps. Methods listed in
:data:`EXTRA_INPUTS` take further tensors after ``bias_factor`` (a baseline, integration
points, occluded positions, noise). The explainer compiles them through :mod:`tf_lrp.backend`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, NamedTuple, overload

from keras import ops

from ._typing import Tensor
from .layout import NetworkLayout
from .network import GRADIENT, LRP, Context, Forward, backward, forward
from .rules import RuleSet


class Attribution(NamedTuple):
    """What a method returns (tensors)."""

    relevance: Any  # (B, T, D) per input dimension (embedding dimensions for token inputs); a tuple per input
    scores: Tensor  # (B, C), or (B, T, C) for per-step outputs
    target: Tensor  # (B,) int32, the explained output
    initial_state: Tensor  # (B,) relevance that reached the zero initial states (0 for gradients)
    explained: Tensor  # (B,) the explained score (summed over the explained steps for per-step outputs)


def step_weights(fwd: Forward, step: Tensor | None) -> Tensor | None:
    """(B, T) weights of the explained output steps (None for one output per sample).

    ``step`` (B,) int32: the step, or ``-1`` for every valid step; None: every valid step.
    """
    if len(fwd.scores.shape) == 2:
        return None
    every = ops.ones_like(fwd.scores[..., 0])
    if step is None:
        weights = every
    else:
        picked = ops.one_hot(ops.maximum(step, 0), ops.shape(fwd.scores)[1], dtype=every.dtype)
        weights = ops.where(ops.expand_dims(step, -1) < 0, every, picked)
    if fwd.output_mask is not None:
        weights = weights * ops.cast(fwd.output_mask, weights.dtype)
    return weights


def reduced_scores(fwd: Forward, weights: Tensor | None) -> Tensor:
    """(B, C) the scores of the explained steps, summed (the scores themselves for (B, C) outputs)."""
    if weights is None:
        return fwd.scores
    return ops.sum(fwd.scores * ops.expand_dims(weights, -1), axis=1)


def resolve_target(scores: Tensor, target: Tensor) -> Tensor:
    """``target`` with every ``-1`` replaced by the argmax of that row of ``scores``."""
    predicted = ops.cast(ops.argmax(scores, axis=-1), "int32")
    return ops.where(target < 0, predicted, ops.cast(target, "int32"))


def _one_hot(scores: Tensor, target: Tensor) -> Tensor:
    return ops.one_hot(target, ops.shape(scores)[-1], dtype=scores.dtype)


def _picked(scores_: Tensor, target: Tensor) -> Tensor:
    """``scores_[b, target[b]]`` for (N, C) scores and (N,) targets -> (N,)."""
    return ops.sum(scores_ * _one_hot(scores_, target), axis=-1)


def _seed(fwd: Forward, weights: Tensor | None, target: Tensor, times_score: bool) -> Tensor:
    """The signal at the scores: one-hot at the target (times the score for LRP), per explained step."""
    seed = _one_hot(fwd.scores, target)
    if weights is not None:
        seed = ops.expand_dims(weights, -1) * ops.expand_dims(seed, 1)
    return seed * fwd.scores if times_score else seed


class _Setup(NamedTuple):
    fwd: Forward
    weights: Tensor | None  # (B, T) explained steps, or None
    target: Tensor  # (B,) resolved
    explained: Tensor  # (B,) explained score


def _setup(
    layout: NetworkLayout, arrays: Sequence[Tensor], x: Any, mask: Any, target: Tensor, step: Tensor | None,
    embedded: bool = False,
) -> _Setup:  # fmt: skip
    """The forward pass, the explained steps, the resolved target and the explained score."""
    fwd = forward(layout, arrays, x, mask, embedded)
    weights = step_weights(fwd, step)
    scores2d = reduced_scores(fwd, weights)
    target = resolve_target(scores2d, target)
    return _Setup(fwd, weights, target, _picked(scores2d, target))


def _per_input(layout: NetworkLayout, signals: Sequence[Tensor]) -> Any:
    """One tensor for a single-input network, else the tuple (one per input)."""
    return signals[0] if len(layout.inputs) == 1 else tuple(signals)


def _zeros(fwd: Forward) -> Tensor:
    """(B,) zeros of the scores' dtype."""
    return ops.zeros_like(fwd.scores[:, 0] if len(fwd.scores.shape) == 2 else fwd.scores[:, 0, 0])


def _gradients(
    layout: NetworkLayout, arrays: Sequence[Tensor], setup: _Setup, rules: RuleSet, eps: Tensor, bias_factor: Tensor
) -> tuple[Tensor, ...]:
    """The gradient of the explained score at every input's attribution point."""
    seed = _seed(setup.fwd, setup.weights, setup.target, False)
    return backward(GRADIENT, layout, arrays, setup.fwd, seed, Context(eps, bias_factor, rules)).all_inputs


def lrp(
    layout: NetworkLayout,
    rules: RuleSet,
    arrays: Sequence[Tensor],
    x: Any,
    mask: Any,
    target: Tensor,
    eps: Tensor,
    bias_factor: Tensor,
    step: Tensor | None = None,
) -> Attribution:
    """Layer-wise relevance propagation (Arras et al. 2017), seeded with the target's score."""
    setup = _setup(layout, arrays, x, mask, target, step)
    seed = _seed(setup.fwd, setup.weights, setup.target, True)
    result = backward(LRP, layout, arrays, setup.fwd, seed, Context(eps, bias_factor, rules))
    relevance = _per_input(layout, result.all_inputs)
    return Attribution(relevance, setup.fwd.scores, setup.target, result.initial_state, setup.explained)


def gradient_x_input(
    layout: NetworkLayout,
    rules: RuleSet,
    arrays: Sequence[Tensor],
    x: Any,
    mask: Any,
    target: Tensor,
    eps: Tensor,
    bias_factor: Tensor,
    step: Tensor | None = None,
) -> Attribution:
    """Gradient of the target's score times the input (Shrikumar et al. 2016)."""
    setup = _setup(layout, arrays, x, mask, target, step)
    grads = _gradients(layout, arrays, setup, rules, eps, bias_factor)
    relevance = _per_input(layout, [g * a for g, a in zip(grads, setup.fwd.all_inputs, strict=True)])
    return Attribution(relevance, setup.fwd.scores, setup.target, _zeros(setup.fwd), setup.explained)


def sensitivity(
    layout: NetworkLayout,
    rules: RuleSet,
    arrays: Sequence[Tensor],
    x: Any,
    mask: Any,
    target: Tensor,
    eps: Tensor,
    bias_factor: Tensor,
    step: Tensor | None = None,
) -> Attribution:
    """Sensitivity analysis: the squared gradient of the target's score (Simonyan et al. 2014)."""
    setup = _setup(layout, arrays, x, mask, target, step)
    grads = _gradients(layout, arrays, setup, rules, eps, bias_factor)
    relevance = _per_input(layout, [g * g for g in grads])
    return Attribution(relevance, setup.fwd.scores, setup.target, _zeros(setup.fwd), setup.explained)


@overload
def _repeat(tensor: Tensor, copies: Tensor) -> Tensor: ...
@overload
def _repeat(tensor: None, copies: Tensor) -> None: ...
def _repeat(tensor: Tensor | None, copies: Tensor) -> Tensor | None:
    """Stack ``copies`` copies of a batch along the batch axis: (B, ...) -> (copies·B, ...)."""
    if tensor is None:
        return None
    shape = ops.shape(tensor)
    tiled = ops.broadcast_to(ops.expand_dims(tensor, 0), (copies, *shape))
    return ops.reshape(tiled, (-1, *shape[1:]))


def _single(layout: NetworkLayout, name: str) -> None:
    if len(layout.inputs) != 1:
        raise NotImplementedError(f"{name} takes networks with one input")  # the explainer refuses first


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
    step: Tensor | None = None,
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
        step: per-step outputs: (B,) the explained step, -1 for all.

    Returns:
        The :class:`Attribution`; ``relevance`` is (B, T, D).
    """
    _single(layout, "integrated_gradients")
    setup = _setup(layout, arrays, x, mask, target, step)
    inputs = setup.fwd.inputs
    points = ops.shape(alphas)[0]
    difference = inputs - baseline
    path = ops.expand_dims(baseline, 0) + alphas[:, None, None, None] * ops.expand_dims(difference, 0)
    shape = ops.shape(inputs)
    flat = ops.reshape(path, (-1, *shape[1:]))
    path_setup = _setup(layout, arrays, flat, _repeat(mask, points), _repeat(setup.target, points),
                        _repeat(step, points), embedded=True)  # fmt: skip
    (grad,) = _gradients(layout, arrays, path_setup, rules, eps, bias_factor)
    grad = ops.reshape(grad, (points, *shape))
    average = ops.sum(weights[:, None, None, None] * grad, axis=0)
    return Attribution(average * difference, setup.fwd.scores, setup.target, _zeros(setup.fwd), setup.explained)


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
    step: Tensor | None = None,
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
        step: per-step outputs: (B,) the explained step, -1 for all.

    Returns:
        The :class:`Attribution`; ``relevance`` is (B, T, D).
    """
    _single(layout, "occlusion")
    setup = _setup(layout, arrays, x, mask, target, step)
    inputs = setup.fwd.inputs
    count = ops.shape(positions)[0]
    shape = ops.shape(inputs)
    hit = ops.expand_dims(ops.arange(shape[1], dtype="int32"), 0) == ops.expand_dims(positions, 1)  # (P, T)
    occluded = ops.where(hit[:, None, :, None], ops.expand_dims(baseline, 0), ops.expand_dims(inputs, 0))
    occluded_setup = _setup(layout, arrays, ops.reshape(occluded, (-1, *shape[1:])), _repeat(mask, count),
                            _repeat(setup.target, count), _repeat(step, count), embedded=True)  # fmt: skip
    drop = ops.expand_dims(setup.explained, 0) - ops.reshape(occluded_setup.explained, (count, -1))  # (P, B)
    per_step = ops.matmul(ops.transpose(drop), ops.cast(hit, drop.dtype))  # (B, T)
    if mask is not None:
        per_step = ops.where(mask, per_step, ops.zeros_like(per_step))
    features = ops.cast(shape[2], per_step.dtype)
    relevance = ops.broadcast_to(ops.expand_dims(per_step / features, -1), shape)
    return Attribution(relevance, setup.fwd.scores, setup.target, _zeros(setup.fwd), setup.explained)


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
    step: Tensor | None = None,
) -> Attribution:
    """A control: the given (seeded) ``noise`` (B, T, D) as relevance, 0 on masked steps.

    The explainer draws the noise from ``numpy.random.default_rng(seed)``, uniform in
    [-1, 1), so the control is reproducible on every backend.
    """
    _single(layout, "random")
    setup = _setup(layout, arrays, x, mask, target, step)
    relevance = noise if mask is None else ops.where(mask[..., None], noise, ops.zeros_like(noise))
    return Attribution(relevance, setup.fwd.scores, setup.target, _zeros(setup.fwd), setup.explained)


def scores(layout: NetworkLayout, arrays: Sequence[Tensor], x: Any, mask: Any) -> Tensor:
    """Only the forward pass: (B, C) scores ((B, T, C) for per-step outputs)."""
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
