"""The contract between the Keras graph walker and the per-layer handlers.

:func:`tf_lrp.convert.keras.from_keras` walks a model's functional graph in topological order.
For every call of a layer (or of a Keras operation such as ``x[:, -1]``) it looks up the handler
registered for the call's exact class and gives it a :class:`Call`: the layer, what reaches each
of its tensor arguments (:class:`Incoming`) and whether it produces the explained score. The
handler returns an :class:`Emitted`: the tf_lrp layer specs the call becomes (a chain, first to
last), their weights in Keras order, and which inputs the first spec reads. A handler refuses
what tf_lrp cannot reproduce with :func:`refuse` (one line: the layer, the option, the fix).

Each family of layers is one module (``keras_core``, ...) exporting ``HANDLERS``, a mapping
from Keras class to handler; the walker merges them. Adding a Keras layer is one handler there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import keras
import numpy as np

from ..errors import ConversionError
from ..layout import EmbeddingSpec, LayerSpec, Port


class Incoming(NamedTuple):
    """What reaches one tensor argument of a layer call.

    Attributes:
        port: its time axis, width and whether it holds token ids (:class:`~tf_lrp.layout.Port`).
        masked: whether a Keras mask flows with it (from ``Embedding(mask_zero=True)`` or ``Masking``).
        producer: the spec that produced it, or None for a network input.
    """

    port: Port
    masked: bool
    producer: LayerSpec | None


class Call(NamedTuple):
    """One call of a Keras layer or operation, as a handler sees it.

    Attributes:
        layer: the layer (or operation) called.
        inputs: one entry per tensor argument: the positional ones (a list argument flattened),
            then the keyword ones other than ``mask`` and ``training``, in the call's order.
        keywords: per input, its keyword, or None for a positional one.
        args: the call's positional arguments as written (Keras tensors included).
        kwargs: the call's keyword arguments as written.
        is_last: whether this call produces the model's output (its pre-activation is the score).
    """

    layer: Any
    inputs: tuple[Incoming, ...]
    keywords: tuple[str | None, ...]
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    is_last: bool

    def named(self, keyword: str) -> int | None:
        """The index in :attr:`inputs` of the keyword argument ``keyword``, or None if not given."""
        return self.keywords.index(keyword) if keyword in self.keywords else None


class Emitted(NamedTuple):
    """What a call becomes on the layer graph.

    Attributes:
        specs: the specs, a chain (each reads the one before; the first reads ``reads``); empty
            for a layer that is the identity at inference (its output is its first input).
        arrays: the specs' weights, in order (Keras ``get_weights()`` order within each).
        reads: which of the call's inputs the first spec reads, by index (None: all, in order).
        masked: whether a Keras mask flows with the output (None: the first input's, while the
            output keeps the time axis).
        outputs: for a call with several output tensors, which spec (index into ``specs``)
            produces each (None: the last spec produces the one output).
        links: per spec, which earlier spec of this call it reads (an index into ``specs``), or
            None for the one before (the chain); the first spec always reads ``reads``. None:
            a chain.
    """

    specs: tuple[LayerSpec, ...]
    arrays: tuple[np.ndarray, ...] = ()
    reads: tuple[int, ...] | None = None
    masked: bool | None = None
    outputs: tuple[int, ...] | None = None
    links: tuple[int | None, ...] | None = None


#: a handler: one call -> what it becomes
Handler = Callable[[Call], Emitted]
#: Keras class -> handler
Handlers = Mapping[type, Handler]

IDENTITY = Emitted(())


def describe(layer: Any) -> str:
    """``layer 'name' (Class)`` for messages."""
    return f"layer {getattr(layer, 'name', '?')!r} ({type(layer).__name__})"


def refuse(layer: Any, reason: str) -> ConversionError:
    """The one-line error for a layer (or one of its options) tf_lrp cannot reproduce; ``reason`` names the fix."""
    return ConversionError(f"{describe(layer)}: {reason}")


def to_numpy(value: Any) -> np.ndarray:
    """A Keras variable or tensor as a numpy array."""
    return np.asarray(keras.ops.convert_to_numpy(value))


def activation_name(function: Any, allowed: Sequence[str] | None) -> str | None:
    """The Keras name of ``function`` if it is that genuine Keras activation (and in ``allowed``), else None."""
    name = getattr(function, "__name__", None)
    if not isinstance(name, str):
        return None
    candidates = allowed if allowed is not None else (name,)
    if name not in candidates:
        return None
    try:
        genuine = keras.activations.get(name)
    except (ValueError, TypeError):
        return None
    return name if genuine is function else None


def one_input(call: Call, want_sequence: bool | None = None) -> Incoming:
    """The single tensor input of ``call``, checked (``want_sequence``: it must / must not have a time axis)."""
    if len(call.inputs) != 1:
        raise refuse(call.layer, f"is called on {len(call.inputs)} tensors; tf_lrp reads it on one")
    incoming = call.inputs[0]
    if want_sequence is True and not incoming.port.sequence:
        raise refuse(call.layer, f"reads {incoming.port.what}, which has no time axis; it needs a sequence")
    if want_sequence is False and incoming.port.sequence:
        raise refuse(call.layer, f"reads {incoming.port.what}, a sequence; it needs one vector per sample")
    return incoming


def not_after_padding(layer: Any, incoming: Incoming) -> None:
    """Refuse a layer that would read padded steps as data (Keras drops the mask at it)."""
    right_after_padding = incoming.producer is None or isinstance(incoming.producer, EmbeddingSpec)
    if incoming.masked and right_after_padding:
        raise refuse(
            layer,
            "reads padded steps as data (Keras drops the mask at this layer), so it would explain padding; "
            "remove Masking / mask_zero before it (pad with a neutral value), or put a recurrent layer first",
        )


__all__ = [
    "IDENTITY",
    "Call",
    "Emitted",
    "Handler",
    "Handlers",
    "Incoming",
    "activation_name",
    "describe",
    "not_after_padding",
    "one_input",
    "refuse",
    "to_numpy",
]
