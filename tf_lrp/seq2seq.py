"""The GRU encoder-decoder forecaster (Mirzavand Borujeni et al. 2023): layout, forward, backward.

Structure (spec ``docs/gru_lrp.md`` §4, ``tests/data/REFERENCE.md``, encoder-decoder section)::

    encoder: L stacked GRU(H, reset_after=True) over x (B, T_in, F), zero initial states
    decoder: L stacked GRU cells; layer l starts from encoder layer l's final state; step t reads
             u_t = [ŷ_{t−1} ; x_future[:, t]] with ŷ_{−1} = x[:, T_in−1, :O] (no teacher forcing)
    head:    ŷ_t = relu([h_top_t ; static] @ W1 + b1) @ W2      (W2 has no bias)

Everything numeric reuses the GRU step functions of :mod:`tf_lrp.cells.gru` and the
:class:`~tf_lrp.network.Propagator` of :mod:`tf_lrp.network` (LRP or gradient), so the GRU step
math and the ε-rule exist once. The decoder runs time-major (its feedback needs it); the
encoder runs layer-major, one reversed scan per layer, with the relevance that reached each
decoder layer's initial state as that encoder layer's final-state relevance.

The layout half of this module reads the ``seq2seq`` kind of ``weights_schema.json``: its
manifest entry, and its arrays (``enc_l{i}_kernel`` ... ``head2_kernel``, Keras layout, in
``get_weights()`` order).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import jsonschema
import numpy as np
from keras import ops

from ._typing import Tensor
from .cells import gru
from .errors import LayoutError
from .layout import FORMAT, FORMAT_VERSION, GRU_GATES, ArraySpec, DenseSpec, RecurrentSpec, eval_shape_expr, load_schema
from .nodes.dense import DenseForward, DenseParams
from .nodes.recurrent import (
    DirectionForward,
    Propagator,
    backward_direction,
    run_direction,
    scan_steps,
)

KIND = "seq2seq"


# --------------------------------------------------------------------------------------------
# Layout


@dataclass(frozen=True)
class Seq2SeqSpec:
    """Sizes of a GRU encoder-decoder forecaster.

    Attributes:
        num_layers: L, GRU layers in the encoder and (equally many) in the decoder.
        units: H, width of every GRU state.
        input_size: F, history features per step; the first ``outputs`` are the targets.
        outputs: O, forecast targets per step.
        future_size: F_dec, known-future features per decoder step (may be 0).
        static_size: S, static features, read by the head only (may be 0).
        head_units: H', width of the head's hidden (relu) layer.
        name: optional label.
    """

    num_layers: int
    units: int
    input_size: int
    outputs: int
    future_size: int = 0
    static_size: int = 0
    head_units: int = 0
    name: str = ""
    kind: str = KIND

    def __post_init__(self) -> None:
        if self.head_units == 0:
            object.__setattr__(self, "head_units", self.units)

    def _gru(self, input_size: int) -> RecurrentSpec:
        return RecurrentSpec(cell="gru", units=self.units, input_size=input_size, return_sequences=True)

    @property
    def encoder(self) -> tuple[RecurrentSpec, ...]:
        """The encoder's GRU layers, bottom to top."""
        return tuple(self._gru(self.input_size if i == 0 else self.units) for i in range(self.num_layers))

    @property
    def decoder(self) -> tuple[RecurrentSpec, ...]:
        """The decoder's GRU layers, bottom to top (layer 0 reads ``[ŷ_{t−1} ; x_future_t]``)."""
        first = self.outputs + self.future_size
        return tuple(self._gru(first if i == 0 else self.units) for i in range(self.num_layers))

    @property
    def head(self) -> tuple[DenseSpec, DenseSpec]:
        """The head: ``Dense(head_units, relu)`` over ``[h_top ; static]``, then ``Dense(O, no bias)``."""
        return (
            DenseSpec(units=self.head_units, input_size=self.units + self.static_size, activation="relu"),
            DenseSpec(units=self.outputs, input_size=self.head_units, use_bias=False),
        )

    @property
    def manifest(self) -> dict[str, Any]:
        """The normalised manifest (one ``seq2seq`` layer, defaults written out)."""
        entry: dict[str, Any] = {
            "kind": KIND,
            "cell": "gru",
            "reset_after": True,
            "gate_order": list(GRU_GATES),
            "num_layers": self.num_layers,
            "units": self.units,
            "input_size": self.input_size,
            "outputs": self.outputs,
            "future_size": self.future_size,
            "static_size": self.static_size,
            "head_units": self.head_units,
        }
        if self.name:
            entry["name"] = self.name
        return {"format": FORMAT, "version": FORMAT_VERSION, "layers": [entry]}

    @property
    def arrays(self) -> tuple[ArraySpec, ...]:
        """Every weight array, in Keras ``get_weights()`` order, named as in the schema."""
        return _array_specs(self)

    def describe(self) -> str:
        """One line, for messages and ``repr``."""
        return (
            f"GRU encoder-decoder: {self.num_layers} x GRU({self.units}); history F={self.input_size}, "
            f"targets O={self.outputs}, future F_dec={self.future_size}, static S={self.static_size}, "
            f"head {self.units + self.static_size} -> {self.head_units} (relu) -> {self.outputs}"
        )


def _array_specs(spec: Seq2SeqSpec) -> tuple[ArraySpec, ...]:
    """Read the ``x-arrays`` of ``$defs/seq2seq``: consecutive entries of one ``block`` repeat per layer."""
    entries = load_schema()["$defs"][KIND]["x-arrays"]
    base = {**spec.__dict__, "head_input": spec.units + spec.static_size}
    result: list[ArraySpec] = []
    index = 0
    while index < len(entries):
        repeat, name = entries[index].get("repeat"), entries[index].get("block")
        block = [entries[index]]
        while name and index + len(block) < len(entries) and entries[index + len(block)].get("block") == name:
            block.append(entries[index + len(block)])
        for layer in range(int(base[repeat]) if repeat else 1):
            sizes = {
                **base,
                "enc_input": spec.input_size if layer == 0 else spec.units,
                "dec_input": spec.outputs + spec.future_size if layer == 0 else spec.units,
            }
            for entry in block:
                name = entry["name"].format(i=layer)
                shape = tuple(eval_shape_expr(e, sizes) for e in entry["shape"])
                result.append(ArraySpec(0, name, name, shape, tuple(entry["shape"])))
        index += len(block)
    return tuple(result)


def validate_seq2seq_manifest(manifest: Mapping[str, Any]) -> Seq2SeqSpec:
    """Validate a ``seq2seq`` manifest against ``weights_schema.json`` and for meaning.

    Raises:
        LayoutError: listing every schema violation, or the first inconsistency (more targets
            than history features, a manifest with other layers).
    """
    if not isinstance(manifest, Mapping):
        raise LayoutError(f"a layout manifest is a JSON object (dict); got {type(manifest).__name__}")
    validator = jsonschema.Draft202012Validator(load_schema())
    problems = [
        f"{'/'.join(str(p) for p in e.absolute_path) or '(top level)'}: {e.message}"
        for e in sorted(validator.iter_errors(dict(manifest)), key=lambda e: list(e.absolute_path))
    ]
    if problems:
        raise LayoutError("the layout manifest does not match weights_schema.json:\n  " + "\n  ".join(problems))
    layers = manifest["layers"]
    if len(layers) != 1 or layers[0]["kind"] != KIND:
        raise LayoutError(
            f"a forecaster manifest has exactly one layer of kind {KIND!r}; got kinds {[e['kind'] for e in layers]} "
            "(classifiers are built with tf_lrp.Explainer)"
        )
    entry = layers[0]
    spec = Seq2SeqSpec(
        num_layers=entry["num_layers"],
        units=entry["units"],
        input_size=entry["input_size"],
        outputs=entry["outputs"],
        future_size=entry.get("future_size", 0),
        static_size=entry.get("static_size", 0),
        head_units=entry.get("head_units", entry["units"]),
        name=entry.get("name", ""),
    )
    if spec.outputs > spec.input_size:
        raise LayoutError(
            f"outputs={spec.outputs} exceeds input_size={spec.input_size}: the decoder's seed ŷ_(-1) is the last "
            f"observed targets x[:, -1, :outputs], so the first {spec.outputs} history features must be the targets"
        )
    return spec


def check_seq2seq_weights(spec: Seq2SeqSpec, weights: Sequence[Any] | Mapping[str, Any]) -> list[np.ndarray]:
    """Check weights (a list in Keras order, or a dict keyed by the schema's names) against ``spec``.

    Returns:
        The arrays as numpy arrays, in Keras order.

    Raises:
        LayoutError: wrong count, missing or unknown names, wrong shapes (with the expression
            and a hint for the transposed PyTorch layout), non-float dtypes, NaN or inf.
    """
    specs = spec.arrays
    listing = ", ".join(f"{s.name} {s.shape}" for s in specs)
    if isinstance(weights, Mapping):
        names = {s.name for s in specs}
        missing = [s.name for s in specs if s.name not in weights]
        unknown = sorted(set(weights) - names)
        if missing or unknown:
            raise LayoutError(
                f"weights do not match the forecaster: missing {missing}, unknown {unknown}; expected {listing}"
            )
        arrays = [weights[s.name] for s in specs]
    else:
        arrays = list(weights)
        if len(arrays) != len(specs):
            raise LayoutError(
                f"expected {len(specs)} weight arrays for a {spec.num_layers}-layer forecaster (6 per layer pair + 3 "
                f"for the head), got {len(arrays)}. Expected, in order: {listing}"
            )
    checked = []
    for array_spec, value in zip(specs, arrays, strict=True):
        array = np.asarray(value)
        where = f"array {array_spec.name!r}"
        if array.dtype.kind != "f":
            raise LayoutError(f"{where}: dtype {array.dtype} is not a real floating type; pass float32 or float64")
        if array.shape != array_spec.shape:
            hint = (
                " This is the transposed (PyTorch) layout: transpose it (GRU weights also need the r, z, n -> z, r, h "
                "block reorder, see docs/pytorch.md)."
                if array.ndim == 2 and array.shape == array_spec.shape[::-1]
                else " Check the sizes (num_layers, outputs) and the order of the arrays."
            )
            expr = "(" + ", ".join(array_spec.shape_expr) + ")"
            raise LayoutError(f"{where}: expected shape {array_spec.shape} = {expr}, got {array.shape}.{hint}")
        bad = int(array.size - np.count_nonzero(np.isfinite(array)))
        if bad:
            raise LayoutError(f"{where}: {bad} of {array.size} values are NaN or infinite")
        checked.append(array)
    return checked


def manifest_json(spec: Seq2SeqSpec) -> str:
    """The normalised manifest as canonical JSON."""
    return json.dumps(spec.manifest, sort_keys=True)


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
