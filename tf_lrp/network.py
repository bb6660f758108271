"""The network walk: the layer graph forward (keeping every node's cache) and backward.

Everything here is a pure ``keras.ops`` function of the static
:class:`~tf_lrp.layout.NetworkLayout` (the nodes in topological order and the edges each reads)
and the flat weight list (Keras ``get_weights()`` order), so a whole walk compiles into one
function under ``tf.function``, ``jax.jit`` or PyTorch. The node types live in
:mod:`tf_lrp.nodes`; this module only walks the graph:

* :func:`forward` runs the nodes in order; the network's inputs are transposed once to
  time-major, the output once back;
* :func:`backward` walks them in reverse with a :class:`~tf_lrp.nodes.recurrent.Propagator`
  (:data:`LRP` relevance or :data:`GRADIENT`); a tensor read by several nodes receives the sum
  of their messages; each node's rules come from the rule map, resolved once per network.

Relevance is reported at the *attribution points*: each input, or the output of the embedding
that reads a token input.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, NamedTuple

from keras import ops

from ._typing import Tensor
from .layout import DenseSpec, Edge, NetworkLayout
from .nodes import NODES, NodeContext
from .nodes.dense import DenseForward, DenseParams
from .nodes.recurrent import (
    GRADIENT,
    LRP,
    DirectionForward,
    Propagator,
    RecurrentForward,
    backward_direction,
    run_direction,
    scan_steps,
)
from .rules import NodeRules, RuleSet

#: one tensor per network input, or one tensor for a single-input network
Inputs = Any


def group_params(layout: NetworkLayout, arrays: Sequence[Tensor]) -> list[Any]:
    """Group the flat Keras-ordered weight list per node (each node type's ``params``).

    Args:
        layout: the network layout.
        arrays: tensors in ``model.get_weights()`` order.

    Returns:
        One entry per node.
    """
    counts = [0] * len(layout.layers)
    for array in layout.arrays:
        counts[array.layer] += 1
    grouped: list[Any] = []
    position = 0
    for spec, count in zip(layout.layers, counts, strict=True):
        grouped.append(NODES[spec.kind].params(spec, arrays[position : position + count]))
        position += count
    return grouped


def node_spec(layout: NetworkLayout, index: int) -> Any:
    """Node ``index``'s spec as the walk runs it: the output node without its activation."""
    spec = layout.layers[index]
    if index == len(layout.layers) - 1 and isinstance(spec, DenseSpec) and spec.activation != "linear":
        return dataclasses.replace(spec, activation="linear")  # its pre-activation is the score
    return spec


def as_tuple(value: Inputs, count: int) -> tuple[Any, ...]:
    """``value`` as one entry per network input (a bare value is input 0's; None: all None)."""
    if isinstance(value, (tuple, list)):
        return tuple(value)
    return (value,) + (None,) * (count - 1)


class Forward(NamedTuple):
    """Everything the backward passes need, and the scores."""

    scores: Tensor  # (B, C), or (B, T, C) for a network with per-step outputs
    inputs: Tensor  # (B, T, D) the first input at its attribution point (embedded for tokens)
    mask: Tensor | None  # (T, B, 1) bool step mask of the first input, or None
    caches: tuple[Any, ...]  # per node, its cache
    all_inputs: tuple[Tensor, ...]  # per network input, at its attribution point, batch-major
    output_mask: Tensor | None  # (B, T) bool mask of a per-step output, else None

    @property
    def dense(self) -> tuple[DenseForward, ...]:
        """The caches of the dense nodes, in order (inputs and pre-activation)."""
        return tuple(c for c in self.caches if isinstance(c, DenseForward))

    @property
    def recurrent(self) -> tuple[RecurrentForward, ...]:
        """The caches of the recurrent nodes, in order."""
        return tuple(c for c in self.caches if isinstance(c, RecurrentForward))


def _time_major(value: Tensor) -> Tensor:
    return ops.transpose(value, (1, 0, 2)) if len(value.shape) == 3 else ops.transpose(value, (1, 0))


def forward(
    layout: NetworkLayout, arrays: Sequence[Tensor], x: Inputs, mask: Inputs, embedded: bool = False
) -> Forward:
    """Run the network on a batch, keeping what the backward passes need.

    Args:
        layout: the network layout (static).
        arrays: weight tensors in Keras order.
        x: per input (a tuple, or the tensor of a single-input network): (B, T, D) floats, or
            (B, T) integer token ids for an input read by an embedding.
        mask: per input (B, T) bool, True for valid steps, or None. With an embedding that has
            ``mask_zero``, pass ``tokens != 0`` (the explainer does).
        embedded: x holds the inputs at their attribution points: token inputs as their
            embedded vectors (B, T, E); the embedding nodes are skipped (methods that perturb
            the vectors use this).

    Returns:
        The :class:`Forward` record; ``scores`` is (B, C), or (B, T, C) for per-step outputs.
    """
    count = len(layout.inputs)
    xs, input_masks = as_tuple(x, count), as_tuple(mask, count)
    params = group_params(layout, arrays)
    points = layout.attribution_edges
    values: dict[Edge, Tensor] = {}
    masks: dict[Edge, Tensor | None] = {}
    for k in range(count):
        if not layout.inputs[k].sequence:  # one vector per sample (B, F): no time axis, no mask
            values[-1 - k], masks[-1 - k] = xs[k], None
            continue
        values[-1 - k] = _time_major(xs[k])
        m = input_masks[k]
        masks[-1 - k] = None if m is None else ops.expand_dims(ops.transpose(m, (1, 0)), -1)
        if embedded and points[k] >= 0:
            values[points[k]], masks[points[k]] = values[-1 - k], masks[-1 - k]
    caches: list[Any] = []
    sequences = layout.sequence_outputs
    for index, reads in enumerate(layout.edges):
        if index in values:  # an embedding whose vectors were fed
            caches.append(None)
            continue
        node = NODES[layout.layers[index].kind]
        in_mask = masks[reads[0]]
        node_mask: Any = in_mask if node.takes_mask else None  # the node declares whether it reads the mask
        if node.takes_masks:  # attention: the masks of query, value (and key)
            node_mask = tuple(masks[e] for e in reads)
        spec = node_spec(layout, index)
        output, cache = node.forward(spec, params[index], [values[e] for e in reads], node_mask)
        passed = node.merge_masks(spec, [masks[e] for e in reads]) if len(reads) > 1 else in_mask
        values[index], masks[index] = output, node.output_mask(spec, passed) if sequences[index] else None
        caches.append(cache)
    last = len(layout.layers) - 1
    scores = values[last]
    output_mask = None
    if sequences[last]:
        scores = _time_major(scores)
        out_mask = masks[last]
        output_mask = None if out_mask is None else ops.transpose(out_mask[..., 0], (1, 0))
    at_points = tuple(
        ops.transpose(values[p], (1, 0, 2)) if p >= 0 else xs[k] for k, p in enumerate(points)
    )
    return Forward(
        scores=scores,
        inputs=at_points[0],
        mask=masks[-1],
        caches=tuple(caches),
        all_inputs=at_points,
        output_mask=output_mask,
    )


class Context(NamedTuple):
    """The traced numbers and static rules a backward pass reads."""

    eps: Tensor
    bias_factor: Tensor
    rules: RuleSet


def node_context(ctx: Context, rules: NodeRules | None, is_output: bool) -> NodeContext:
    """A node's context: its resolved rules and, where its rule fixes one, its own ε (static)."""
    if rules is None or rules.eps is None:
        return NodeContext(ctx.eps, ctx.bias_factor, rules, is_output)
    return NodeContext(ops.convert_to_tensor(rules.eps, dtype=ctx.eps.dtype), ctx.bias_factor, rules, is_output)


class Backward(NamedTuple):
    """Result of a backward pass."""

    inputs: Tensor  # (B, T, D) signal at the first input's attribution point
    initial_state: Tensor  # (B,) signal that reached the zero initial states (LRP), summed
    all_inputs: tuple[Tensor, ...] = ()  # per input, at its attribution point


def backward(
    propagator: Propagator,
    layout: NetworkLayout,
    arrays: Sequence[Tensor],
    fwd: Forward,
    seed: Tensor,
    ctx: Context,
) -> Backward:
    """Send ``seed`` at the scores back to the attribution points.

    Equivalent loop: ``signal[output] = seed``; for each node from the last to the first, if a
    signal reached its output, ``signal[e] += step(node)`` for each edge ``e`` it reads (a
    node's relevance step for LRP, its gradient step otherwise); stop at the attribution points.

    Args:
        propagator: :data:`LRP` or :data:`GRADIENT`.
        layout: the network layout (static).
        arrays: weight tensors in Keras order.
        fwd: the forward record.
        seed: (B, C) signal at the scores ((B, T, C) for per-step outputs): for LRP the score of
            the target at the target and 0 elsewhere; for the gradient a one-hot row.
        ctx: ε, bias_factor and rules.

    Returns:
        The signal at the attribution points, and at the initial states (B,).
    """
    params = group_params(layout, arrays)
    node_rules = ctx.rules.resolve_nodes(layout)
    points = layout.attribution_edges
    last = len(layout.layers) - 1
    signals: dict[Edge, Tensor] = {last: _time_major(seed) if layout.sequence_outputs[last] else seed}
    initial_state = ops.zeros_like(fwd.scores[:, 0] if len(fwd.scores.shape) == 2 else fwd.scores[:, 0, 0])
    for index in reversed(range(len(layout.layers))):
        if index not in signals or index in points:
            continue
        node = NODES[layout.layers[index].kind]
        node_ctx = node_context(ctx, node_rules[index], index == last)
        spec, signal = node_spec(layout, index), signals.pop(index)
        if propagator.name == "lrp":
            messages, leftover = node.relevance(spec, params[index], fwd.caches[index], signal, node_ctx)
            if leftover is not None:
                initial_state = initial_state + leftover
        else:
            messages = node.gradient(spec, params[index], fwd.caches[index], signal, node_ctx)
        for edge, message in zip(layout.edges[index], messages, strict=True):
            if message is not None:
                signals[edge] = message if edge not in signals else signals[edge] + message
    at_points = []
    for k, point in enumerate(points):
        arrived = signals.get(point)
        if arrived is None:
            at_points.append(ops.zeros_like(fwd.all_inputs[k]))
        else:  # a sequence back to batch-major; a vector input's (B, F) as it is
            at_points.append(ops.transpose(arrived, (1, 0, 2)) if len(arrived.shape) == 3 else arrived)
    return Backward(at_points[0], initial_state, tuple(at_points))


__all__ = [
    "GRADIENT",
    "LRP",
    "Backward",
    "Context",
    "DenseForward",
    "DenseParams",
    "DirectionForward",
    "Forward",
    "Propagator",
    "RecurrentForward",
    "backward",
    "backward_direction",
    "forward",
    "group_params",
    "run_direction",
    "scan_steps",
]
