"""The recurrent node: LSTM, GRU and SimpleRNN layers (any registered cell), one or two directions.

The time loop, directions, masks and the bidirectional merge live here; one time step of each
cell lives in :mod:`tf_lrp.cells` (a new cell is one module there plus its registration). The
input projection of all steps is one matmul before the scan; the relevance (and gradient) of
the inputs of all steps is one matmul after the backward scan. A backward direction is the
same cell scanned over reversed time; its outputs are aligned to the original time order (as
Keras does). A masked step carries the state through unchanged and gets exactly zero
relevance and gradient.

:class:`Propagator` says how a backward scan treats each piece (relevance or gradient); the
GRU encoder-decoder (:mod:`tf_lrp.seq2seq`) reuses it with its own time loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import keras
from keras import ops

from .._fusion import fused_step
from .._typing import Tensor
from ..cells import CELLS
from ..layout import RecurrentSpec
from ..rules import gate_takes_relevance, sum_node
from .base import NodeContext, NodeType
from .dense import gradient_dense, lrp_dense

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
    states: tuple[Tensor, ...] = ()  # (B, H) each: every state after the last step read ((h, c) for an LSTM)


class RecurrentForward(NamedTuple):
    """One recurrent layer after the forward pass."""

    inputs: Tensor  # (T, B, D) the layer's input sequence
    directions: tuple[DirectionForward, ...]
    mask: Tensor | None = None  # (T, B, 1) the step mask the layer read


def _merge(spec: RecurrentSpec, parts: Sequence[Tensor]) -> Tensor:
    if len(parts) == 1:
        return parts[0]
    if spec.merge_mode == "concat":
        return ops.concatenate(list(parts), axis=-1)
    total = parts[0] + parts[1]
    return total if spec.merge_mode == "sum" else total / 2


def run_direction(
    spec: RecurrentSpec,
    params: Any,
    inputs: Tensor,
    mask: Tensor | None,
    reverse: bool,
    initial: Sequence[Tensor] | None = None,
) -> DirectionForward:
    """Run one direction of a recurrent layer over a sequence, keeping the cell's cache.

    Args:
        spec: the layer.
        params: this direction's cell params.
        inputs: (T, B, D) the layer's input sequence, time-major.
        mask: (T, B, 1) bool, or None; a masked step carries the state through unchanged.
        reverse: True for the backward direction (reads time downwards; outputs stay aligned).
        initial: the initial states (B, H) each, in the cell's order ((h, c) for an LSTM), or
            None for zeros.

    Returns:
        The cache (T, B, H) fields, the outputs (T, B, H), the final output (B, H) and states.
    """
    cell = CELLS[spec.cell]
    projected = cell.project_inputs(params, inputs)
    zeros = ops.zeros_like(projected[0, :, : spec.units])
    init = cell.initial_state(zeros) if initial is None else tuple(initial)

    def step(state: Any, xs: dict[str, Tensor]) -> tuple[Any, Any]:
        new_state, gates = cell.forward_step(spec, params, state, xs["projected"])
        return _select(xs.get("mask"), new_state, state), gates

    xs = {"projected": projected} if mask is None else {"projected": projected, "mask": mask}
    final, states, gates = scan_steps(step, init, xs, cell.gates_template(zeros), reverse)
    previous = tuple(_previous(s, i, reverse) for s, i in zip(states, init, strict=True))
    outputs = states[0]
    if spec.zero_output_for_mask and mask is not None:  # Keras: zeros at masked steps (Bidirectional forces it)
        outputs = ops.where(mask, outputs, ops.zeros_like(outputs))
    return DirectionForward(cell.make_cache(states, previous, gates), outputs, final[0], tuple(final))


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
LRP = Propagator("lrp", lrp_dense, _lrp_merge, _lrp_step, _lrp_inputs, _lrp_template, _lrp_prepare)
#: The plain gradient of the seeded scores.
GRADIENT = Propagator(
    "gradient", gradient_dense, _gradient_merge, _gradient_step, _gradient_inputs, _gradient_template
)


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
    ctx: Any,
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
    signal, carry = backward_scan(propagator, spec, params, fwd, inputs, mask, above, final, reverse, ctx)
    return signal, sum(ops.sum(c, axis=-1) for c in carry)


def backward_scan(
    propagator: Propagator,
    spec: RecurrentSpec,
    params: Any,
    fwd: DirectionForward,
    inputs: Tensor,
    mask: Tensor | None,
    above: Tensor | None,
    final: Tensor | Sequence[Tensor] | None,
    reverse: bool,
    ctx: Any,
) -> tuple[Tensor, tuple[Tensor, ...]]:
    """:func:`backward_direction`, with the signal at each initial state (B, H) kept apart.

    ``final`` may also be one signal per state ((h, c) for an LSTM): what reached the final
    states (Keras ``return_state``).
    """
    cell = CELLS[spec.cell]
    zeros = ops.zeros_like(fwd.final)
    init = tuple(zeros for _ in cell.initial_state(zeros))
    if isinstance(final, (tuple, list)):
        init = tuple(z + f for z, f in zip(init, final, strict=True))
    elif final is not None:
        init = (init[0] + final, *init[1:])

    def cell_step(params: Any, cache: Any, carry: Any, eps: Tensor, bias_factor: Tensor) -> tuple[Any, Any]:
        return propagator.step(cell, spec, params, cache, carry, ctx._replace(eps=eps, bias_factor=bias_factor))

    # every tensor is an argument, so the key names all the step closes over: one kernel serves every call
    cell_step = fused_step(cell_step, (propagator.name, spec, ctx.rules))

    def step(carry: Any, xs: dict[str, Any]) -> tuple[Any, Any]:
        if "above" in xs:
            carry = (carry[0] + xs["above"], *carry[1:])
        new_carry, out = cell_step(params, xs["cache"], carry, ctx.eps, ctx.bias_factor)
        mask_t = xs.get("mask")
        zero_out = tuple(ops.zeros_like(o) for o in out) if isinstance(out, tuple) else ops.zeros_like(out)
        return tuple(_select(mask_t, tuple(new_carry), carry)), _select(mask_t, out, zero_out)

    xs: dict[str, Any] = {"cache": propagator.prepare(cell, spec, params, fwd.cache, inputs, ctx)}
    if above is not None and spec.zero_output_for_mask and mask is not None:
        above = ops.where(mask, above, ops.zeros_like(above))  # a zero output is a constant: its share is absorbed
    if above is not None:
        xs["above"] = above
    if mask is not None:
        xs["mask"] = mask
    # the backward pass walks time against the direction's forward scan
    carry, _, outputs = scan_steps(step, init, xs, propagator.template(spec, zeros, ctx), not reverse)
    return propagator.inputs(cell, spec, params, inputs, outputs), tuple(carry)


class RecurrentNode(NodeType):
    """A recurrent layer: every direction scanned, the directions merged (concat, sum, ave)."""

    kinds: ClassVar[tuple[str, ...]] = tuple(CELLS)
    takes_mask: ClassVar[bool] = True

    def params(self, spec: RecurrentSpec, arrays: Sequence[Tensor]) -> tuple[Any, ...]:
        """One cell-params record per direction (forward first, as Keras ``Bidirectional``)."""
        cell = CELLS[spec.cell]
        per_direction = len(arrays) // len(spec.directions)
        return tuple(
            cell.params_from_arrays(spec, arrays[i * per_direction : (i + 1) * per_direction])
            for i in range(len(spec.directions))
        )

    def loop_width(self, spec: RecurrentSpec) -> int:
        """The layer's units: each direction's scan carries (B, units) states."""
        return spec.units

    def cache_floats(self, spec: RecurrentSpec, steps: int) -> int:
        """Per direction and step the cell's cached H-vectors (``CACHE_VECTORS``) and the inputs."""
        vectors = CELLS[spec.cell].CACHE_VECTORS
        return steps * len(spec.directions) * (vectors * spec.units + spec.input_size)

    def forward(
        self, spec: RecurrentSpec, params: tuple[Any, ...], inputs: Sequence[Tensor], mask: Tensor | None
    ) -> tuple[Tensor, RecurrentForward]:
        """Scan every direction; the merged sequence (return_sequences) or merged final output."""
        sequence = inputs[0]
        initial = tuple(inputs[1:]) if spec.initial_state else None  # forward layers only (the spec checks)
        if spec.initial_state:  # as Keras: a layer called with initial_state= gets no automatic step mask
            mask = None
        directions = tuple(
            run_direction(spec, p, sequence, mask, direction == "backward", initial)
            for direction, p in zip(spec.directions, params, strict=True)
        )
        if spec.return_state:  # the final states side by side, [h ; c] for an LSTM
            return ops.concatenate(list(directions[0].states), axis=-1), RecurrentForward(sequence, directions, mask)
        parts = [d.outputs for d in directions] if spec.return_sequences else [d.final for d in directions]
        return _merge(spec, parts), RecurrentForward(sequence, directions, mask)

    def _backward(
        self, propagator: Propagator, spec: RecurrentSpec, params: tuple[Any, ...], cache: RecurrentForward,
        signal: Tensor, ctx: NodeContext,
    ) -> tuple[tuple[Tensor, ...], Tensor | None]:  # fmt: skip
        """The signal at the sequence (and at the initial states it read), and what reached zero initial states."""
        outputs = [d.outputs if spec.return_sequences else d.final for d in cache.directions]
        units = spec.units
        split = (
            [tuple(signal[:, k * units : (k + 1) * units] for k in range(spec.state_count))]  # one per final state
            if spec.return_state
            else propagator.merge(spec, outputs, signal, ctx)
        )
        signals, carries = [], []
        for direction, p, d_fwd, d_signal in zip(spec.directions, params, cache.directions, split, strict=True):
            above: Any = d_signal if spec.return_sequences else None
            final: Any = None if spec.return_sequences else d_signal
            d_in, carry = backward_scan(
                propagator, spec, p, d_fwd, cache.inputs, cache.mask, above, final, direction == "backward", ctx
            )
            signals.append(d_in)
            carries.append(carry)
        total = signals[0] if len(signals) == 1 else signals[0] + signals[1]
        if spec.initial_state:  # the states it read were inputs (one direction): their signal flows on
            return (total, *carries[0]), None
        return (total,), sum(ops.sum(c, axis=-1) for carry in carries for c in carry)

    def relevance(
        self, spec: RecurrentSpec, params: tuple[Any, ...], cache: RecurrentForward, relevance: Tensor,
        ctx: NodeContext,
    ) -> tuple[tuple[Tensor | None, ...], Tensor | None]:  # fmt: skip
        """LRP back through every direction's scan (the cell's relevance step); see the module."""
        return self._backward(LRP, spec, params, cache, relevance, ctx)

    def gradient(
        self, spec: RecurrentSpec, params: tuple[Any, ...], cache: RecurrentForward, grad: Tensor, ctx: NodeContext
    ) -> tuple[Tensor | None, ...]:
        """Backpropagation through time for every direction."""
        return self._backward(GRADIENT, spec, params, cache, grad, ctx)[0]
