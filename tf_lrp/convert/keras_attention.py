"""Handlers for the Keras attention layers and the layers of a hand-built attention pooling.

``Attention``, ``AdditiveAttention``, ``MultiHeadAttention``; ``Softmax(axis=1)`` over the time
axis and ``Dot(axes=1)([weights, states])`` (the weighted sum over time) of an attention pooling.

Attention runs over the time axis of recurrent states; the masks Keras derives from the inputs'
masks (``Embedding(mask_zero=True)``, ``Masking``) are reproduced by the nodes, which read the
step masks of all their inputs. See :mod:`tf_lrp.convert.keras_nodes` for the handler contract.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from ..layout import (
    AttentionSpec,
    MultiHeadAttentionSpec,
    PoolingSpec,
    RepeatVectorSpec,
    SoftmaxSpec,
    WeightedSumSpec,
)
from .keras_nodes import Call, Emitted, Handler, one_input, refuse, to_numpy

_L = keras.layers


def _check_sequences(call: Call, roles: tuple[str, ...]) -> None:
    for incoming, role in zip(call.inputs, roles, strict=False):
        if incoming.port.tokens:
            raise refuse(call.layer, f"its {role} is token ids; put an Embedding in between")
        if not incoming.port.sequence:
            raise refuse(
                call.layer, f"its {role} {incoming.port.what} has no time axis; tf_lrp attends over sequences (B, T, F)"
            )


def _flag(call: Call, name: str) -> bool:
    value = call.kwargs.get(name, False)
    if not isinstance(value, bool):
        raise refuse(call.layer, f"{name}={value!r} must be a Python bool")
    return value


def attention(call: Call) -> Emitted:
    """``Attention(score_mode="dot" | "concat")`` / ``AdditiveAttention`` on ``[query, value(, key)]``."""
    layer = call.layer
    if any(keyword is not None for keyword in call.keywords):
        raise refuse(
            layer, "is called with tensor keyword arguments; call it as layer([query, value]) or [query, value, key]"
        )
    if len(call.inputs) not in (2, 3):
        raise refuse(
            layer, f"is called on {len(call.inputs)} tensors; tf_lrp reads [query, value] or [query, value, key]"
        )
    if _flag(call, "return_attention_scores"):
        raise refuse(layer, "return_attention_scores=True is not supported; explain the attention output (the default)")
    causal = _flag(call, "use_causal_mask")
    _check_sequences(call, ("query", "value", "key"))
    additive = type(layer) is _L.AdditiveAttention
    mode = "additive" if additive else str(layer.score_mode)
    if mode not in ("dot", "concat", "additive"):
        raise refuse(layer, f"score_mode={layer.score_mode!r} is not supported; use 'dot' or 'concat'")
    query, value = call.inputs[0].port, call.inputs[1].port
    has_key = len(call.inputs) == 3
    spec = AttentionSpec(
        query_size=query.width,
        value_size=value.width,
        score_mode=mode,
        use_scale=bool(layer.use_scale),
        causal=causal,
        has_key=has_key,
        name=layer.name,
    )
    arrays: list[np.ndarray] = []
    if layer.use_scale:  # Keras's scalars are stored with shape (1,) (the additive scale is a vector)
        arrays.append(to_numpy(layer.scale).reshape(-1))
    if mode == "concat":
        arrays.append(to_numpy(layer.concat_score_weight).reshape(-1))
    return Emitted((spec,), tuple(arrays), masked=call.inputs[0].masked)


def _dense_weights(layer: Any, dense: Any, use_bias: bool) -> list[np.ndarray]:
    kernel = to_numpy(dense.kernel)
    return [kernel] + ([to_numpy(dense.bias)] if use_bias else [])


def multi_head_attention(call: Call) -> Emitted:
    """``MultiHeadAttention(num_heads, key_dim, value_dim, use_bias, output_shape)`` over the time axis."""
    layer = call.layer
    roles = ("query", "value", "key")
    index: dict[str, int] = {}
    positional = [i for i, keyword in enumerate(call.keywords) if keyword is None]
    for role, i in zip(roles, positional, strict=False):
        index[role] = i
    for i, keyword in enumerate(call.keywords):
        if keyword is None:
            continue
        if keyword not in roles:
            raise refuse(
                layer,
                f"is called with {keyword}=...; tf_lrp derives the attention mask from the inputs' Keras masks "
                "(and use_causal_mask): drop the explicit mask",
            )
        index[keyword] = i
    for name in ("attention_mask", "query_mask", "value_mask", "key_mask"):
        if call.kwargs.get(name) is not None:
            raise refuse(
                layer,
                f"is called with {name}=...; tf_lrp derives the attention mask from the inputs' Keras masks "
                "(and use_causal_mask): drop the explicit mask",
            )
    if "query" not in index or "value" not in index:
        raise refuse(layer, "needs a query and a value")
    if _flag(call, "return_attention_scores"):
        raise refuse(layer, "return_attention_scores=True is not supported; explain the attention output (the default)")
    causal = _flag(call, "use_causal_mask")
    if getattr(layer, "_attention_axes", None) not in (None, (1,)):
        raise refuse(layer, "attention_axes other than the time axis are not supported")
    if getattr(layer, "_use_gate", False):
        raise refuse(layer, "use_gate=True is not supported")
    if getattr(layer, "_sliding_window", None) is not None:
        raise refuse(layer, "sliding_window is not supported")
    if getattr(layer, "_output_shape", None) and len(layer._output_shape) != 1:
        raise refuse(layer, "output_shape with more than one dimension is not supported")
    order = [index["query"], index["value"]] + ([index["key"]] if "key" in index else [])
    incoming = [call.inputs[i] for i in order]
    for part, role in zip(incoming, roles, strict=False):
        if part.port.tokens or not part.port.sequence:
            raise refuse(layer, f"its {role} {part.port.what} is not a sequence of vectors (B, T, F)")
    has_key = "key" in index
    use_bias = bool(layer._use_bias)
    out_kernel = to_numpy(layer._output_dense.kernel)
    spec = MultiHeadAttentionSpec(
        num_heads=int(layer._num_heads),
        key_dim=int(layer._key_dim),
        value_dim=int(layer._value_dim),
        query_size=incoming[0].port.width,
        value_size=incoming[1].port.width,
        key_size=incoming[2].port.width if has_key else incoming[1].port.width,
        out_size=int(out_kernel.shape[-1]),
        use_bias=use_bias,
        causal=causal,
        has_key=has_key,
        name=layer.name,
    )
    arrays: list[np.ndarray] = []
    for dense in (layer._query_dense, layer._key_dense, layer._value_dense, layer._output_dense):
        arrays.extend(_dense_weights(layer, dense, use_bias))
    return Emitted((spec,), tuple(arrays), reads=tuple(order), masked=incoming[0].masked)


def softmax(call: Call) -> Emitted:
    """``Softmax(axis=1)`` of a sequence (B, T, F) before the score layer: the attention weights, over time."""
    layer = call.layer
    incoming = one_input(call, want_sequence=True)
    axis = layer.axis
    axes = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    if axes not in ((1,), (-2,)):
        raise refuse(
            layer,
            f"axis={axis!r}: tf_lrp reads a softmax before the score layer over the time axis only (axis=1, the "
            "attention weights of an attention pooling)",
        )
    if incoming.masked:
        raise refuse(
            layer,
            "receives a step mask (B, T) that Keras 3's Softmax cannot apply to its (B, T, F) input (it raises when "
            "run); use keras.layers.Attention / AdditiveAttention for masked inputs, or remove the mask",
        )
    return Emitted((SoftmaxSpec(incoming.port.width, name=layer.name),))


def dot(call: Call) -> Emitted:
    """``Dot(axes=1)([weights (B, T, 1), states (B, T, F)])`` -> (B, 1, F): the weighted sum over time."""
    layer = call.layer
    axes = layer.axes
    if (tuple(axes) if isinstance(axes, (tuple, list)) else (axes, axes)) != (1, 1) or layer.normalize:
        raise refuse(
            layer,
            f"axes={axes!r}, normalize={layer.normalize!r}: tf_lrp reads Dot(axes=1) (the weighted sum over time of "
            "an attention pooling, [weights, states])",
        )
    if len(call.inputs) != 2 or any(not i.port.sequence or i.port.tokens for i in call.inputs):
        raise refuse(layer, "tf_lrp reads Dot(axes=1)([weights (B, T, 1), states (B, T, F)]) of two sequences")
    weights, states = call.inputs
    if weights.port.width != 1:
        raise refuse(
            layer,
            f"its first input {weights.port.what} has width {weights.port.width}; tf_lrp reads "
            "Dot(axes=1)([weights (B, T, 1), states (B, T, F)]) (weights first, one per step)",
        )
    if not isinstance(weights.producer, SoftmaxSpec):
        raise refuse(
            layer,
            f"its weights {weights.port.what} are not a Softmax(axis=1) over time; tf_lrp reads the weighted sum of an "
            "attention pooling (weights that sum to 1 over the steps, so the ε-rule conserves)",
        )
    width = states.port.width
    specs = (WeightedSumSpec(width, name=layer.name), RepeatVectorSpec(1, width, name=f"{layer.name}_step"))
    return Emitted(specs, masked=False)  # Keras's Dot passes no mask on; the (B, 1, F) output is one step


def sum_over_time(call: Call) -> Emitted:
    """``keras.ops.sum(x, axis=1)`` of a sequence (the sum of attention pooling's weighted steps)."""
    layer = call.layer
    incoming = one_input(call, want_sequence=True)
    axis = getattr(layer, "axis", None)
    axes = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    if axes not in ((1,), (-2,)) or getattr(layer, "keepdims", False):
        raise refuse(
            layer,
            f"sums over axis={axis!r} (keepdims={getattr(layer, 'keepdims', False)!r}); tf_lrp reads "
            "keras.ops.sum(x, axis=1) over the time axis of a sequence, without keepdims",
        )
    if incoming.masked:
        raise refuse(
            layer,
            "sums a masked sequence: keras.ops.sum ignores the mask and adds the padded steps; use "
            "GlobalAveragePooling1D or remove the mask",
        )
    return Emitted((PoolingSpec("global_sum_pooling", incoming.port.width, name=layer.name),))


HANDLERS: dict[type, Handler] = {
    keras.src.ops.numpy.Sum: sum_over_time,
    _L.Softmax: softmax,
    _L.Dot: dot,
    _L.Attention: attention,
    _L.AdditiveAttention: attention,
    _L.MultiHeadAttention: multi_head_attention,
}
