"""The GRU encoder-decoder forecaster as a node (Mirzavand Borujeni et al. 2023): forward, backward.

Structure (spec ``docs/gru_lrp.md`` §4, ``tests/data/REFERENCE.md``, encoder-decoder section)::

    encoder: L stacked GRU(H, reset_after=True) over x (B, T_in, F), zero initial states
    decoder: L stacked GRU cells; layer l starts from encoder layer l's final state; step t reads
             u_t = [ŷ_{t−1} ; x_future[:, t]] with ŷ_{−1} = x[:, T_in−1, :O] (no teacher forcing)
    head:    ŷ_t = relu([h_top_t ; static] @ W1 + b1) @ W2      (W2 has no bias)

Everything numeric reuses the GRU step functions of :mod:`tf_lrp.cells.gru` and the
:class:`~tf_lrp.nodes.recurrent.Propagator` (LRP or gradient), so the GRU step math and the
ε-rule exist once. The decoder runs time-major (its feedback needs it); the encoder runs
layer-major, one reversed scan per layer, with the relevance that reached each decoder layer's
initial state as that encoder layer's final-state relevance.

:class:`ForecasterNode` puts it on the layer graph (kind ``seq2seq``): it reads the history, the
known-future inputs and the static features, and outputs the forecasts, one score vector per
decoder step; relevance at the history includes the seed path (``x[:, -1, :O]`` as ŷ_(−1)).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, NamedTuple

from keras import ops

from .._typing import Tensor
from ..cells import gru
from ..layout import Seq2SeqSpec
from .base import NodeContext, NodeType
from .dense import DenseForward, DenseParams
from .recurrent import (
    GRADIENT,
    LRP,
    DirectionForward,
    Propagator,
    backward_direction,
    run_direction,
    scan_steps,
)

# --------------------------------------------------------------------------------------------
# Forward


class Seq2SeqParams(NamedTuple):
    """The weights grouped: GRU params per layer, and the head's two dense layers."""

    encoder: tuple[gru.GRUParams, ...]
    decoder: tuple[gru.GRUParams, ...]
    head: tuple[DenseParams, DenseParams]


def group_params(spec: Seq2SeqSpec, arrays: Sequence[Tensor]) -> Seq2SeqParams:
    """Group the flat Keras-ordered list (``enc_l*``, ``dec_l*``, ``head1_*``, ``head2_kernel``)."""
    per_layer = 3
    encoder = tuple(
        gru.params_from_arrays(s, arrays[per_layer * i : per_layer * (i + 1)]) for i, s in enumerate(spec.encoder)
    )
    offset = per_layer * spec.num_layers
    decoder = tuple(
        gru.params_from_arrays(s, arrays[offset + per_layer * i : offset + per_layer * (i + 1)])
        for i, s in enumerate(spec.decoder)
    )
    head1_kernel, head1_bias, head2_kernel = arrays[2 * offset : 2 * offset + 3]
    head2_bias = ops.zeros((spec.outputs,), dtype=head2_kernel.dtype)
    head = (DenseParams(head1_kernel, head1_bias), DenseParams(head2_kernel, head2_bias))
    return Seq2SeqParams(encoder, decoder, head)


class DecoderStep(NamedTuple):
    """What one decoder step keeps for the backward passes, each (B, ·); stacked: (T_out, B, ·)."""

    inputs: tuple[Tensor, ...]  # per layer: the layer's input u (B, D_l)
    caches: tuple[Any, ...]  # per layer: the GRU cache of the step
    head_input: Tensor  # c_t = [h_top ; static] (B, H + S)
    hidden_pre: Tensor  # a1 (B, H')
    hidden: Tensor  # relu(a1) (B, H')
    forecast: Tensor  # ŷ_t (B, O)


class Seq2SeqForward(NamedTuple):
    """The forward record."""

    forecasts: Tensor  # (B, T_out, O)
    encoder: tuple[tuple[Tensor, DirectionForward], ...]  # per layer: (inputs (T_in, B, D), forward)
    decoder: DecoderStep  # stacked over time


def _zeros(like: Tensor, width: int) -> Tensor:
    """Zeros (B, width) with ``like``'s batch size and dtype (``like`` is (B, ·))."""
    return ops.zeros_like(like[:, :1]) * ops.zeros((1, width), dtype=like.dtype)


def forward(spec: Seq2SeqSpec, arrays: Sequence[Tensor], x: Tensor, x_future: Tensor, static: Tensor) -> Seq2SeqForward:
    """Run the forecaster on a batch.

    Args:
        spec: the forecaster's sizes (static).
        arrays: weights in Keras order.
        x: (B, T_in, F) history.
        x_future: (B, T_out, F_dec) known-future inputs.
        static: (B, S) static features (S may be 0).

    Returns:
        The forward record; ``forecasts`` is (B, T_out, O).
    """
    params = group_params(spec, arrays)
    sequence = ops.transpose(x, (1, 0, 2))
    encoder = []
    for layer_spec, layer_params in zip(spec.encoder, params.encoder, strict=True):
        direction = run_direction(layer_spec, layer_params, sequence, None, False)
        encoder.append((sequence, direction))
        sequence = direction.outputs
    head1, head2 = params.head
    seed = x[:, -1, : spec.outputs]
    future = ops.transpose(x_future, (1, 0, 2))

    def step(carry: Any, xs: Any) -> tuple[Any, Any]:
        *states, previous_forecast = carry
        u = ops.concatenate([previous_forecast, xs], axis=-1)
        inputs, caches, new_states = [], [], []
        for layer_spec, layer_params, h_prev in zip(spec.decoder, params.decoder, states, strict=True):
            (h,), gates = gru.forward_step(layer_spec, layer_params, (h_prev,), gru.project_inputs(layer_params, u))
            inputs.append(u)
            caches.append(gru.make_cache((h,), (h_prev,), gates))
            new_states.append(h)
            u = h
        head_input = ops.concatenate([u, static], axis=-1)
        hidden_pre = ops.matmul(head_input, head1.kernel) + head1.bias
        hidden = ops.relu(hidden_pre)
        forecast = ops.matmul(hidden, head2.kernel)
        record = DecoderStep(tuple(inputs), tuple(caches), head_input, hidden_pre, hidden, forecast)
        return (*new_states, forecast), record

    zeros_h = _zeros(seed, spec.units)
    template = DecoderStep(
        tuple(_zeros(seed, s.input_size) for s in spec.decoder),
        tuple(gru.GRUCache(*([zeros_h] * len(gru.GRUCache._fields))) for _ in spec.decoder),
        _zeros(seed, spec.units + spec.static_size),
        _zeros(seed, spec.head_units),
        _zeros(seed, spec.head_units),
        _zeros(seed, spec.outputs),
    )
    init = (*(d.final for _, d in encoder), seed)
    _, _, decoder = scan_steps(step, init, future, template, False)
    return Seq2SeqForward(ops.transpose(decoder.forecast, (1, 0, 2)), tuple(encoder), decoder)


# --------------------------------------------------------------------------------------------
# Backward


class Seq2SeqBackward(NamedTuple):
    """The signal (relevance or gradient) at every input of the forecaster."""

    history: Tensor  # (B, T_in, F) through the encoder only (the seed path is in ``seed``)
    seed: Tensor  # (B, O) at x[:, -1, :O] through its use as ŷ_(-1)
    future: Tensor  # (B, T_out, F_dec)
    static: Tensor  # (B, T_out, S) per decoder step
    feedback: Tensor  # (B, T_out, O) arriving at ŷ_t from step t+1's input (0 at the last step)
    initial_state: Tensor  # (B,) at the encoder's zero initial states (LRP with bias_factor > 0)


def backward(
    propagator: Propagator,
    spec: Seq2SeqSpec,
    arrays: Sequence[Tensor],
    fwd: Seq2SeqForward,
    seed: Tensor,
    ctx: Any,
) -> Seq2SeqBackward:
    """Send ``seed`` at the forecasts back to the inputs (spec ``docs/gru_lrp.md`` §4.3).

    Equivalent loop::

        carry[l] = 0; fb = 0
        for t = T_out-1 .. 0:                      # decoder, time-major
            R = head⁻¹(seed[t] + fb)               # head2, relu, head1; R_static[t] = R[:, H:]
            R = R[:, :H]
            for l = L-1 .. 0: (carry[l], R) = gru_step⁻¹(layer l, t, R + carry[l])
            fb, R_future[t] = R[:, :O], R[:, O:]
        for l = L-1 .. 0:                          # encoder, layer-major, carry[l] at the final state
            above = scan⁻¹(encoder layer l, above, final=carry[l])
        R_history = above; R_seed = fb

    Args:
        propagator: :data:`~tf_lrp.network.LRP` or :data:`~tf_lrp.network.GRADIENT`.
        spec: the forecaster's sizes.
        arrays: weights in Keras order.
        fwd: the forward record.
        seed: (B, T_out, O) the signal at the forecasts (LRP: the forecast's value where
            explained, else 0; gradient: 1 where explained).
        ctx: :class:`~tf_lrp.network.Context` (ε, bias_factor, rules).

    Returns:
        The :class:`Seq2SeqBackward` record.
    """
    params = group_params(spec, arrays)
    head1_spec, head2_spec = spec.head
    head1, head2 = params.head
    decoder = fwd.decoder
    units, outputs = spec.units, spec.outputs

    # what the per-step rules read, per decoder layer (stacked over time)
    prepare = getattr(propagator, "prepare", None)
    caches = tuple(
        prepare(gru, s, p, c, u, ctx) if prepare is not None else c
        for s, p, c, u in zip(spec.decoder, params.decoder, decoder.caches, decoder.inputs, strict=True)
    )

    def step(carry: Any, xs: Any) -> tuple[Any, Any]:
        *states, fed_back = carry
        record, caches_t, seed_t = xs["record"], xs["caches"], xs["seed"]
        signal = propagator.dense(
            head2_spec, head2, DenseForward(record.hidden, record.forecast), seed_t + fed_back, ctx, True
        )
        signal = propagator.dense(
            head1_spec, head1, DenseForward(record.head_input, record.hidden_pre), signal, ctx, False
        )
        static_t, signal = signal[:, units:], signal[:, :units]
        new_states = list(states)
        for layer in reversed(range(spec.num_layers)):
            layer_spec, layer_params = spec.decoder[layer], params.decoder[layer]
            (new_states[layer],), out = propagator.step(
                gru, layer_spec, layer_params, caches_t[layer], (signal + states[layer],), ctx
            )
            signal = propagator.inputs(gru, layer_spec, layer_params, record.inputs[layer], out)
        fed_back = signal[:, :outputs]
        return (*new_states, fed_back), (signal[:, outputs:], static_t, fed_back)

    first = fwd.encoder[0][1].final
    zeros_h = ops.zeros_like(first)
    zeros_o = _zeros(first, outputs)
    template = (_zeros(first, spec.future_size), _zeros(first, spec.static_size), zeros_o)
    xs = {"record": decoder._replace(caches=()), "caches": caches, "seed": ops.transpose(seed, (1, 0, 2))}
    final, _, (future, static, fed_back) = scan_steps(
        step, (*([zeros_h] * spec.num_layers), zeros_o), xs, template, True
    )
    *states, seed_signal = final
    above: Tensor | None = None
    initial_state = ops.zeros_like(first[:, 0])
    for layer in reversed(range(spec.num_layers)):
        inputs, direction = fwd.encoder[layer]
        above, leftover = backward_direction(
            propagator,
            spec.encoder[layer],
            params.encoder[layer],
            direction,
            inputs,
            None,
            above,
            states[layer],
            False,
            ctx,
        )
        initial_state = initial_state + leftover
    feedback = ops.concatenate([fed_back[1:], ops.zeros_like(fed_back[:1])], axis=0)
    return Seq2SeqBackward(
        history=ops.transpose(above, (1, 0, 2)),
        seed=seed_signal,
        future=ops.transpose(future, (1, 0, 2)),
        static=ops.transpose(static, (1, 0, 2)),
        feedback=ops.transpose(feedback, (1, 0, 2)),
        initial_state=initial_state,
    )


def seed_mask(step_weights: Tensor, output_one_hot: Tensor) -> Tensor:
    """(1, T_out, O) ``step_weights[t] * output_one_hot[o]``: which forecasts are explained."""
    return ops.expand_dims(ops.expand_dims(step_weights, -1) * ops.expand_dims(output_one_hot, 0), 0)


# --------------------------------------------------------------------------------------------
# The node


class ForecasterCache(NamedTuple):
    """What the node's backward steps read."""

    forward: Seq2SeqForward
    static: bool  # whether the node reads static features (a third input)


def _batch_major(sequence: Tensor) -> Tensor:
    return ops.transpose(sequence, (1, 0, 2))


class ForecasterNode(NodeType):
    """The GRU encoder-decoder forecaster: (history, future[, static]) -> forecasts (T_out, B, O)."""

    kinds: ClassVar[tuple[str, ...]] = ("seq2seq",)

    def loop_width(self, spec: Seq2SeqSpec) -> int:
        """The GRUs' units: encoder and decoder carry (B, units) states per layer."""
        return spec.units

    def cache_floats(self, spec: Seq2SeqSpec, steps: int) -> int:
        """Per step and GRU layer its cache (about 8 H-vectors) and input; per decoder step also the head's."""
        per_layer = 8 * spec.units
        encoder = steps * spec.num_layers * (per_layer + spec.units)
        decoder = steps * (spec.num_layers * (per_layer + spec.units) + spec.units + spec.static_size
                           + 2 * spec.head_units + spec.outputs)  # fmt: skip
        return encoder + decoder

    def output_mask(self, spec: Seq2SeqSpec, mask: Tensor | None) -> Tensor | None:
        """The forecasts have no step mask (the history's mask does not apply to the horizon)."""
        return None

    def forward(
        self, spec: Seq2SeqSpec, params: Any, inputs: Sequence[Tensor], mask: Tensor | None
    ) -> tuple[Tensor, ForecasterCache]:
        """Run encoder, decoder and head; the forecasts (T_out, B, O) time-major."""
        history, future = _batch_major(inputs[0]), _batch_major(inputs[1])
        static = inputs[2] if len(inputs) > 2 else ops.zeros_like(history[:, 0, :0])
        fwd = forward(spec, params, history, future, static)
        return _batch_major(fwd.forecasts), ForecasterCache(fwd, len(inputs) > 2)

    def _back(
        self, propagator: Propagator, spec: Seq2SeqSpec, params: Any, cache: ForecasterCache, signal: Tensor,
        ctx: NodeContext,
    ) -> tuple[tuple[Tensor | None, ...], Tensor]:
        back = backward(propagator, spec, params, cache.forward, _batch_major(signal), ctx)
        history = back.history  # (B, T_in, F) through the encoder; the seed path reaches x[:, -1, :O]
        last = history[:, -1:, :]
        seed = ops.concatenate([back.seed[:, None, :], ops.zeros_like(last[..., spec.outputs :])], axis=-1)
        history = ops.concatenate([history[:, :-1, :], last + seed], axis=1)
        messages: list[Tensor | None] = [_batch_major(history), _batch_major(back.future)]
        if cache.static:
            messages.append(ops.sum(back.static, axis=1))
        return tuple(messages), back.initial_state

    def relevance(
        self, spec: Seq2SeqSpec, params: Any, cache: ForecasterCache, relevance: Tensor, ctx: NodeContext
    ) -> tuple[tuple[Tensor | None, ...], Tensor | None]:
        """LRP back to the history (seed path included), the future and the static features."""
        return self._back(LRP, spec, params, cache, relevance, ctx)

    def gradient(
        self, spec: Seq2SeqSpec, params: Any, cache: ForecasterCache, grad: Tensor, ctx: NodeContext
    ) -> tuple[Tensor | None, ...]:
        """The gradient at the same three inputs (both uses of ``x[:, -1, :O]`` added)."""
        return self._back(GRADIENT, spec, params, cache, grad, ctx)[0]
