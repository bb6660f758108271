"""Handlers for elementwise and normalisation Keras layers, and elementwise merges.

``Activation`` (elementwise activations; ``softmax`` only after the score layer, where the walker
skips it), ``ReLU`` (``max_value`` None or 6), ``ELU`` (``alpha=1``), ``LeakyReLU`` (any slope),
``PReLU`` (a slope per feature, shared over time),
``LayerNormalization`` (last axis), ``BatchNormalization`` (last axis, inference), ``Add`` /
``Subtract`` / ``Average`` and ``Multiply`` (inputs of one shape). See
:mod:`tf_lrp.convert.keras_nodes` for the handler contract.
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np

from ..layout import ActivationSpec, MergeSpec, MultiplySpec, NormalizationSpec, PReLUSpec, SoftmaxSpec, WeightedSumSpec
from .keras_core import KERAS_ELEMENTWISE
from .keras_nodes import Call, Emitted, Handler, activation_name, one_input, refuse, to_numpy

_L = keras.layers
#: Keras merge classes -> ``merge`` node operation
MERGES: dict[type, str] = {_L.Add: "add", _L.Subtract: "subtract", _L.Average: "average"}


def _activation_spec(call: Call, name: str) -> Emitted:
    incoming = one_input(call)
    return Emitted((ActivationSpec(name, incoming.port.width, name=call.layer.name),))


def activation(call: Call) -> Emitted:
    """``Activation`` with an elementwise Keras activation."""
    layer = call.layer
    name = activation_name(layer.activation, KERAS_ELEMENTWISE)
    if name is None:
        shown = getattr(layer.activation, "__name__", repr(layer.activation))
        why = (
            "is not elementwise (it mixes the features); tf_lrp skips it only after the score layer"
            if shown in ("softmax", "log_softmax", "sparsemax", "glu")
            else "is not a Keras elementwise activation tf_lrp knows"
        )
        raise refuse(layer, f"activation {shown!r} {why}; use one of {', '.join(KERAS_ELEMENTWISE)}")
    return _activation_spec(call, name)


def relu_layer(call: Call) -> Emitted:
    """``ReLU()`` (defaults) as relu, ``ReLU(max_value=6)`` as relu6."""
    layer = call.layer
    if float(layer.negative_slope) != 0.0 or float(layer.threshold) != 0.0:
        raise refuse(
            layer, "negative_slope or threshold other than 0 is not supported; use LeakyReLU(negative_slope) or 0"
        )
    if layer.max_value is None:
        return _activation_spec(call, "relu")
    if float(layer.max_value) == 6.0:
        return _activation_spec(call, "relu6")
    raise refuse(layer, f"max_value={layer.max_value} is not supported; use None or 6")


def elu_layer(call: Call) -> Emitted:
    """``ELU(alpha=1)`` as elu."""
    layer = call.layer
    if float(layer.alpha) != 1.0:
        raise refuse(layer, f"alpha={layer.alpha} is not supported; tf_lrp computes alpha=1.0 (the default)")
    return _activation_spec(call, "elu")


def leaky_relu_layer(call: Call) -> Emitted:
    """``LeakyReLU(negative_slope)`` as the ``leaky_relu`` activation with that slope."""
    layer = call.layer
    slope = float(layer.negative_slope)
    if not math.isfinite(slope):
        raise refuse(layer, f"negative_slope={layer.negative_slope} is not finite; use a finite slope")
    incoming = one_input(call)
    spec = ActivationSpec("leaky_relu", incoming.port.width, name=layer.name, negative_slope=slope)
    return Emitted((spec,))


def prelu_layer(call: Call) -> Emitted:
    """``PReLU``: one learned slope per feature (over time: ``shared_axes=[1]``), stored as ``alpha`` (F,)."""
    layer = call.layer
    incoming = one_input(call)
    alpha = to_numpy(layer.alpha)
    width = incoming.port.width
    if incoming.port.sequence and (alpha.ndim != 2 or alpha.shape[0] != 1):
        raise refuse(
            layer,
            f"has alpha of shape {alpha.shape}, one slope per time step; tf_lrp reads sequences of any length: "
            "build it with shared_axes=[1] (one slope per feature)",
        )
    per_feature = alpha.reshape(-1)
    if per_feature.shape[0] not in (1, width):
        raise refuse(layer, f"has alpha of shape {alpha.shape}; tf_lrp reads one slope per feature ({width},)")
    return Emitted((PReLUSpec(width, name=layer.name),), (np.broadcast_to(per_feature, (width,)).copy(),))


def _last_axis(call: Call, axis: Any) -> bool:
    """Whether ``axis`` (an int or a list of one) is the feature axis of the call's input."""
    axes = list(axis) if isinstance(axis, (list, tuple)) else [axis]
    rank = 3 if call.inputs[0].port.sequence else 2
    return len(axes) == 1 and int(axes[0]) in (-1, rank - 1)


def layer_normalization(call: Call) -> Emitted:
    """``LayerNormalization`` over the last axis (center / scale / epsilon kept)."""
    layer = call.layer
    incoming = one_input(call)
    if not _last_axis(call, layer.axis):
        raise refuse(layer, f"axis={layer.axis} is not supported; tf_lrp normalises the feature axis (axis=-1)")
    if getattr(layer, "rms_scaling", False):
        raise refuse(layer, "rms_scaling=True is not supported; use rms_scaling=False")
    spec = NormalizationSpec(
        "layer_normalization", incoming.port.width, float(layer.epsilon), bool(layer.center), bool(layer.scale),
        layer.name,
    )  # fmt: skip
    arrays = ((to_numpy(layer.gamma),) if layer.scale else ()) + ((to_numpy(layer.beta),) if layer.center else ())
    return Emitted((spec,), arrays)


def batch_normalization(call: Call) -> Emitted:
    """``BatchNormalization`` over the last axis, at inference (its moving mean and variance)."""
    layer = call.layer
    incoming = one_input(call)
    if not _last_axis(call, layer.axis):
        raise refuse(layer, f"axis={layer.axis} is not supported; tf_lrp normalises the feature axis (axis=-1)")
    spec = NormalizationSpec(
        "batch_normalization", incoming.port.width, float(layer.epsilon), bool(layer.center), bool(layer.scale),
        layer.name,
    )  # fmt: skip
    arrays = ((to_numpy(layer.gamma),) if layer.scale else ()) + ((to_numpy(layer.beta),) if layer.center else ())
    arrays += (to_numpy(layer.moving_mean), to_numpy(layer.moving_variance))
    return Emitted((spec,), arrays)


def _merged(call: Call) -> int:
    """The common width of a merge's inputs (checked)."""
    layer = call.layer
    widths = {incoming.port.width for incoming in call.inputs}
    sequences = {incoming.port.sequence for incoming in call.inputs}
    if len(call.inputs) < 2 or len(widths) > 1 or len(sequences) > 1:
        shapes = ", ".join(f"{'sequence' if i.port.sequence else 'vector'} of {i.port.width}" for i in call.inputs)
        raise refuse(layer, f"merges {shapes}; tf_lrp merges two or more inputs of the same shape (no broadcasting)")
    return widths.pop()


def merge(call: Call) -> Emitted:
    """``Add`` / ``Subtract`` / ``Average`` of inputs of one shape."""
    spec = MergeSpec(MERGES[type(call.layer)], _merged(call), name=call.layer.name)
    return Emitted((spec,), masked=all(incoming.masked for incoming in call.inputs))


def _attention_weighting(call: Call) -> Emitted | None:
    """``Multiply()([states, weights])`` with softmax weights (B, T, 1) broadcast: attention pooling's products."""
    widths = [incoming.port.width for incoming in call.inputs]
    if sorted(widths)[0] != 1 or widths[0] == widths[1] or not all(i.port.sequence for i in call.inputs):
        return None
    weights = widths.index(1)
    if not isinstance(call.inputs[weights].producer, SoftmaxSpec):
        raise refuse(
            call.layer,
            "broadcasts a (B, T, 1) tensor that is not a Softmax(axis=1) over time; tf_lrp reads Multiply of inputs of "
            "one shape, or the attention weighting Multiply()([states, Softmax(axis=1)(scores)])",
        )
    spec = WeightedSumSpec(widths[1 - weights], per_step=True, name=call.layer.name)
    return Emitted((spec,), reads=(weights, 1 - weights), masked=False)


def multiply(call: Call) -> Emitted:
    """``Multiply`` of two or more inputs of one shape (or attention weights (B, T, 1) times states)."""
    weighting = _attention_weighting(call) if len(call.inputs) == 2 else None
    if weighting is not None:
        return weighting
    spec = MultiplySpec(_merged(call), name=call.layer.name)
    return Emitted((spec,), masked=all(incoming.masked for incoming in call.inputs))


HANDLERS: dict[type, Handler] = {
    _L.Activation: activation,
    _L.ReLU: relu_layer,
    _L.ELU: elu_layer,
    _L.LeakyReLU: leaky_relu_layer,
    _L.PReLU: prelu_layer,
    _L.LayerNormalization: layer_normalization,
    _L.BatchNormalization: batch_normalization,
    **dict.fromkeys(MERGES, merge),
    _L.Multiply: multiply,
}
