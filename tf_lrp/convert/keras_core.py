"""Handlers for the core Keras layers.

Embedding, LSTM / GRU / SimpleRNN (plain or Bidirectional), Dense (also ``TimeDistributed(Dense)``
and Dense on a sequence), global pooling over time, Concatenate, one time step (``x[:, -1]``), and
the layers that are the identity at inference.

See :mod:`tf_lrp.convert.keras_nodes` for the handler contract. ``Masking`` is read by the walker
itself (it sets the mask value of the network input it reads).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import keras
import numpy as np

from ..layout import (
    ELEMENTWISE_ACTIVATIONS,
    HIDDEN_DENSE_ACTIVATIONS,
    RECURRENT_ACTIVATIONS,
    ActivationSpec,
    ConcatenateSpec,
    DenseSpec,
    EmbeddingSpec,
    LayerSpec,
    PoolingSpec,
    RecurrentSpec,
    SelectStepSpec,
    SliceSpec,
)
from .keras_nodes import IDENTITY, Call, Emitted, Handler, activation_name, one_input, refuse, to_numpy

_L = keras.layers
#: Layers that are the identity at inference (``training=False``).
IDENTITY_LAYERS: tuple[type, ...] = (
    _L.Dropout,
    _L.SpatialDropout1D,
    _L.GaussianNoise,
    _L.GaussianDropout,
    _L.AlphaDropout,
)
#: Keras recurrent layer class -> tf_lrp cell kind, and the cell class each must use.
RECURRENT: dict[type, str] = {_L.LSTM: "lstm", _L.GRU: "gru", _L.SimpleRNN: "simple_rnn"}
_CELLS: dict[str, type] = {"lstm": _L.LSTMCell, "gru": _L.GRUCell, "simple_rnn": _L.SimpleRNNCell}
#: Keras pooling-over-time classes -> tf_lrp node kinds.
POOLING: dict[type, str] = {
    _L.GlobalMaxPooling1D: "global_max_pooling",
    _L.GlobalAveragePooling1D: "global_average_pooling",
}
MERGE_MODES = ("concat", "sum", "ave")
#: Keras activation names (default parameters) the ``activation`` node computes
KERAS_ELEMENTWISE: tuple[str, ...] = tuple(name for name in ELEMENTWISE_ACTIVATIONS if name != "gelu_approximate")
#: the Keras operation behind ``tensor[...]`` in a functional model (``keras.ops.get_item``)
GET_ITEM: type = keras.src.ops.numpy.GetItem


def identity(call: Call) -> Emitted:
    """Dropout and noise layers: the identity at inference."""
    return IDENTITY


def embedding(call: Call) -> Emitted:
    """``Embedding``: it must read a network input of token ids; ``mask_zero`` is kept."""
    layer = call.layer
    incoming = one_input(call)
    if not incoming.port.tokens:
        raise refuse(layer, f"reads {incoming.port.what}; an Embedding must read a network input of token ids (B, T)")
    table = to_numpy(layer.embeddings)
    spec = EmbeddingSpec(table.shape[0], table.shape[1], bool(layer.mask_zero), layer.name)
    return Emitted((spec,), (table,), masked=bool(layer.mask_zero))


def _check_rnn(layer: Any, rnn: Any, kind: str, where: str) -> None:
    """Refuse the options of one recurrent layer whose inference semantics tf_lrp lacks."""
    if type(rnn.cell) is not _CELLS[kind]:
        raise refuse(layer, f"{where}cell {type(rnn.cell).__name__} is not Keras's {_CELLS[kind].__name__}")
    if rnn.stateful:
        raise refuse(
            layer,
            f"{where}stateful=True carries the state across batches; tf_lrp explains each sequence from a "
            "zero state: rebuild the model with stateful=False (same weights)",
        )
    if rnn.return_state and (where or rnn.return_sequences):
        raise refuse(
            layer,
            f"{where}return_state=True is supported on a forward LSTM / GRU / SimpleRNN with return_sequences=False "
            "(an encoder whose final states start a decoder); set return_state=False here",
        )
    if getattr(rnn, "time_major", False):
        raise refuse(layer, f"{where}time_major=True is not supported; use batch-major (B, T, D) inputs")
    if not rnn.return_sequences and rnn.zero_output_for_mask:
        raise refuse(
            layer,
            f"{where}zero_output_for_mask=True with return_sequences=False returns zeros for a sequence whose "
            "last step is masked; tf_lrp returns the carried state: set zero_output_for_mask=False",
        )
    cell = rnn.cell
    for field in ("activation", "recurrent_activation"):
        function = getattr(cell, field, None)
        if function is None:  # SimpleRNN has no gates
            continue
        if activation_name(function, RECURRENT_ACTIVATIONS) is None:
            name = getattr(function, "__name__", repr(function))
            raise refuse(
                layer, f"{where}{field}={name!r} is not supported; use one of {', '.join(RECURRENT_ACTIVATIONS)}"
            )


def _recurrent_spec(layer: Any, rnn: Any, kind: str, direction: str, merge_mode: str) -> RecurrentSpec:
    cell = rnn.cell
    return RecurrentSpec(
        cell=kind,
        units=int(cell.units),
        input_size=int(cell.kernel.shape[0]),
        direction=direction,  # type: ignore[arg-type]
        merge_mode=merge_mode,  # type: ignore[arg-type]
        return_sequences=bool(rnn.return_sequences),
        reset_after=bool(getattr(cell, "reset_after", True)),
        activation=cell.activation.__name__,
        recurrent_activation=getattr(cell, "recurrent_activation", keras.activations.sigmoid).__name__,
        use_bias=bool(cell.use_bias),
        name=layer.name,
        zero_output_for_mask=bool(rnn.return_sequences and rnn.zero_output_for_mask),
    )


def _reads_sequence(call: Call, states: int = 0) -> None:
    """Check that ``call`` reads one sequence, plus ``states`` initial states when allowed (0: none)."""
    extra = [k for k in call.keywords[1:] if k != "initial_state" or not states]
    if extra or call.keywords[:1] != (None,):
        given = [k for k in call.keywords if k is not None]
        raise refuse(
            call.layer,
            f"is called with more than its input sequence ({', '.join(given) or len(call.inputs)}); "
            "tf_lrp reads initial_state= on a forward LSTM / GRU / SimpleRNN only (zero states elsewhere): drop it",
        )
    given_states = len(call.inputs) - 1
    if given_states and given_states != states:
        raise refuse(call.layer, f"reads {given_states} initial states; a {type(call.layer).__name__} has {states}")
    if not call.inputs[0].port.sequence:
        raise refuse(call.layer, "receives no sequence: the recurrent layer before it has return_sequences=False")


def recurrent(call: Call) -> Emitted:
    """``LSTM`` / ``GRU`` / ``SimpleRNN``: one direction (``go_backwards`` only when returning the last state)."""
    layer = call.layer
    kind = RECURRENT[type(layer)]
    states = 2 if kind == "lstm" else 1
    _reads_sequence(call, 0 if layer.go_backwards else states)
    _check_rnn(layer, layer, kind, "")
    direction = "forward"
    if layer.go_backwards:
        if layer.return_sequences:
            raise refuse(
                layer,
                "go_backwards=True with return_sequences=True returns the outputs in reversed time order, which "
                "tf_lrp does not reproduce; wrap the layer in Bidirectional, or return only the last output",
            )
        if layer.return_state:
            raise refuse(layer, "return_state=True with go_backwards=True is not supported; set return_state=False")
        direction = "backward"
    spec = _recurrent_spec(layer, layer, kind, direction, "concat")
    if len(call.inputs) > 1 and call.kwargs.get("mask") is not None:
        raise refuse(layer, "is called with initial_state= and an explicit mask=; tf_lrp reads one of them: drop mask=")
    spec = dataclasses.replace(spec, initial_state=len(call.inputs) > 1)
    arrays = tuple(to_numpy(w) for w in layer.cell.weights)
    if not layer.return_state:
        return Emitted((spec,), arrays)
    if kind != "lstm":  # [output, h]: both the final output
        return Emitted((spec,), arrays, outputs=(0, 0))
    # [output, h, c]: the node outputs [h ; c]; h (= the output) and c are sliced out of it
    units = spec.units
    final = dataclasses.replace(spec, return_state=True)
    h = SliceSpec(2 * units, 0, units, name=f"{layer.name}_h")
    c = SliceSpec(2 * units, units, 2 * units, name=f"{layer.name}_c")
    return Emitted((final, h, c), arrays, outputs=(1, 1, 2), links=(None, 0, 0))


def bidirectional(call: Call) -> Emitted:
    """``Bidirectional(LSTM | GRU | SimpleRNN)`` with merge_mode concat, sum or ave."""
    layer = call.layer
    _reads_sequence(call)
    if layer.merge_mode not in MERGE_MODES:
        raise refuse(layer, f"merge_mode={layer.merge_mode!r} is not supported; use one of {', '.join(MERGE_MODES)}")
    if layer.return_state:
        raise refuse(layer, "return_state=True: tf_lrp explains one output per layer; set it to False")
    forward, backward = layer.forward_layer, layer.backward_layer
    kind = RECURRENT.get(type(forward))
    if kind is None or type(backward) is not type(forward):
        raise refuse(
            layer,
            f"wraps {type(forward).__name__} forwards and {type(backward).__name__} backwards; tf_lrp supports "
            "Bidirectional(LSTM), Bidirectional(GRU) and Bidirectional(SimpleRNN), the same layer type both ways",
        )
    if forward.go_backwards or not backward.go_backwards:
        raise refuse(layer, "the wrapped layer has go_backwards=True; wrap a layer with go_backwards=False")
    _check_rnn(layer, forward, kind, "forward layer: ")
    _check_rnn(layer, backward, kind, "backward layer: ")
    spec = _recurrent_spec(layer, forward, kind, "bidirectional", layer.merge_mode)
    other = _recurrent_spec(layer, backward, kind, "bidirectional", layer.merge_mode)
    if other != spec:
        raise refuse(
            layer,
            "its forward and backward layers differ (units, activations, use_bias or reset_after); tf_lrp "
            "needs the same configuration both ways",
        )
    weights = [to_numpy(w) for w in forward.cell.weights] + [to_numpy(w) for w in backward.cell.weights]
    return Emitted((spec,), tuple(weights))


def _dense(layer: Any, activation: str) -> tuple[DenseSpec, tuple[np.ndarray, ...]]:
    kernel = to_numpy(layer.kernel)  # LoRA (if enabled) is merged in by Keras
    spec = DenseSpec(
        units=int(kernel.shape[1]),
        input_size=int(kernel.shape[0]),
        activation=activation,
        use_bias=bool(layer.use_bias),
        name=layer.name,
    )
    return spec, (kernel,) + ((to_numpy(layer.bias),) if layer.use_bias else ())


def dense_spec(layer: Any, is_last: bool) -> tuple[DenseSpec, tuple[np.ndarray, ...]]:
    """A Keras ``Dense`` as a :class:`~tf_lrp.layout.DenseSpec` and its weights (hidden: relu / linear)."""
    if is_last:
        return _dense(layer, getattr(layer.activation, "__name__", None) or "custom")
    name = activation_name(layer.activation, HIDDEN_DENSE_ACTIVATIONS)
    if name is None:
        shown = getattr(layer.activation, "__name__", repr(layer.activation))
        raise refuse(
            layer,
            f"activation {shown!r} on a Dense layer before the last one is not supported; relevance passes "
            f"through elementwise activations only ({', '.join(KERAS_ELEMENTWISE)})",
        )
    return _dense(layer, name)


def dense_specs(layer: Any, is_last: bool) -> tuple[tuple[LayerSpec, ...], tuple[np.ndarray, ...]]:
    """A Keras ``Dense`` as specs: one DenseSpec, or ``Dense(linear)`` + an ``activation`` node.

    A hidden Dense with an elementwise activation other than relu / linear is split in two; relu
    and linear stay on the DenseSpec (the manifests, and so the fingerprints, of earlier releases).
    """
    if not is_last:
        name = activation_name(layer.activation, KERAS_ELEMENTWISE)
        if name is not None and name not in HIDDEN_DENSE_ACTIVATIONS:
            spec, arrays = _dense(layer, "linear")
            return (spec, ActivationSpec(name, spec.units, name=f"{layer.name}_{name}")), arrays
    spec, arrays = dense_spec(layer, is_last)
    return (spec,), arrays


def dense(call: Call) -> Emitted:
    """``Dense`` on vectors, or on every step of a sequence (a per-step output)."""
    one_input(call)
    specs, arrays = dense_specs(call.layer, call.is_last)
    return Emitted(specs, arrays)


def time_distributed(call: Call) -> Emitted:
    """``TimeDistributed(Dense)``: a Dense on every step."""
    layer = call.layer
    if type(layer.layer) is not _L.Dense:
        raise refuse(layer, f"wraps {type(layer.layer).__name__}; tf_lrp reads TimeDistributed(Dense) only")
    one_input(call, want_sequence=True)
    specs, arrays = dense_specs(layer.layer, call.is_last)
    return Emitted(specs, arrays)


def pooling(call: Call) -> Emitted:
    """``GlobalMaxPooling1D`` / ``GlobalAveragePooling1D`` (channels_last, keepdims=False)."""
    layer = call.layer
    incoming = one_input(call, want_sequence=True)
    if layer.data_format != "channels_last" or layer.keepdims:
        raise refuse(layer, "data_format='channels_first' or keepdims=True is not supported; use the defaults")
    right_after_padding = incoming.producer is None or isinstance(incoming.producer, EmbeddingSpec)
    if type(layer) is _L.GlobalMaxPooling1D and incoming.masked and right_after_padding:
        raise refuse(
            layer,
            "takes the max over padded steps too (Keras ignores the mask there), so it would explain "
            "padding; put a recurrent layer before it or use GlobalAveragePooling1D",
        )
    return Emitted((PoolingSpec(POOLING[type(layer)], incoming.port.width, name=layer.name),))


def concatenate(call: Call) -> Emitted:
    """``Concatenate`` on the feature (last) axis."""
    layer = call.layer
    if layer.axis not in (-1, 2 if call.inputs and call.inputs[0].port.sequence else 1):
        raise refuse(layer, f"axis={layer.axis} is not supported; tf_lrp joins on the feature axis (axis=-1)")
    return Emitted((ConcatenateSpec(tuple(i.port.width for i in call.inputs), name=layer.name),))


def _full(item: Any) -> bool:
    return item is Ellipsis or (isinstance(item, slice) and item == slice(None))


def get_item(call: Call) -> Emitted:
    """``x[:, t]`` / ``x[:, t, :]`` on a sequence: one time step (``t < 0`` counts from the end)."""
    layer = call.layer
    incoming = one_input(call, want_sequence=True)
    key = call.args[1] if len(call.args) > 1 else call.kwargs.get("key")
    items = key if isinstance(key, tuple) else (key,)
    step = items[1] if len(items) >= 2 else None
    if (
        len(items) < 2
        or len(items) > 3
        or not (isinstance(items[0], slice) and items[0] == slice(None))
        or isinstance(step, bool)
        or not isinstance(step, int)
        or not all(_full(item) for item in items[2:])
    ):
        raise refuse(
            layer,
            f"indexes a sequence with {key!r}; tf_lrp reads one time step of every sample, x[:, t] or x[:, t, :] "
            "(an integer t, negative from the end)",
        )
    return Emitted((SelectStepSpec(step, incoming.port.width, name=layer.name),), masked=False)


HANDLERS: dict[type, Handler] = {
    **dict.fromkeys(IDENTITY_LAYERS, identity),
    _L.Embedding: embedding,
    **dict.fromkeys(RECURRENT, recurrent),
    _L.Bidirectional: bidirectional,
    _L.Dense: dense,
    _L.TimeDistributed: time_distributed,
    **dict.fromkeys(POOLING, pooling),
    _L.Concatenate: concatenate,
    GET_ITEM: get_item,
}
