"""Network assembly: embedding, stacked recurrent layers, directions, masks, dense head.

Everything here is a pure ``keras.ops`` function of the static :class:`NetworkLayout` and the
flat weight list (Keras ``get_weights()`` order), so it runs under ``tf.function`` and
``jax.jit`` alike. The public shapes are batch-major (B, T, D); one transpose to time-major
happens in :func:`forward`, and the scans run over time.

* :func:`forward` runs the network and keeps what the backward passes need;
* :func:`backward` sends a seed at the scores back to the inputs with a :class:`Propagator`:
  :data:`LRP` (relevance) or :data:`GRADIENT` (plain gradient).

A backward direction is the same cell scanned over reversed time; its outputs are aligned to
the original time order (as Keras does). A masked step carries the state through unchanged and
gets exactly zero relevance and gradient.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import keras
from keras import ops

from .cells import ACTIVATIONS, CELLS
from .layout import DenseSpec, EmbeddingSpec, NetworkLayout, RecurrentSpec
from .rules import RuleSet, gate_takes_relevance, sum_node

Tensor = Any


# --------------------------------------------------------------------------------------------
# Parameters


class DenseParams(NamedTuple):
    """A dense layer's weights."""

    kernel: Tensor  # (D, C)
    bias: Tensor  # (C,); zeros when use_bias=False


def group_params(layout: NetworkLayout, arrays: Sequence[Tensor]) -> list[Any]:
    """Group the flat Keras-ordered weight list per layer.

    Args:
        layout: the network layout.
        arrays: tensors in ``model.get_weights()`` order.

    Returns:
        One entry per layer: the embedding matrix, a tuple of cell params per direction, or
        :class:`DenseParams`.
    """
    grouped: list[Any] = []
    position = 0
    for spec in layout.layers:
        if isinstance(spec, EmbeddingSpec):
            grouped.append(arrays[position])
            position += 1
        elif isinstance(spec, RecurrentSpec):
            cell = CELLS[spec.cell]
            per_direction = 3 if spec.use_bias else 2
            directions = []
            for _ in spec.directions:
                directions.append(cell.params_from_arrays(spec, arrays[position : position + per_direction]))
                position += per_direction
            grouped.append(tuple(directions))
        else:
            kernel = arrays[position]
            if spec.use_bias:
                bias = arrays[position + 1]
                position += 2
            else:
                bias = ops.zeros((spec.units,), dtype=kernel.dtype)
                position += 1
            grouped.append(DenseParams(kernel, bias))
    return grouped


# --------------------------------------------------------------------------------------------
# Scans


def scan_steps(
    step: Callable[[Any, Any], tuple[Any, Any]],
    init: Any,
    xs: Any,
    template: Any,
    reverse: bool,
) -> tuple[Any, Any, Any]:
    """``keras.ops.scan`` that also stacks per-step outputs of another structure.

    Equivalent plain loop (``reverse`` walks ``t`` downwards; outputs keep index ``t``)::

        carry = init
        for t in (reversed(range(T)) if reverse else range(T)):
            carry, out[t] = step(carry, xs[t])
            carries[t] = carry
        return carry, carries, out

    Two quirks of ``keras.ops.scan`` on the TensorFlow backend shape this helper: the
    stacked outputs must share the carry's structure, so the output rides along in the carry
    (starting from ``template``, zeros of its shape); and several ``xs`` with an unknown
    (``None``) time dimension fail, so the scan runs over the step index and each step reads
    its slice of ``xs``.
    """
    steps = ops.shape(keras.tree.flatten(xs)[0])[0]

    def body(state: Any, t: Any) -> tuple[Any, Any]:
        carry, _ = state
        new_state = step(carry, keras.tree.map_structure(lambda a: a[t], xs))
        return new_state, new_state

    (final, _), (carries, outputs) = ops.scan(body, (init, template), ops.arange(steps), reverse=reverse)
    return final, carries, outputs


def _previous(sequence: Tensor, initial: Tensor, reverse: bool) -> Tensor:
    """The state before each step: shift (T, B, H) by one step against the scan direction."""
    first = ops.expand_dims(initial, 0)
    if reverse:
        return ops.concatenate([sequence[1:], first], axis=0)
    return ops.concatenate([first, sequence[:-1]], axis=0)


def _select(mask: Tensor | None, new: Any, old: Any) -> Any:
    """Per sample, ``new`` where the step is valid and ``old`` where it is masked.

    ``new`` and ``old`` are tensors or tuples of tensors of the same structure.
    """
    if mask is None:
        return new
    if not isinstance(new, tuple):
        return ops.where(mask, new, old)
    return tuple(ops.where(mask, n, o) for n, o in zip(new, old, strict=True))


# --------------------------------------------------------------------------------------------
# Forward


class DirectionForward(NamedTuple):
    """One direction of one recurrent layer after the forward pass."""

    cache: Any  # the cell's cache, fields (T, B, H)
    outputs: Tensor  # (T, B, H) the output at every step, original time order
    final: Tensor  # (B, H) the output after the last step read


class RecurrentForward(NamedTuple):
    """One recurrent layer after the forward pass."""

    inputs: Tensor  # (T, B, D) the layer's input sequence
    directions: tuple[DirectionForward, ...]


class DenseForward(NamedTuple):
    """One dense layer after the forward pass."""

    inputs: Tensor  # (B, D)
    pre_activation: Tensor  # (B, C)


class Forward(NamedTuple):
    """Everything the backward passes need, and the scores."""

    scores: Tensor  # (B, C) the last dense layer's pre-activation
    inputs: Tensor  # (B, T, D) the (embedded) input vectors
    mask: Tensor | None  # (T, B, 1) bool, or None when every step is valid
    recurrent: tuple[RecurrentForward, ...]
    dense: tuple[DenseForward, ...]


def _merge(spec: RecurrentSpec, parts: Sequence[Tensor]) -> Tensor:
    if len(parts) == 1:
        return parts[0]
    if spec.merge_mode == "concat":
        return ops.concatenate(list(parts), axis=-1)
    total = parts[0] + parts[1]
    return total if spec.merge_mode == "sum" else total / 2


def run_direction(
    spec: RecurrentSpec, params: Any, inputs: Tensor, mask: Tensor | None, reverse: bool
) -> DirectionForward:
    """Run one direction of a recurrent layer over a sequence, keeping the cell's cache.

    Args:
        spec: the layer.
        params: this direction's cell params.
        inputs: (T, B, D) the layer's input sequence, time-major.
        mask: (T, B, 1) bool, or None; a masked step carries the state through unchanged.
        reverse: True for the backward direction (reads time downwards; outputs stay aligned).

    Returns:
        The cache (T, B, H) fields, the outputs (T, B, H) and the final output (B, H).
    """
    cell = CELLS[spec.cell]
    projected = cell.project_inputs(params, inputs)
    zeros = ops.zeros_like(projected[0, :, : spec.units])
    init = cell.initial_state(zeros)

    def step(state: Any, xs: dict[str, Tensor]) -> tuple[Any, Any]:
        new_state, gates = cell.forward_step(spec, params, state, xs["projected"])
        return _select(xs.get("mask"), new_state, state), gates

    xs = {"projected": projected} if mask is None else {"projected": projected, "mask": mask}
    final, states, gates = scan_steps(step, init, xs, cell.gates_template(zeros), reverse)
    previous = tuple(_previous(s, i, reverse) for s, i in zip(states, init, strict=True))
    return DirectionForward(cell.make_cache(states, previous, gates), states[0], final[0])


def forward(layout: NetworkLayout, arrays: Sequence[Tensor], x: Tensor, mask: Tensor | None) -> Forward:
    """Run the network on a batch, keeping what the backward passes need.

    Args:
        layout: the network layout (static).
        arrays: weight tensors in Keras order.
        x: (B, T, D) float inputs, or (B, T) integer token ids when the network starts with an
            embedding.
        mask: (B, T) bool, True for valid steps, or None. With an embedding that has
            ``mask_zero``, pass ``tokens != 0`` (the explainer does).

    Returns:
        The :class:`Forward` record; ``scores`` is (B, C).
    """
    params = group_params(layout, arrays)
    layer_index = 0
    if isinstance(layout.layers[0], EmbeddingSpec):
        x = ops.take(params[0], x, axis=0)
        layer_index = 1
    inputs = x
    sequence = ops.transpose(x, (1, 0, 2))
    mask_t = None if mask is None else ops.expand_dims(ops.transpose(mask, (1, 0)), -1)
    recurrent = []
    features: Tensor = sequence
    for spec, layer_params in zip(layout.layers[layer_index:], params[layer_index:], strict=True):
        if isinstance(spec, RecurrentSpec):
            directions = tuple(
                run_direction(spec, p, sequence, mask_t, direction == "backward")
                for direction, p in zip(spec.directions, layer_params, strict=True)
            )
            recurrent.append(RecurrentForward(sequence, directions))
            if spec.return_sequences:
                sequence = _merge(spec, [d.outputs for d in directions])
            features = _merge(spec, [d.final for d in directions])
    dense = []
    dense_params = params[len(params) - len(layout.dense) :]
    for index, (spec, p) in enumerate(zip(layout.dense, dense_params, strict=True)):
        pre = ops.matmul(features, p.kernel) + p.bias
        dense.append(DenseForward(features, pre))
        if index < len(layout.dense) - 1:
            features = ACTIVATIONS[spec.activation][0](pre)
    return Forward(dense[-1].pre_activation, inputs, mask_t, tuple(recurrent), tuple(dense))


# --------------------------------------------------------------------------------------------
# Backward


@dataclass(frozen=True)
class Propagator:
    """How a backward pass treats each node kind: relevance (LRP) or gradient.

    Attributes:
        name: for messages.
        dense: ``(spec, params, forward, signal, ctx, is_last) -> signal at the layer's input``.
        merge: ``(spec, direction outputs, signal, ctx) -> one signal per direction``.
        step: ``(cell module, spec, params, cache_t, carry, ctx) -> (carry, per-step output)``:
            one step of the recurrence, backwards.
        inputs: ``(cell module, spec, params, inputs, stacked per-step outputs) -> signal at
            the layer's inputs`` (T, B, D), computed for all steps at once.
        template: ``(spec, zeros (B, H), ctx) -> zeros shaped like one per-step output``.
        prepare: ``(cell module, spec, params, cache, inputs, ctx) -> what the steps read``
            (LRP adds gate pre-activations when the product rule feeds gates).
    """

    name: str
    dense: Callable[..., Tensor]
    merge: Callable[..., tuple[Tensor, ...]]
    step: Callable[..., tuple[Any, Any]]
    inputs: Callable[..., Tensor]
    template: Callable[..., Any]
    prepare: Callable[..., Any] = lambda cell, spec, params, cache, inputs, ctx: cache


def _lrp_dense(
    spec: DenseSpec, params: DenseParams, fwd: DenseForward, relevance: Tensor, ctx: Any, is_last: bool
) -> Tensor:
    # a hidden layer's activation (relu / linear) passes relevance unchanged to its pre-activation
    rule = ctx.rules.dense_rule(is_last)
    return rule.dense(fwd.inputs, params.kernel, params.bias, fwd.pre_activation, relevance, ctx.eps, ctx.bias_factor)


def _gradient_dense(
    spec: DenseSpec, params: DenseParams, fwd: DenseForward, grad: Tensor, ctx: Any, is_last: bool
) -> Tensor:
    if not is_last:
        activation, derivative = ACTIVATIONS[spec.activation]
        grad = grad * derivative(activation(fwd.pre_activation))
    return ops.matmul(grad, ops.transpose(params.kernel))


def _lrp_merge(spec: RecurrentSpec, parts: Sequence[Tensor], relevance: Tensor, ctx: Any) -> tuple[Tensor, ...]:
    if len(parts) == 1:
        return (relevance,)
    if spec.merge_mode == "concat":
        return (relevance[..., : spec.units], relevance[..., spec.units :])
    scale = 1.0 if spec.merge_mode == "sum" else 0.5
    scaled = (parts[0] * scale, parts[1] * scale)
    return sum_node(scaled, scaled[0] + scaled[1], relevance, ctx.eps, ctx.bias_factor, ctx.rules.sum_spread)


def _gradient_merge(spec: RecurrentSpec, parts: Sequence[Tensor], grad: Tensor, ctx: Any) -> tuple[Tensor, ...]:
    if len(parts) == 1:
        return (grad,)
    if spec.merge_mode == "concat":
        return (grad[..., : spec.units], grad[..., spec.units :])
    scaled = grad if spec.merge_mode == "sum" else grad / 2
    return (scaled, scaled)


def _lrp_step(cell: Any, spec: RecurrentSpec, params: Any, cache: Any, carry: Any, ctx: Any) -> tuple[Any, Any]:
    return cell.relevance_step(spec, params, cache, carry, ctx.eps, ctx.bias_factor, ctx.rules)


def _gradient_step(cell: Any, spec: RecurrentSpec, params: Any, cache: Any, carry: Any, ctx: Any) -> tuple[Any, Any]:
    return cell.gradient_step(spec, params, cache, carry)


def _lrp_inputs(cell: Any, spec: RecurrentSpec, params: Any, inputs: Tensor, outputs: Any) -> Tensor:
    P, share = outputs  # noqa: N806
    return cell.input_relevance(spec, params, inputs, P, share)


def _gradient_inputs(cell: Any, spec: RecurrentSpec, params: Any, inputs: Tensor, outputs: Any) -> Tensor:
    return cell.input_gradient(spec, params, outputs)


def _lrp_template(spec: RecurrentSpec, zeros: Tensor, ctx: Any) -> Any:
    width = len(CELLS[spec.cell].GATES) if gate_takes_relevance(ctx.rules.product) else 1
    return (ops.concatenate([zeros] * width, axis=-1) if width > 1 else zeros, zeros[:, :1])


def _lrp_prepare(cell: Any, spec: RecurrentSpec, params: Any, cache: Any, inputs: Tensor, ctx: Any) -> Any:
    return cell.relevance_cache(spec, params, cache, inputs, ctx.rules)


def _gradient_template(spec: RecurrentSpec, zeros: Tensor, ctx: Any) -> Any:
    return ops.concatenate([zeros] * len(CELLS[spec.cell].GATES), axis=-1)


#: Layer-wise relevance propagation (the rules of :class:`~tf_lrp.rules.RuleSet`).
LRP = Propagator("lrp", _lrp_dense, _lrp_merge, _lrp_step, _lrp_inputs, _lrp_template, _lrp_prepare)
#: The plain gradient of the seeded scores.
GRADIENT = Propagator(
    "gradient", _gradient_dense, _gradient_merge, _gradient_step, _gradient_inputs, _gradient_template
)


class Context(NamedTuple):
    """The traced numbers and static rules a backward pass reads."""

    eps: Tensor
    bias_factor: Tensor
    rules: RuleSet


def layer_context(ctx: Context, layout: NetworkLayout, index: int) -> Context:
    """The context of layer ``index`` of ``layout``: its per-layer rules and fixed ε, if any.

    ``ctx`` itself for a layer without an override in ``ctx.rules.layers`` (static: resolved
    while tracing).
    """
    rules, fixed_eps = ctx.rules.at(layout, index)
    if rules is ctx.rules:
        return ctx
    eps = ctx.eps if fixed_eps is None else ops.convert_to_tensor(fixed_eps, dtype=ctx.eps.dtype)
    return Context(eps, ctx.bias_factor, rules)


class Backward(NamedTuple):
    """Result of a backward pass."""

    inputs: Tensor  # (B, T, D) signal at the (embedded) inputs
    initial_state: Tensor  # (B,) signal that reached the zero initial states (LRP), summed


def backward_direction(
    propagator: Propagator,
    spec: RecurrentSpec,
    params: Any,
    fwd: DirectionForward,
    inputs: Tensor,
    mask: Tensor | None,
    above: Tensor | None,
    final: Tensor | None,
    reverse: bool,
    ctx: Context,
) -> tuple[Tensor, Tensor]:
    """Send a signal back through one direction of a recurrent layer (against its reading order).

    Args:
        propagator: :data:`LRP` or :data:`GRADIENT`.
        spec: the layer.
        params: this direction's cell params.
        fwd: the direction's forward record (:func:`run_direction`).
        inputs: (T, B, D) the layer's input sequence.
        mask: (T, B, 1) bool or None; masked steps pass the carry through and get zero signal.
        above: (T, B, H) signal arriving at every step's output from the layer above, or None.
        final: (B, H) signal arriving at the final output, or None.
        reverse: True for the backward direction.
        ctx: ε, bias_factor and rules.

    Returns:
        The signal at the layer's inputs (T, B, D) and, summed per sample (B,), what reached
        the initial states.
    """
    cell = CELLS[spec.cell]
    zeros = ops.zeros_like(fwd.final)
    init = tuple(zeros for _ in cell.initial_state(zeros))
    if final is not None:
        init = (init[0] + final, *init[1:])

    def step(carry: Any, xs: dict[str, Any]) -> tuple[Any, Any]:
        if "above" in xs:
            carry = (carry[0] + xs["above"], *carry[1:])
        new_carry, out = propagator.step(cell, spec, params, xs["cache"], carry, ctx)
        mask_t = xs.get("mask")
        zero_out = tuple(ops.zeros_like(o) for o in out) if isinstance(out, tuple) else ops.zeros_like(out)
        return tuple(_select(mask_t, tuple(new_carry), carry)), _select(mask_t, out, zero_out)

    xs: dict[str, Any] = {"cache": propagator.prepare(cell, spec, params, fwd.cache, inputs, ctx)}
    if above is not None:
        xs["above"] = above
    if mask is not None:
        xs["mask"] = mask
    # the backward pass walks time against the direction's forward scan
    carry, _, outputs = scan_steps(step, init, xs, propagator.template(spec, zeros, ctx), not reverse)
    signal = propagator.inputs(cell, spec, params, inputs, outputs)
    leftover = sum(ops.sum(c, axis=-1) for c in carry)
    return signal, leftover


def backward(
    propagator: Propagator,
    layout: NetworkLayout,
    arrays: Sequence[Tensor],
    fwd: Forward,
    seed: Tensor,
    ctx: Context,
) -> Backward:
    """Send ``seed`` at the scores back to the inputs.

    Equivalent loop: dense head from the last layer down; then each recurrent layer from the
    top down, each direction a scan against its reading order, the per-step input signal of a
    layer becoming the per-step output signal of the layer below.

    Args:
        propagator: :data:`LRP` or :data:`GRADIENT`.
        layout: the network layout (static).
        arrays: weight tensors in Keras order.
        fwd: the forward record.
        seed: (B, C) signal at the scores: for LRP the score of the target at the target and
            0 elsewhere; for the gradient a one-hot row.
        ctx: ε, bias_factor and rules.

    Returns:
        The signal at the (embedded) inputs (B, T, D) and at the initial states (B,).
    """
    params = group_params(layout, arrays)
    dense_params = params[len(params) - len(layout.dense) :]
    signal = seed
    dense_specs = layout.dense
    first_dense = len(layout.layers) - len(dense_specs)
    for index in reversed(range(len(dense_specs))):
        signal = propagator.dense(
            dense_specs[index],
            dense_params[index],
            fwd.dense[index],
            signal,
            layer_context(ctx, layout, first_dense + index),
            index == len(dense_specs) - 1,
        )
    recurrent_specs = layout.recurrent
    positions = [i for i, s in enumerate(layout.layers) if isinstance(s, RecurrentSpec)]
    recurrent_params = [p for s, p in zip(layout.layers, params, strict=True) if isinstance(s, RecurrentSpec)]
    final_signal: Tensor | None = signal
    above: Tensor | None = None
    initial_state = ops.zeros_like(seed[:, 0])
    for index in reversed(range(len(recurrent_specs))):
        spec, layer_fwd = recurrent_specs[index], fwd.recurrent[index]
        directions = layer_fwd.directions
        layer_ctx = layer_context(ctx, layout, positions[index])
        finals = (
            propagator.merge(spec, [d.final for d in directions], final_signal, layer_ctx)
            if final_signal is not None
            else (None,) * len(directions)
        )
        aboves = (
            propagator.merge(spec, [d.outputs for d in directions], above, layer_ctx)
            if above is not None
            else (None,) * len(directions)
        )
        total = None
        for direction, p, d_fwd, d_final, d_above in zip(
            spec.directions, recurrent_params[index], directions, finals, aboves, strict=True
        ):
            d_signal, leftover = backward_direction(
                propagator,
                spec,
                p,
                d_fwd,
                layer_fwd.inputs,
                fwd.mask,
                d_above,
                d_final,
                direction == "backward",
                layer_ctx,
            )
            total = d_signal if total is None else total + d_signal
            initial_state = initial_state + leftover
        above, final_signal = total, None
    return Backward(ops.transpose(above, (1, 0, 2)), initial_state)
