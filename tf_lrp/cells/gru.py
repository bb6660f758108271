"""The GRU cell (Keras layout, gate order update, reset, candidate), both reset_after modes.

Forward, one step, with ``gx = x_t @ kernel + input_bias`` (Keras ``GRUCell``)::

    reset_after=True  (Keras 3 default, PyTorch semantics):
        gh = h_prev @ recurrent_kernel + recurrent_bias
        z, r = recurrent_activation(gx[update] + gh[update]), recurrent_activation(gx[reset] + gh[reset])
        a = gx[candidate] + r ⊙ gh[candidate]
    reset_after=False:
        z, r as above without recurrent_bias
        a = gx[candidate] + (r ⊙ h_prev) @ recurrent_kernel[candidate]
    n = activation(a);  h = z ⊙ h_prev + (1 − z) ⊙ n

LRP backward, one step (Mirzavand Borujeni et al. 2023; spec ``docs/gru_lrp.md`` §2.3–2.4): the
gates z, r take no relevance; ``h = z⊙h_prev + (1−z)⊙n`` is a sum node (N = 2H); the
activation passes relevance unchanged; the candidate ``a`` is an ε-node over ``[x_t, h_prev]``
(N = D + H) with the reset gate frozen into its weights: for reset_after=True it scales the
output units of the recurrent product and its bias (β = b_in + r ⊙ b_rec), for
reset_after=False it scales the state that enters the recurrent product.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, cast

from keras import ops

from .._typing import Tensor
from ..layout import GRU_GATES, RecurrentSpec, gate_slice
from ..rules import RuleSet, epsilon_node, gate_takes_relevance, split_product, sum_node
from .activations import ACTIVATIONS

CELL = "gru"
GATES = GRU_GATES
#: H-vectors the forward keeps per step for the backward passes (the cache, the output): the memory model
CACHE_VECTORS = 8


class GRUParams(NamedTuple):
    """One direction's weights in Keras layout, the bias split into its two rows."""

    kernel: Tensor  # (D, 3H)
    recurrent_kernel: Tensor  # (H, 3H)
    input_bias: Tensor  # (3H,)
    recurrent_bias: Tensor  # (3H,); zeros for reset_after=False (Keras has none there)


class GRUGates(NamedTuple):
    """The gate values of one step, each (B, H)."""

    update: Tensor
    reset: Tensor
    candidate: Tensor
    candidate_pre: Tensor
    recurrent_candidate: Tensor  # reset_after=True: h_prev @ U[candidate] + b_rec; else r ⊙ h_prev


class GRUCache(NamedTuple):
    """What the backward passes need, stacked over time: each field (T, B, H)."""

    h_prev: Tensor
    h: Tensor
    update: Tensor
    reset: Tensor
    candidate: Tensor
    candidate_pre: Tensor
    recurrent_candidate: Tensor


class GateCache(NamedTuple):
    """The cache plus the gates' pre-activations, for product rules that feed gates."""

    base: GRUCache
    pre: Tensor  # (T, B, 3H) (one step: (B, 3H)): gx + h_prev @ recurrent_kernel + recurrent_bias


def params_from_arrays(spec: RecurrentSpec, arrays: Sequence[Tensor]) -> GRUParams:
    """Build params from one direction's arrays ``[kernel, recurrent_kernel, (bias)]``."""
    kernel, recurrent_kernel = arrays[0], arrays[1]
    zeros = ops.zeros((3 * spec.units,), dtype=kernel.dtype)
    if not spec.use_bias:
        return GRUParams(kernel, recurrent_kernel, zeros, zeros)
    bias = arrays[2]
    if spec.reset_after:
        return GRUParams(kernel, recurrent_kernel, bias[0], bias[1])
    return GRUParams(kernel, recurrent_kernel, bias, zeros)


def project_inputs(params: GRUParams, x: Tensor) -> Tensor:
    """``x @ kernel + input_bias`` for every step at once: (T, B, D) -> (T, B, 3H)."""
    return ops.matmul(x, params.kernel) + params.input_bias


def initial_state(zeros: Tensor) -> tuple[Tensor]:
    """Zero ``(h,)`` shaped like ``zeros`` (B, H)."""
    return (zeros,)


def gates_template(zeros: Tensor) -> GRUGates:
    """Zero gate values, the scan's output template."""
    return GRUGates(zeros, zeros, zeros, zeros, zeros)


def forward_step(
    spec: RecurrentSpec, params: GRUParams, state: tuple[Tensor], projected: Tensor
) -> tuple[tuple[Tensor], GRUGates]:
    """One GRU step.

    Args:
        spec: the layer (units, activations, reset_after).
        params: the direction's weights.
        state: ``(h_prev,)`` (B, H).
        projected: (B, 3H) ``x_t @ kernel + input_bias``.

    Returns:
        The new state ``(h,)`` and the step's gate values.
    """
    (h_prev,) = state
    units = spec.units
    update_slice, reset_slice, candidate_slice = (gate_slice(g, CELL, units) for g in GATES)
    activation, _ = ACTIVATIONS[spec.activation]
    recurrent_activation, _ = ACTIVATIONS[spec.recurrent_activation]
    gh = ops.matmul(h_prev, params.recurrent_kernel) + params.recurrent_bias
    update = recurrent_activation(projected[:, update_slice] + gh[:, update_slice])
    reset = recurrent_activation(projected[:, reset_slice] + gh[:, reset_slice])
    if spec.reset_after:
        recurrent_candidate = gh[:, candidate_slice]
        candidate_pre = projected[:, candidate_slice] + reset * recurrent_candidate
    else:
        recurrent_candidate = reset * h_prev
        candidate_pre = projected[:, candidate_slice] + ops.matmul(
            recurrent_candidate, params.recurrent_kernel[:, candidate_slice]
        )
    candidate = activation(candidate_pre)
    h = update * h_prev + (1 - update) * candidate
    return (h,), GRUGates(update, reset, candidate, candidate_pre, recurrent_candidate)


def make_cache(states: tuple[Tensor], previous: tuple[Tensor], gates: GRUGates) -> GRUCache:
    """Assemble the stacked cache from the scanned states, the previous states and the gates."""
    return GRUCache(
        h_prev=previous[0],
        h=states[0],
        update=gates.update,
        reset=gates.reset,
        candidate=gates.candidate,
        candidate_pre=gates.candidate_pre,
        recurrent_candidate=gates.recurrent_candidate,
    )


def relevance_cache(spec: RecurrentSpec, params: GRUParams, cache: GRUCache, x: Tensor, rules: RuleSet) -> Any:
    """What :func:`relevance_step` reads: the cache, plus gate pre-activations if needed.

    Only product rules that give gates relevance need the update and reset gates'
    pre-activations; they are computed for all steps at once, outside the scan (the
    candidate block of ``pre`` is not used).

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
    gx = ops.matmul(x, params.kernel) + params.input_bias
    pre = gx + ops.matmul(cache.h_prev, params.recurrent_kernel) + params.recurrent_bias
    return GateCache(cache, pre)


def _relevance_step_gates(
    spec: RecurrentSpec,
    params: GRUParams,
    cached: GateCache,
    relevance: tuple[Tensor],
    eps: Tensor,
    bias_factor: Tensor,
    rules: RuleSet,
) -> tuple[tuple[Tensor], tuple[Tensor, Tensor]]:
    """LRP through one GRU step with a product rule that gives the gates relevance.

    ``h = z⊙h_prev + (1−z)⊙n`` is a sum node of two products, each split by
    ``rules.product``. The gate ``1−z = σ(−pre_z)`` is a node over ``−pre_z``, whose ε-rule
    gives the same messages as ``pre_z``'s (the sign flips cancel), so both update-gate
    shares go through one ε-node over ``pre_z``. The candidate ``a`` is an ε-node over
    ``[x_t, m]`` (N = D + H) with ``m = r ⊙ gh_c`` (reset_after=True; ``gh_c = h_prev @ U_c +
    b_rec``) or ``m = r ⊙ h_prev`` entering through ``U_c`` (reset_after=False); ``m`` is a
    product split again, the reset gate's share going through ``pre_r``, and for
    reset_after=True the signal's share through the ε-node ``gh_c`` over ``h_prev`` (N = H).
    Returns ``P`` over all 3H pre-activations (gate order) and the summed share.
    """
    cache = cached.base
    (R_h,) = relevance  # noqa: N806
    units, input_size = spec.units, spec.input_size
    candidate_slice = gate_slice("candidate", CELL, units)
    product = rules.product
    R_keep, R_new = sum_node(  # noqa: N806
        (cache.update * cache.h_prev, (1 - cache.update) * cache.candidate),
        cache.h,
        R_h,
        eps,
        bias_factor,
        rules.sum_spread,
    )
    R_update_keep, R_h_prev = split_product(product, cache.update, cache.h_prev, R_keep, eps, bias_factor)  # noqa: N806
    R_update_new, R_candidate = split_product(  # noqa: N806
        product, 1 - cache.update, cache.candidate, R_new, eps, bias_factor
    )
    recurrent_candidate = params.recurrent_kernel[:, candidate_slice]
    if spec.reset_after:
        bias = params.input_bias[candidate_slice]
        P_candidate, share_candidate = epsilon_node(  # noqa: N806
            cache.candidate_pre, R_candidate, bias, eps, bias_factor, input_size + units
        )
        mixed = cache.reset * cache.recurrent_candidate
        R_reset, R_gh = split_product(  # noqa: N806
            product, cache.reset, cache.recurrent_candidate, mixed * P_candidate + share_candidate, eps, bias_factor
        )
        P_gh, share_gh = epsilon_node(  # noqa: N806
            cache.recurrent_candidate, R_gh, params.recurrent_bias[candidate_slice], eps, bias_factor, units
        )
        R_h_prev = R_h_prev + cache.h_prev * ops.matmul(P_gh, ops.transpose(recurrent_candidate)) + share_gh  # noqa: N806
    else:
        P_candidate, share_candidate = epsilon_node(  # noqa: N806
            cache.candidate_pre, R_candidate, params.input_bias[candidate_slice], eps, bias_factor, input_size + units
        )
        R_mixed = cache.recurrent_candidate * ops.matmul(P_candidate, ops.transpose(recurrent_candidate))  # noqa: N806
        R_reset, R_signal = split_product(  # noqa: N806
            product, cache.reset, cache.h_prev, R_mixed + share_candidate, eps, bias_factor
        )
        R_h_prev = R_h_prev + R_signal  # noqa: N806
    # one ε-node over all 3H pre-activations; the candidate block gets no relevance here
    zeros = ops.zeros_like(R_reset)
    per_gate = {"update": R_update_keep + R_update_new, "reset": R_reset, "candidate": zeros}
    R_pre = ops.concatenate([per_gate[gate] for gate in GATES], axis=-1)  # noqa: N806
    bias = params.input_bias + params.recurrent_bias
    P_gates, share_gates = epsilon_node(cached.pre, R_pre, bias, eps, bias_factor, input_size + units)  # noqa: N806
    R_h_prev = R_h_prev + cache.h_prev * ops.matmul(P_gates, ops.transpose(params.recurrent_kernel))  # noqa: N806
    P_candidate_full = ops.concatenate(  # noqa: N806
        [P_candidate if gate == "candidate" else zeros for gate in GATES], axis=-1
    )
    P = P_gates + P_candidate_full  # noqa: N806
    R_h_prev = R_h_prev + share_gates  # noqa: N806
    return (R_h_prev,), (P, share_candidate + share_gates)


def relevance_step(
    spec: RecurrentSpec,
    params: GRUParams,
    cache: GRUCache,
    relevance: tuple[Tensor],
    eps: Tensor,
    bias_factor: Tensor,
    rules: RuleSet,
) -> tuple[tuple[Tensor], tuple[Tensor, Tensor]]:
    """LRP through one GRU step (spec ``docs/gru_lrp.md`` §2.3 and §2.4).

    Args:
        spec: the layer.
        params: the direction's weights.
        cache: this step's cache, fields (B, H).
        relevance: ``(R_h,)`` (B, H) arriving at this step's output.
        eps: 0-d stabiliser.
        bias_factor: 0-d share factor.
        rules: the rule set (static).

    Returns:
        ``(R_h_prev,)`` and ``(P, share)`` of the candidate node, see
        :func:`input_relevance`.
    """
    if gate_takes_relevance(rules.product):
        return _relevance_step_gates(spec, params, cast(GateCache, cache), relevance, eps, bias_factor, rules)
    (R_h,) = relevance  # noqa: N806
    units, input_size = spec.units, spec.input_size
    candidate_slice = gate_slice("candidate", CELL, units)
    R_h_mix, R_candidate = sum_node(  # noqa: N806
        (cache.update * cache.h_prev, (1 - cache.update) * cache.candidate),
        cache.h,
        R_h,
        eps,
        bias_factor,
        rules.sum_spread,
    )
    recurrent_kernel_candidate = ops.transpose(params.recurrent_kernel[:, candidate_slice])
    if spec.reset_after:
        bias = params.input_bias[candidate_slice] + cache.reset * params.recurrent_bias[candidate_slice]
        P, share = epsilon_node(  # noqa: N806
            cache.candidate_pre, R_candidate, bias, eps, bias_factor, input_size + units
        )
        R_h_candidate = cache.h_prev * ops.matmul(cache.reset * P, recurrent_kernel_candidate) + share  # noqa: N806
    else:
        P, share = epsilon_node(  # noqa: N806
            cache.candidate_pre,
            R_candidate,
            params.input_bias[candidate_slice],
            eps,
            bias_factor,
            input_size + units,
        )
        R_h_candidate = cache.recurrent_candidate * ops.matmul(P, recurrent_kernel_candidate) + share  # noqa: N806
    return (R_h_mix + R_h_candidate,), (P, share)


def input_relevance(spec: RecurrentSpec, params: GRUParams, x: Tensor, P: Tensor, share: Tensor) -> Tensor:  # noqa: N803
    """Relevance of the inputs of all steps: ``x ⊙ (P @ kernel[candidate]ᵀ) + share``.

    Args:
        spec: the layer.
        params: the direction's weights.
        x: (T, B, D) inputs.
        P: (T, B, H) from :func:`relevance_step`; (T, B, 3H) over all gates when the product
            rule gives gates relevance (then the whole kernel is used).
        share: (T, B, 1).

    Returns:
        (T, B, D).
    """
    if P.shape[-1] != spec.units:
        return x * ops.matmul(P, ops.transpose(params.kernel)) + share
    kernel_candidate = params.kernel[:, gate_slice("candidate", CELL, spec.units)]
    return x * ops.matmul(P, ops.transpose(kernel_candidate)) + share


def gradient_step(
    spec: RecurrentSpec, params: GRUParams, cache: GRUCache, grads: tuple[Tensor]
) -> tuple[tuple[Tensor], Tensor]:
    """Backpropagation through one GRU step.

    Args:
        spec: the layer.
        params: the direction's weights.
        cache: this step's cache.
        grads: ``(dh,)`` (B, H).

    Returns:
        ``(dh_prev,)`` and the gradient (B, 3H) of the step's input projection ``gx``.
    """
    (dh,) = grads
    _, activation_derivative = ACTIVATIONS[spec.activation]
    _, recurrent_derivative = ACTIVATIONS[spec.recurrent_activation]
    candidate_slice = gate_slice("candidate", CELL, spec.units)
    d_candidate_pre = dh * (1 - cache.update) * activation_derivative(cache.candidate)
    d_update_pre = dh * (cache.h_prev - cache.candidate) * recurrent_derivative(cache.update)
    dh_prev = dh * cache.update
    if spec.reset_after:
        d_reset = d_candidate_pre * cache.recurrent_candidate
        d_recurrent_candidate = d_candidate_pre * cache.reset
    else:
        d_reset_input = ops.matmul(d_candidate_pre, ops.transpose(params.recurrent_kernel[:, candidate_slice]))
        d_reset = d_reset_input * cache.h_prev
        dh_prev = dh_prev + d_reset_input * cache.reset
        d_recurrent_candidate = ops.zeros_like(d_candidate_pre)
    d_reset_pre = d_reset * recurrent_derivative(cache.reset)
    d_projected = {"update": d_update_pre, "reset": d_reset_pre, "candidate": d_candidate_pre}
    d_recurrent = {**d_projected, "candidate": d_recurrent_candidate}
    dgh = ops.concatenate([d_recurrent[gate] for gate in GATES], axis=-1)
    dh_prev = dh_prev + ops.matmul(dgh, ops.transpose(params.recurrent_kernel))
    return (dh_prev,), ops.concatenate([d_projected[gate] for gate in GATES], axis=-1)


def input_gradient(spec: RecurrentSpec, params: GRUParams, dz: Tensor) -> Tensor:
    """Gradient at the inputs of all steps: (T, B, 3H) -> (T, B, D)."""
    return ops.matmul(dz, ops.transpose(params.kernel))
