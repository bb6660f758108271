"""The plain recurrent cell (Keras ``SimpleRNN``, PyTorch ``nn.RNN``): one block, no gates.

Forward, one step, batch B, inputs D, units H (Keras ``SimpleRNNCell``)::

    z = x_t @ kernel + bias + h_prev @ recurrent_kernel          (B, H)
    h = activation(z)

PyTorch ``nn.RNN`` has two biases ``b_ih`` and ``b_hh``; they enter ``z`` only through their
sum, which is this cell's ``bias`` (the converter adds them).

LRP backward, one step (Arras et al. 2017's rule for the linear map feeding a recurrent
unit): the activation passes relevance unchanged to ``z``, an ε-node over ``[x_t, h_prev]``
(N = D + H) with bias ``bias``; with ``bias_factor = 1`` the step conserves exactly (relevance
in at ``h`` = relevance out at ``x_t`` plus ``h_prev``; at the zero initial state the part
that reaches ``h_prev`` is the bias share alone). There are no gates, so the product rule
does not matter: every rule gives the same relevance.

Gradient: ``dz = dh ⊙ activation'(z)``, the derivative written from the output
``activation(z)`` as in :mod:`tf_lrp.cells.activations`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from keras import ops

from ..layout import RecurrentSpec
from ..rules import RuleSet, epsilon_node
from .activations import ACTIVATIONS

Tensor = Any

CELL = "simple_rnn"
#: one block: the pre-activation ``z`` (width H in every template that sizes by gates).
GATES = ("candidate",)


class SimpleRNNParams(NamedTuple):
    """One direction's weights in Keras layout."""

    kernel: Tensor  # (D, H)
    recurrent_kernel: Tensor  # (H, H)
    bias: Tensor  # (H,); zeros when the layer has use_bias=False


class SimpleRNNGates(NamedTuple):
    """What one step keeps besides its state, (B, H)."""

    candidate_pre: Tensor  # z, the pre-activation (the ε-node's denominator)


class SimpleRNNCache(NamedTuple):
    """What the backward passes need, stacked over time: each field (T, B, H).

    Two H-vectors per step and sample: ``h`` itself is not kept (the gradient recomputes
    ``activation(candidate_pre)``), since for ``relu`` the output does not determine ``z``
    while ``z`` determines the output.
    """

    h_prev: Tensor
    candidate_pre: Tensor


def params_from_arrays(spec: RecurrentSpec, arrays: Sequence[Tensor]) -> SimpleRNNParams:
    """Build params from one direction's arrays ``[kernel, recurrent_kernel, (bias)]``."""
    kernel, recurrent_kernel = arrays[0], arrays[1]
    bias = arrays[2] if spec.use_bias else ops.zeros((spec.units,), dtype=kernel.dtype)
    return SimpleRNNParams(kernel, recurrent_kernel, bias)


def project_inputs(params: SimpleRNNParams, x: Tensor) -> Tensor:
    """``x @ kernel + bias`` for every step at once: (T, B, D) -> (T, B, H)."""
    return ops.matmul(x, params.kernel) + params.bias


def initial_state(zeros: Tensor) -> tuple[Tensor]:
    """Zero ``(h,)`` shaped like ``zeros`` (B, H)."""
    return (zeros,)


def gates_template(zeros: Tensor) -> SimpleRNNGates:
    """Zero step values, the scan's output template."""
    return SimpleRNNGates(zeros)


def forward_step(
    spec: RecurrentSpec, params: SimpleRNNParams, state: tuple[Tensor], projected: Tensor
) -> tuple[tuple[Tensor], SimpleRNNGates]:
    """One step ``h = activation(projected + h_prev @ recurrent_kernel)``.

    Args:
        spec: the layer (units, activation).
        params: the direction's weights.
        state: ``(h_prev,)`` (B, H).
        projected: (B, H) this step's input projection ``x_t @ kernel + bias``.

    Returns:
        The new state ``(h,)`` and the step's pre-activation.
    """
    (h_prev,) = state
    activation, _ = ACTIVATIONS[spec.activation]
    candidate_pre = projected + ops.matmul(h_prev, params.recurrent_kernel)
    return (activation(candidate_pre),), SimpleRNNGates(candidate_pre)


def make_cache(states: tuple[Tensor], previous: tuple[Tensor], gates: SimpleRNNGates) -> SimpleRNNCache:
    """Assemble the stacked cache from the scanned states, the previous states and the step values."""
    return SimpleRNNCache(h_prev=previous[0], candidate_pre=gates.candidate_pre)


def relevance_cache(
    spec: RecurrentSpec, params: SimpleRNNParams, cache: SimpleRNNCache, x: Tensor, rules: RuleSet
) -> SimpleRNNCache:
    """What :func:`relevance_step` reads: the cache itself (no gates, whatever the product rule)."""
    return cache


def relevance_step(
    spec: RecurrentSpec,
    params: SimpleRNNParams,
    cache: SimpleRNNCache,
    relevance: tuple[Tensor],
    eps: Tensor,
    bias_factor: Tensor,
    rules: RuleSet,
) -> tuple[tuple[Tensor], tuple[Tensor, Tensor]]:
    """LRP through one step: the activation passes ``R_h`` to ``z``, an ε-node over ``[x_t, h_prev]``.

    Args:
        spec: the layer.
        params: the direction's weights.
        cache: this step's cache, fields (B, H).
        relevance: ``(R_h,)`` (B, H) arriving at this step's output.
        eps: 0-d stabiliser.
        bias_factor: 0-d share factor.
        rules: the rule set (static; no gates here, so it changes nothing).

    Returns:
        ``(R_h_prev,)`` and ``(P, share)``: ``P`` (B, H) is the node's relevance over its
        stabilised pre-activation and ``share`` (B, 1) its bias share per input unit;
        :func:`input_relevance` turns them into the relevance of ``x_t``.
    """
    (R_h,) = relevance  # noqa: N806 (the papers' names)
    P, share = epsilon_node(  # noqa: N806
        cache.candidate_pre, R_h, params.bias, eps, bias_factor, spec.input_size + spec.units
    )
    R_h_prev = cache.h_prev * ops.matmul(P, ops.transpose(params.recurrent_kernel)) + share  # noqa: N806
    return (R_h_prev,), (P, share)


def input_relevance(spec: RecurrentSpec, params: SimpleRNNParams, x: Tensor, P: Tensor, share: Tensor) -> Tensor:  # noqa: N803
    """Relevance of the inputs of all steps: ``x ⊙ (P @ kernelᵀ) + share``.

    Args:
        spec: the layer.
        params: the direction's weights.
        x: (T, B, D) inputs.
        P: (T, B, H) from :func:`relevance_step`.
        share: (T, B, 1).

    Returns:
        (T, B, D).
    """
    return x * ops.matmul(P, ops.transpose(params.kernel)) + share


def gradient_step(
    spec: RecurrentSpec, params: SimpleRNNParams, cache: SimpleRNNCache, grads: tuple[Tensor]
) -> tuple[tuple[Tensor], Tensor]:
    """Backpropagation through one step.

    Args:
        spec: the layer.
        params: the direction's weights.
        cache: this step's cache.
        grads: ``(dh,)`` (B, H), the gradient at this step's output.

    Returns:
        ``(dh_prev,)`` and ``dz`` (B, H), the gradient of the step's pre-activation;
        :func:`input_gradient` maps it to ``x_t``.
    """
    (dh,) = grads
    activation, derivative = ACTIVATIONS[spec.activation]
    dz = dh * derivative(activation(cache.candidate_pre))
    return (ops.matmul(dz, ops.transpose(params.recurrent_kernel)),), dz


def input_gradient(spec: RecurrentSpec, params: SimpleRNNParams, dz: Tensor) -> Tensor:
    """Gradient at the inputs of all steps: (T, B, H) -> (T, B, D)."""
    return ops.matmul(dz, ops.transpose(params.kernel))
