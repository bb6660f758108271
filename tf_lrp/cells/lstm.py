"""The LSTM cell (Keras layout, gate order input, forget, cell, output).

Forward, one step, batch B, units H (Keras ``LSTMCell``)::

    z = x_t @ kernel + bias + h_prev @ recurrent_kernel          (B, 4H)
    i, f, o = recurrent_activation(z[input | forget | output])
    g = activation(z[cell])                                        the candidate
    c = f ⊙ c_prev + i ⊙ g
    h = o ⊙ activation(c)

LRP backward, one step (Arras et al. 2017, signal-take-all): all relevance of ``h`` goes to
``c`` (``o`` is a gate); ``c = f⊙c_prev + i⊙g`` is a sum node (N = 2H); the relevance of
``i⊙g`` goes to ``g``, then unchanged through the activation to its pre-activation, an
ε-node over ``[x_t, h_prev]`` with N = D + H and bias ``bias[cell]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, cast

from keras import ops

from .._typing import Tensor
from ..layout import LSTM_GATES, RecurrentSpec, gate_slice
from ..rules import RuleSet, epsilon_node, gate_takes_relevance, split_product, sum_node
from .activations import ACTIVATIONS

CELL = "lstm"
GATES = LSTM_GATES
#: H-vectors the forward keeps per step for the backward passes (the cache, the output): the memory model
CACHE_VECTORS = 9


class LSTMParams(NamedTuple):
    """One direction's weights in Keras layout."""

    kernel: Tensor  # (D, 4H)
    recurrent_kernel: Tensor  # (H, 4H)
    bias: Tensor  # (4H,); zeros when the layer has use_bias=False


class LSTMGates(NamedTuple):
    """The gate values of one step, each (B, H)."""

    input: Tensor
    forget: Tensor
    candidate: Tensor
    output: Tensor
    candidate_pre: Tensor  # pre-activation of the candidate (the ε-node's denominator)


class LSTMCache(NamedTuple):
    """What the backward passes need, stacked over time: each field (T, B, H)."""

    h_prev: Tensor
    c_prev: Tensor
    c: Tensor
    input: Tensor
    forget: Tensor
    candidate: Tensor
    output: Tensor
    candidate_pre: Tensor


class GateCache(NamedTuple):
    """The cache plus every gate's pre-activation, for product rules that feed gates."""

    base: LSTMCache
    pre: Tensor  # (T, B, 4H) (one step: (B, 4H)): x_t @ kernel + bias + h_prev @ recurrent_kernel


def params_from_arrays(spec: RecurrentSpec, arrays: Sequence[Tensor]) -> LSTMParams:
    """Build params from one direction's arrays ``[kernel, recurrent_kernel, (bias)]``."""
    kernel, recurrent_kernel = arrays[0], arrays[1]
    bias = arrays[2] if spec.use_bias else ops.zeros((4 * spec.units,), dtype=kernel.dtype)
    return LSTMParams(kernel, recurrent_kernel, bias)


def project_inputs(params: LSTMParams, x: Tensor) -> Tensor:
    """``x @ kernel + bias`` for every step at once: (T, B, D) -> (T, B, 4H)."""
    return ops.matmul(x, params.kernel) + params.bias


def initial_state(zeros: Tensor) -> tuple[Tensor, Tensor]:
    """Zero ``(h, c)``, each shaped like ``zeros`` (B, H)."""
    return (zeros, zeros)


def gates_template(zeros: Tensor) -> LSTMGates:
    """Zero gate values, the scan's output template."""
    return LSTMGates(zeros, zeros, zeros, zeros, zeros)


def forward_step(
    spec: RecurrentSpec, params: LSTMParams, state: tuple[Tensor, Tensor], projected: Tensor
) -> tuple[tuple[Tensor, Tensor], LSTMGates]:
    """One LSTM step.

    Args:
        spec: the layer (units, activations).
        params: the direction's weights.
        state: ``(h_prev, c_prev)``, each (B, H).
        projected: (B, 4H) this step's input projection ``x_t @ kernel + bias``.

    Returns:
        The new state ``(h, c)`` and the step's gate values.
    """
    h_prev, c_prev = state
    units = spec.units
    activation, _ = ACTIVATIONS[spec.activation]
    recurrent_activation, _ = ACTIVATIONS[spec.recurrent_activation]
    z = projected + ops.matmul(h_prev, params.recurrent_kernel)
    input_gate = recurrent_activation(z[:, gate_slice("input", CELL, units)])
    forget_gate = recurrent_activation(z[:, gate_slice("forget", CELL, units)])
    output_gate = recurrent_activation(z[:, gate_slice("output", CELL, units)])
    candidate_pre = z[:, gate_slice("cell", CELL, units)]
    candidate = activation(candidate_pre)
    c = forget_gate * c_prev + input_gate * candidate
    h = output_gate * activation(c)
    return (h, c), LSTMGates(input_gate, forget_gate, candidate, output_gate, candidate_pre)


def make_cache(states: tuple[Tensor, Tensor], previous: tuple[Tensor, Tensor], gates: LSTMGates) -> LSTMCache:
    """Assemble the stacked cache from the scanned states, the previous states and the gates."""
    return LSTMCache(
        h_prev=previous[0],
        c_prev=previous[1],
        c=states[1],
        input=gates.input,
        forget=gates.forget,
        candidate=gates.candidate,
        output=gates.output,
        candidate_pre=gates.candidate_pre,
    )


def relevance_cache(spec: RecurrentSpec, params: LSTMParams, cache: LSTMCache, x: Tensor, rules: RuleSet) -> Any:
    """What :func:`relevance_step` reads: the cache, plus gate pre-activations if needed.

    Only product rules that give gates relevance need every gate's pre-activation; it is
    computed for all steps at once (two matmuls), outside the scan.

    Args:
        spec: the layer.
        params: the direction's weights.
        cache: the stacked forward cache, fields (T, B, H).
        x: (T, B, D) the layer's inputs.
        rules: the rule set (static).

    Returns:
        ``cache`` itself, or a :class:`GateCache`.
    """
    if not gate_takes_relevance(rules.product):
        return cache
    pre = ops.matmul(x, params.kernel) + params.bias + ops.matmul(cache.h_prev, params.recurrent_kernel)
    return GateCache(cache, pre)


def _relevance_step_gates(
    spec: RecurrentSpec,
    params: LSTMParams,
    cached: GateCache,
    relevance: tuple[Tensor, Tensor],
    eps: Tensor,
    bias_factor: Tensor,
    rules: RuleSet,
) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """LRP through one step with a product rule that gives the gates relevance.

    Each product ``gate ⊙ signal`` (``o ⊙ act(c)``, ``f ⊙ c_prev``, ``i ⊙ g``) is split by
    ``rules.product``; a gate's share passes its activation unchanged to its pre-activation;
    all four gate pre-activations form one ε-node over ``[x_t, h_prev]`` (N = D + H, bias
    ``bias``). Returns ``P`` over all 4H pre-activations (gate order) and the summed share.
    """
    cache = cached.base
    R_h, R_c = relevance  # noqa: N806
    units, input_size = spec.units, spec.input_size
    activation, _ = ACTIVATIONS[spec.activation]
    R_output, R_act = split_product(rules.product, cache.output, activation(cache.c), R_h, eps, bias_factor)  # noqa: N806
    R_forget_term, R_input_term = sum_node(  # noqa: N806
        (cache.forget * cache.c_prev, cache.input * cache.candidate),
        cache.c,
        R_c + R_act,
        eps,
        bias_factor,
        rules.sum_spread,
    )
    R_forget, R_c_prev = split_product(rules.product, cache.forget, cache.c_prev, R_forget_term, eps, bias_factor)  # noqa: N806
    R_input, R_candidate = split_product(  # noqa: N806
        rules.product, cache.input, cache.candidate, R_input_term, eps, bias_factor
    )
    per_gate = {"input": R_input, "forget": R_forget, "cell": R_candidate, "output": R_output}
    R_pre = ops.concatenate([per_gate[gate] for gate in GATES], axis=-1)  # noqa: N806
    P, share = epsilon_node(cached.pre, R_pre, params.bias, eps, bias_factor, input_size + units)  # noqa: N806
    R_h_prev = cache.h_prev * ops.matmul(P, ops.transpose(params.recurrent_kernel)) + share  # noqa: N806
    return (R_h_prev, R_c_prev), (P, share)


def relevance_step(
    spec: RecurrentSpec,
    params: LSTMParams,
    cache: LSTMCache,
    relevance: tuple[Tensor, Tensor],
    eps: Tensor,
    bias_factor: Tensor,
    rules: RuleSet,
) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """LRP through one LSTM step (Arras et al. 2017).

    Args:
        spec: the layer.
        params: the direction's weights.
        cache: this step's cache, fields (B, H) (from :func:`relevance_cache`).
        relevance: ``(R_h, R_c)`` (B, H) arriving at this step's ``h`` and ``c``.
        eps: 0-d stabiliser.
        bias_factor: 0-d share factor.
        rules: the rule set (static).

    Returns:
        ``(R_h_prev, R_c_prev)`` and ``(P, share)``: ``P`` (B, H) is the candidate node's
        relevance over its stabilised pre-activation and ``share`` (B, 1) its bias share per
        input unit; :func:`input_relevance` turns them into the relevance of ``x_t``.
    """
    if gate_takes_relevance(rules.product):
        return _relevance_step_gates(spec, params, cast(GateCache, cache), relevance, eps, bias_factor, rules)
    R_h, R_c = relevance  # noqa: N806 (the papers' names)
    units, input_size = spec.units, spec.input_size
    R_c = R_c + R_h  # noqa: N806 (signal-take-all: h = output ⊙ act(c) gives all to c)
    R_c_prev, R_candidate = sum_node(  # noqa: N806
        (cache.forget * cache.c_prev, cache.input * cache.candidate),
        cache.c,
        R_c,
        eps,
        bias_factor,
        rules.sum_spread,
    )
    # the candidate's activation passes relevance unchanged to its pre-activation
    candidate_bias = params.bias[gate_slice("cell", CELL, units)]
    P, share = epsilon_node(  # noqa: N806
        cache.candidate_pre, R_candidate, candidate_bias, eps, bias_factor, input_size + units
    )
    recurrent_candidate = params.recurrent_kernel[:, gate_slice("cell", CELL, units)]
    R_h_prev = cache.h_prev * ops.matmul(P, ops.transpose(recurrent_candidate)) + share  # noqa: N806
    return (R_h_prev, R_c_prev), (P, share)


def input_relevance(spec: RecurrentSpec, params: LSTMParams, x: Tensor, P: Tensor, share: Tensor) -> Tensor:  # noqa: N803
    """Relevance of the inputs of all steps: ``x ⊙ (P @ kernel[cell]ᵀ) + share``.

    Args:
        spec: the layer.
        params: the direction's weights.
        x: (T, B, D) inputs.
        P: (T, B, H) from :func:`relevance_step`; (T, B, 4H) over all gates when the product
            rule gives gates relevance (then the whole kernel is used).
        share: (T, B, 1).

    Returns:
        (T, B, D).
    """
    if P.shape[-1] != spec.units:
        return x * ops.matmul(P, ops.transpose(params.kernel)) + share
    kernel_candidate = params.kernel[:, gate_slice("cell", CELL, spec.units)]
    return x * ops.matmul(P, ops.transpose(kernel_candidate)) + share


def gradient_step(
    spec: RecurrentSpec, params: LSTMParams, cache: LSTMCache, grads: tuple[Tensor, Tensor]
) -> tuple[tuple[Tensor, Tensor], Tensor]:
    """Backpropagation through one LSTM step.

    Args:
        spec: the layer.
        params: the direction's weights.
        cache: this step's cache.
        grads: ``(dh, dc)`` (B, H), the gradient at this step's ``h`` and ``c``.

    Returns:
        ``(dh_prev, dc_prev)`` and ``dz`` (B, 4H), the gradient of the step's fused
        pre-activation; :func:`input_gradient` maps it to ``x_t``.
    """
    dh, dc = grads
    activation, activation_derivative = ACTIVATIONS[spec.activation]
    _, recurrent_derivative = ACTIVATIONS[spec.recurrent_activation]
    act_c = activation(cache.c)
    dc = dc + dh * cache.output * activation_derivative(act_c)
    pre = {
        "input": dc * cache.candidate * recurrent_derivative(cache.input),
        "forget": dc * cache.c_prev * recurrent_derivative(cache.forget),
        "cell": dc * cache.input * activation_derivative(cache.candidate),
        "output": dh * act_c * recurrent_derivative(cache.output),
    }
    dz = ops.concatenate([pre[gate] for gate in GATES], axis=-1)
    dh_prev = ops.matmul(dz, ops.transpose(params.recurrent_kernel))
    return (dh_prev, dc * cache.forget), dz


def input_gradient(spec: RecurrentSpec, params: LSTMParams, dz: Tensor) -> Tensor:
    """Gradient at the inputs of all steps: (T, B, 4H) -> (T, B, D)."""
    return ops.matmul(dz, ops.transpose(params.kernel))
