"""Handlers for the Keras layers that only reshape: ``Flatten``, ``Reshape``, ``Permute``.

tf_lrp converts the reshapes that keep the time axis readable: ``Flatten`` (or ``Reshape((-1,))`` /
``Reshape((T·F,))``) of a sequence of fixed length becomes a ``flatten`` node (relevance goes back
to its step and feature); a ``Reshape`` to the same shape and ``Permute((1, 2))`` are the identity.
Anything that mixes the time axis with the features otherwise is refused.
"""

from __future__ import annotations

from typing import Any

import keras

from ..layout import FlattenSpec
from .keras_nodes import IDENTITY, Call, Emitted, Handler, Incoming, not_after_padding, one_input, refuse

_L = keras.layers


def _steps(call: Call) -> int | None:
    """The fixed time length of the call's input tensor, or None when Keras does not know it."""
    tensor = call.args[0] if call.args else None
    shape = getattr(tensor, "shape", None)
    steps = shape[1] if shape is not None and len(shape) == 3 else None
    return int(steps) if steps is not None else None


def _flatten(call: Call, incoming: Incoming) -> Emitted:
    layer = call.layer
    steps = _steps(call)
    if steps is None:
        raise refuse(layer, "flattens a sequence of unknown length; give the model's input a fixed time length")
    not_after_padding(layer, incoming)
    return Emitted((FlattenSpec(steps, int(incoming.port.width), name=layer.name),), masked=False)


def flatten(call: Call) -> Emitted:
    """``Flatten`` of a sequence (B, T, F) -> (B, T·F); of a vector, the identity."""
    incoming = one_input(call)
    if getattr(call.layer, "data_format", "channels_last") != "channels_last":
        raise refuse(call.layer, "data_format='channels_first' is not supported; use the default")
    return _flatten(call, incoming) if incoming.port.sequence else IDENTITY


def reshape(call: Call) -> Emitted:
    """``Reshape`` to the same shape (identity) or to one vector per sample (a flatten)."""
    layer = call.layer
    incoming = one_input(call)
    target = tuple(layer.target_shape)
    steps = _steps(call) if incoming.port.sequence else None
    current: tuple[Any, ...] = (steps, incoming.port.width) if incoming.port.sequence else (incoming.port.width,)
    if target == current:
        return IDENTITY
    flat = (-1,) if steps is None else (-1, steps * incoming.port.width)
    if incoming.port.sequence and len(target) == 1 and target[0] in flat:
        return _flatten(call, incoming)
    raise refuse(
        layer,
        f"target_shape={target} mixes the time axis with the features; tf_lrp reads Reshape to the same shape or "
        "to one vector per sample (a Flatten)",
    )


def permute(call: Call) -> Emitted:
    """``Permute((1, 2))``: the identity; swapping time and features is refused."""
    layer = call.layer
    one_input(call)
    if tuple(layer.dims) != (1, 2):
        raise refuse(layer, f"dims={tuple(layer.dims)} swaps the time axis with the features; tf_lrp keeps time first")
    return IDENTITY


HANDLERS: dict[type, Handler] = {_L.Flatten: flatten, _L.Reshape: reshape, _L.Permute: permute}
