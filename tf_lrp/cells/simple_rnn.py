"""The simple recurrent cell (Keras ``SimpleRNN``, PyTorch ``nn.RNN``): one block, no gates.

Forward, one step, batch B, units H (Keras ``SimpleRNNCell``)::

    a = x_t @ kernel + bias + h_prev @ recurrent_kernel        (B, H)
    h = activation(a)

LRP backward, one step: the activation passes relevance unchanged to its pre-activation ``a``,
an ε-node over ``[x_t, h_prev]`` with N = D + H and bias ``bias``; with bias_factor = 1 it
conserves exactly. Without gates the product rules have nothing to split: every rule set gives
the same relevance.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from keras import ops

from .._typing import Tensor
from ..layout import SIMPLE_RNN_GATES, RecurrentSpec
from ..rules import NodeRules, epsilon_node
from .activations import ACTIVATIONS

CELL = "simple_rnn"
GATES = SIMPLE_RNN_GATES
#: H-vectors the forward keeps per step for the backward passes (h_prev, a, h and the output)
CACHE_VECTORS = 4


class SimpleRNNParams(NamedTuple):
    """One direction's weights in Keras layout."""

    kernel: Tensor  # (D, H)
    recurrent_kernel: Tensor  # (H, H)
    bias: Tensor  # (H,); zeros when the layer has use_bias=False


class SimpleRNNGates(NamedTuple):
    """What one step keeps besides the state, each (B, H)."""

    pre: Tensor  # a, the pre-activation (the ε-node's denominator)


class SimpleRNNCache(NamedTuple):
    """What the backward passes need, stacked over time: each field (T, B, H)."""

    h_prev: Tensor
    h: Tensor
    pre: Tensor


def params_from_arrays(spec: RecurrentSpec, arrays: Sequence[Tensor]) -> SimpleRNNParams:
    """Build params from one direction's arrays ``[kernel, recurrent_kernel, (bias)]``."""
    kernel, recurrent_kernel = arrays[0], arrays[1]
    bias = arrays[2] if spec.use_bias else ops.zeros((spec.units,), dtype=kernel.dtype)
    return SimpleRNNParams(kernel, recurrent_kernel, bias)


def project_inputs(params: SimpleRNNParams, x: Tensor) -> Tensor:
    """``x @ kernel + bias`` for every step at once: (T, B, D) -> (T, B, H)."""
    return ops.matmul(x, params.kernel) + params.bias


def initial_state(zeros: Tensor) -> tuple[Tensor]:
    """Zero ``(h,)``, shaped like ``zeros`` (B, H)."""
    return (zeros,)


def gates_template(zeros: Tensor) -> SimpleRNNGates:
    """Zero step values, the scan's output template."""
    return SimpleRNNGates(zeros)


def forward_step(
    spec: RecurrentSpec, params: SimpleRNNParams, state: tuple[Tensor], projected: Tensor
) -> tuple[tuple[Tensor], SimpleRNNGates]:
    """One step: ``h = activation(projected + h_prev @ recurrent_kernel)``.

    Args:
        spec: the layer (its activation).
        params: the direction's weights.
        state: ``(h_prev,)`` (B, H).
        projected: (B, H) this step's input projection ``x_t @ kernel + bias``.

    Returns:
        The new state ``(h,)`` and the step's pre-activation.
    """
    (h_prev,) = state
    pre = projected + ops.matmul(h_prev, params.recurrent_kernel)
    return (ACTIVATIONS[spec.activation][0](pre),), SimpleRNNGates(pre)


def make_cache(states: tuple[Tensor], previous: tuple[Tensor], gates: SimpleRNNGates) -> SimpleRNNCache:
    """Assemble the stacked cache from the scanned states, the previous states and the step values."""
    return SimpleRNNCache(h_prev=previous[0], h=states[0], pre=gates.pre)


def relevance_cache(
    spec: RecurrentSpec, params: SimpleRNNParams, cache: SimpleRNNCache, x: Tensor, rules: NodeRules
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
    rules: NodeRules,
) -> tuple[tuple[Tensor], tuple[Tensor, Tensor]]:
    """LRP through one step: the ε-rule over ``[x_t, h_prev]``; the activation passes relevance.

    Args:
        spec: the layer.
        params: the direction's weights.
        cache: this step's cache, fields (B, H).
        relevance: ``(R_h,)`` (B, H) arriving at this step's output.
        eps: 0-d stabiliser.
        bias_factor: 0-d share factor.
        rules: the node's rules (unused: a cell without gates has no product to split).

    Returns:
        ``(R_h_prev,)`` and ``(P, share)``: ``P`` (B, H) is the relevance over the stabilised
        pre-activation and ``share`` (B, 1) the bias share per input unit; :func:`input_relevance`
        turns them into the relevance of ``x_t``.
    """
    (R_h,) = relevance  # noqa: N806 (the papers' names)
    P, share = epsilon_node(cache.pre, R_h, params.bias, eps, bias_factor, spec.input_size + spec.units)  # noqa: N806
    R_h_prev = cache.h_prev * ops.matmul(P, ops.transpose(params.recurrent_kernel)) + share  # noqa: N806
    return (R_h_prev,), (P, share)


def input_relevance(spec: RecurrentSpec, params: SimpleRNNParams, x: Tensor, P: Tensor, share: Tensor) -> Tensor:  # noqa: N803
    """Relevance of the inputs of all steps: ``x ⊙ (P @ kernelᵀ) + share``: (T, B, D)."""
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
        ``(dh_prev,)`` and ``da`` (B, H), the gradient of the pre-activation;
        :func:`input_gradient` maps it to ``x_t``.
    """
    (dh,) = grads
    _, derivative = ACTIVATIONS[spec.activation]
    da = dh * derivative(cache.h)
    return (ops.matmul(da, ops.transpose(params.recurrent_kernel)),), da


def input_gradient(spec: RecurrentSpec, params: SimpleRNNParams, da: Tensor) -> Tensor:
    """Gradient at the inputs of all steps: (T, B, H) -> (T, B, D)."""
    return ops.matmul(da, ops.transpose(params.kernel))
