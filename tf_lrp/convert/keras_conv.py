"""Handlers for Keras's windowed sequence layers (``Conv1D``, ``Max/AveragePooling1D``) and ``RepeatVector``.

See :mod:`tf_lrp.convert.keras_nodes` for the handler contract. Keras drops the mask at all of
them (none supports masking): their outputs carry no mask. Reading a padded input right after
``Masking`` / ``Embedding(mask_zero=True)`` they would take the padding as data, so the
converter refuses that (as for ``GlobalMaxPooling1D``); after a masked recurrent layer the
padded steps hold its carried state, which Keras reads and tf_lrp reproduces.
"""

from __future__ import annotations

from typing import Any

import keras

from ..layout import CONV_ACTIVATIONS, ActivationSpec, ConvSpec, Pooling1DSpec, RepeatVectorSpec
from .keras_core import KERAS_ELEMENTWISE
from .keras_nodes import Call, Emitted, Handler, activation_name, not_after_padding, one_input, refuse, to_numpy

_L = keras.layers
#: Keras windowed pooling classes -> tf_lrp node kinds.
POOLING1D: dict[type, str] = {_L.MaxPooling1D: "max_pooling1d", _L.AveragePooling1D: "average_pooling1d"}


def _channels_last(layer: Any) -> None:
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        raise refuse(layer, "data_format='channels_first' is not supported; use channels_last (B, T, F)")


def conv1d(call: Call) -> Emitted:
    """``Conv1D``: kernel size, strides, dilation, padding valid/same/causal, groups; an elementwise activation.

    relu and linear stay on the conv1d node; any other elementwise Keras activation (e.g.
    ``leaky_relu``) becomes ``Conv1D(linear)`` followed by an ``activation`` node, as for a Dense.
    """
    layer = call.layer
    incoming = one_input(call, want_sequence=True)
    _channels_last(layer)
    not_after_padding(layer, incoming)
    elementwise = activation_name(layer.activation, KERAS_ELEMENTWISE)
    if elementwise is None:
        shown = getattr(layer.activation, "__name__", repr(layer.activation))
        raise refuse(
            layer,
            f"activation {shown!r} on a Conv1D is not supported; relevance passes through elementwise "
            f"activations only ({', '.join(KERAS_ELEMENTWISE)})",
        )
    # relu / linear stay on the conv1d node; another elementwise activation becomes its own node after it
    activation = elementwise if elementwise in CONV_ACTIVATIONS else "linear"
    if call.is_last:
        raise refuse(layer, "is the model's output; the explained score must come from a Dense layer")
    kernel = to_numpy(layer.kernel)
    spec = ConvSpec(
        filters=int(layer.filters),
        input_size=int(incoming.port.width),
        kernel_size=int(layer.kernel_size[0]),
        strides=int(layer.strides[0]),
        dilation_rate=int(layer.dilation_rate[0]),
        padding=str(layer.padding),
        groups=int(layer.groups),
        activation=activation,
        use_bias=bool(layer.use_bias),
        name=layer.name,
    )
    arrays = (kernel,) + ((to_numpy(layer.bias),) if layer.use_bias else ())
    if elementwise != activation:
        after = ActivationSpec(elementwise, spec.filters, name=f"{layer.name}_{elementwise}")
        return Emitted((spec, after), arrays, masked=False)
    return Emitted((spec,), arrays, masked=False)


def pooling1d(call: Call) -> Emitted:
    """``MaxPooling1D`` / ``AveragePooling1D``: pool size, strides, padding valid/same."""
    layer = call.layer
    incoming = one_input(call, want_sequence=True)
    _channels_last(layer)
    not_after_padding(layer, incoming)
    spec = Pooling1DSpec(
        POOLING1D[type(layer)], int(incoming.port.width), int(layer.pool_size[0]), int(layer.strides[0]),
        str(layer.padding), name=layer.name,
    )  # fmt: skip
    return Emitted((spec,), masked=False)


def repeat_vector(call: Call) -> Emitted:
    """``RepeatVector(n)``: one vector per sample -> n copies."""
    layer = call.layer
    incoming = one_input(call, want_sequence=False)
    return Emitted((RepeatVectorSpec(int(layer.n), int(incoming.port.width), name=layer.name),), masked=False)


HANDLERS: dict[type, Handler] = {
    _L.Conv1D: conv1d,
    **dict.fromkeys(POOLING1D, pooling1d),
    _L.RepeatVector: repeat_vector,
}
