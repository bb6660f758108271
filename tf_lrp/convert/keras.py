"""Keras 3 models -> tf_lrp layouts.

:func:`from_keras` walks a ``Sequential`` or functional model that is a linear chain of

* ``InputLayer``; ``Embedding`` (``mask_zero`` kept) or ``Masking`` (``mask_value`` kept), first;
* ``LSTM`` / ``GRU`` (both ``reset_after``), plain or in ``Bidirectional`` (merge_mode concat,
  sum, ave), stacked;
* ``Dropout``, ``SpatialDropout1D``, ``GaussianNoise``, ``GaussianDropout``, ``AlphaDropout``:
  identity at inference, skipped;
* ``Dense``: relu / linear in between, any activation last (the explained score is the last
  Dense's pre-activation),

and returns the layout manifest plus the weights in Keras order. Layers are matched by exact
class, so a subclass with its own ``call`` is refused rather than silently misread. Every option
whose inference semantics tf_lrp does not reproduce is refused with the layer's name and the fix:
``stateful``, ``return_state``, ``time_major``, ``go_backwards`` on a layer that returns
sequences (Keras returns those in reversed time order), ``zero_output_for_mask`` on a layer that
returns only its last output, cell activations outside ``tanh, sigmoid, hard_sigmoid, relu,
linear``, ``Bidirectional`` merge modes ``mul`` and ``None``, quantized layers. ``dropout`` /
``recurrent_dropout``, ``unit_forget_bias`` (an initializer), ``use_cudnn`` and ``unroll`` do not
change inference and are accepted.

:func:`score_model` builds the Keras reference the explainer checks itself against: the same
model up to the last Dense, followed by a linear copy of it (its pre-activation).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from ..errors import ConversionError, InputError, LayoutError
from ..layout import (
    HIDDEN_DENSE_ACTIVATIONS,
    RECURRENT_ACTIVATIONS,
    DenseSpec,
    EmbeddingSpec,
    InputSpec,
    LayerSpec,
    PoolingSpec,
    RecurrentSpec,
    input_edge,
    to_manifest,
    validate_manifest,
)
from . import Converted

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
_RECURRENT: dict[type, str] = {_L.LSTM: "lstm", _L.GRU: "gru", _L.SimpleRNN: "simple_rnn"}
_CELLS: dict[str, type] = {"lstm": _L.LSTMCell, "gru": _L.GRUCell, "simple_rnn": _L.SimpleRNNCell}
#: Keras pooling-over-time classes -> tf_lrp node kinds.
_POOLING: dict[type, str] = {
    _L.GlobalMaxPooling1D: "global_max_pooling",
    _L.GlobalAveragePooling1D: "global_average_pooling",
}
#: Class names :func:`from_keras` reads (for error messages).
SUPPORTED_LAYERS: tuple[str, ...] = (
    "InputLayer",
    "Embedding",
    "Masking",
    "LSTM",
    "GRU",
    "SimpleRNN",
    "Bidirectional",
    "Dense",
    "TimeDistributed(Dense)",
    "GlobalMaxPooling1D",
    "GlobalAveragePooling1D",
    *(cls.__name__ for cls in IDENTITY_LAYERS),
)
MERGE_MODES = ("concat", "sum", "ave")


def _numpy(value: Any) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(value))


def _describe(layer: Any) -> str:
    return f"layer {layer.name!r} ({type(layer).__name__})"


def _refuse(layer: Any, reason: str) -> ConversionError:
    return ConversionError(f"{_describe(layer)}: {reason}")


def _activation_name(function: Any, allowed: Sequence[str] | None) -> str | None:
    """The Keras name of ``function`` if it is that genuine Keras activation, else None."""
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


# --------------------------------------------------------------------------------------------
# Loading and walking


def load_model(source: Any) -> keras.Model:
    """Return ``source`` if it is a ``keras.Model``, else load it from a ``.keras`` file.

    Args:
        source: a ``keras.Model`` or a path to a ``.keras`` file.

    Returns:
        The model (loaded with ``safe_mode=True, compile=False``: no code from the file runs).

    Raises:
        InputError: a missing file, a file that is not ``.keras``, or one Keras cannot load.
    """
    if isinstance(source, keras.Model):
        return source
    if not isinstance(source, (str, os.PathLike)):
        raise InputError(f"expected a keras.Model or a path to a .keras file; got {type(source).__name__}")
    path = Path(source)
    if not path.is_file():
        raise InputError(f"Keras model file {str(path)!r} does not exist")
    if path.suffix != ".keras":
        raise InputError(
            f"{str(path)!r} is not a .keras file; save the model with model.save('model.keras'), or load it "
            "yourself and pass the keras.Model"
        )
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as exc:  # Keras raises ValueError, TypeError, zipfile errors, ...
        raise InputError(f"Keras could not load {str(path)!r} (safe_mode=True): {exc}") from exc


def model_layers(model: keras.Model) -> list[Any]:
    """The model's layers input to output, checked to form one linear chain.

    Raises:
        ConversionError: for a subclassed model, an unbuilt one, a nested model, a model
            with several inputs or outputs, or a layer that takes more than the previous
            layer's output (initial states, a second branch).
    """
    if not isinstance(model, keras.Model):
        raise ConversionError(f"expected a keras.Model; got {type(model).__name__}")
    if not model.built:
        raise ConversionError(
            f"model {model.name!r} is not built: give it a keras.Input(shape=...) or call it on a batch first"
        )
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            raise ConversionError(
                f"{_describe(layer)} is a nested model inside {model.name!r}; build one flat Sequential or "
                "functional model from its layers"
            )
    if isinstance(model, keras.Sequential):
        return list(model.layers)
    try:
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError):
        inputs, outputs = None, None
    if not inputs or not outputs:
        raise ConversionError(
            f"model {model.name!r} ({type(model).__name__}) is a subclassed model; tf_lrp reads Sequential and "
            "functional models (their structure is data)"
        )
    if len(inputs) != 1 or len(outputs) != 1:
        raise ConversionError(
            f"model {model.name!r} has {len(inputs)} inputs and {len(outputs)} outputs; tf_lrp explains a "
            "chain with one input and one output"
        )
    chain = []
    tensor = outputs[0]
    while True:
        layer, node_index, _ = tensor._keras_history
        node = layer._inbound_nodes[node_index]
        if isinstance(layer, _L.InputLayer):
            break
        args, kwargs = node.arguments.args, node.arguments.kwargs
        if len(args) == 1 and isinstance(args[0], (list, tuple)):
            raise ConversionError(
                f"model {model.name!r} is not a linear chain: {_describe(layer)} takes {len(args[0])} inputs"
            )
        extra = sorted(set(kwargs) - {"mask", "training"})
        if len(args) != 1 or extra or len(layer._inbound_nodes) != 1:
            raise ConversionError(
                f"{_describe(layer)} is called with more than the previous layer's output "
                f"(arguments {extra or len(args)}) or shared; tf_lrp reads a linear chain of layers"
            )
        chain.append(layer)
        tensor = args[0]
        if not hasattr(tensor, "_keras_history"):
            raise ConversionError(f"{_describe(layer)}: its input is not a Keras tensor of this model")
    chain.reverse()
    others = [lay for lay in model.layers if not isinstance(lay, _L.InputLayer) and lay not in chain]
    if others:
        raise ConversionError(
            f"model {model.name!r} is not a linear chain: {_describe(others[0])} is off the path from input "
            "to output"
        )
    return chain


# --------------------------------------------------------------------------------------------
# Per-layer conversion


def _check_rnn(layer: Any, rnn: Any, kind: str, where: str) -> None:
    """Refuse the options of one LSTM/GRU layer whose inference semantics tf_lrp lacks."""
    if type(rnn.cell) is not _CELLS[kind]:
        raise _refuse(layer, f"{where}cell {type(rnn.cell).__name__} is not Keras's {_CELLS[kind].__name__}")
    if rnn.stateful:
        raise _refuse(
            layer,
            f"{where}stateful=True carries the state across batches; tf_lrp explains each sequence from a "
            "zero state: rebuild the model with stateful=False (same weights)",
        )
    if rnn.return_state:
        raise _refuse(layer, f"{where}return_state=True: tf_lrp explains one output per layer; set it to False")
    if getattr(rnn, "time_major", False):
        raise _refuse(layer, f"{where}time_major=True is not supported; use batch-major (B, T, D) inputs")
    if not rnn.return_sequences and rnn.zero_output_for_mask:
        raise _refuse(
            layer,
            f"{where}zero_output_for_mask=True with return_sequences=False returns zeros for a sequence whose "
            "last step is masked; tf_lrp returns the carried state: set zero_output_for_mask=False",
        )
    cell = rnn.cell
    for field in ("activation", "recurrent_activation"):
        function = getattr(cell, field, None)
        if function is None:  # SimpleRNN has no gates
            continue
        if _activation_name(function, RECURRENT_ACTIVATIONS) is None:
            name = getattr(function, "__name__", repr(function))
            raise _refuse(
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


def _convert_recurrent(layer: Any) -> tuple[RecurrentSpec, list[np.ndarray]]:
    kind = _RECURRENT[type(layer)]
    _check_rnn(layer, layer, kind, "")
    direction = "forward"
    if layer.go_backwards:
        if layer.return_sequences:
            raise _refuse(
                layer,
                "go_backwards=True with return_sequences=True returns the outputs in reversed time order, which "
                "tf_lrp does not reproduce; wrap the layer in Bidirectional, or return only the last output",
            )
        direction = "backward"
    return _recurrent_spec(layer, layer, kind, direction, "concat"), [_numpy(w) for w in layer.cell.weights]


def _convert_bidirectional(layer: Any) -> tuple[RecurrentSpec, list[np.ndarray]]:
    if layer.merge_mode not in MERGE_MODES:
        raise _refuse(layer, f"merge_mode={layer.merge_mode!r} is not supported; use one of {', '.join(MERGE_MODES)}")
    if layer.return_state:
        raise _refuse(layer, "return_state=True: tf_lrp explains one output per layer; set it to False")
    forward, backward = layer.forward_layer, layer.backward_layer
    kind = _RECURRENT.get(type(forward))
    if kind is None or type(backward) is not type(forward):
        raise _refuse(
            layer,
            f"wraps {type(forward).__name__} forwards and {type(backward).__name__} backwards; tf_lrp supports "
            "Bidirectional(LSTM) and Bidirectional(GRU) with the same layer type both ways",
        )
    if forward.go_backwards or not backward.go_backwards:
        raise _refuse(layer, "the wrapped layer has go_backwards=True; wrap a layer with go_backwards=False")
    _check_rnn(layer, forward, kind, "forward layer: ")
    _check_rnn(layer, backward, kind, "backward layer: ")
    spec = _recurrent_spec(layer, forward, kind, "bidirectional", layer.merge_mode)
    other = _recurrent_spec(layer, backward, kind, "bidirectional", layer.merge_mode)
    if other != spec:
        raise _refuse(
            layer,
            "its forward and backward layers differ (units, activations, use_bias or reset_after); tf_lrp "
            "needs the same configuration both ways",
        )
    weights = [_numpy(w) for w in forward.cell.weights] + [_numpy(w) for w in backward.cell.weights]
    return spec, weights


def _convert_dense(layer: Any, is_last: bool) -> tuple[DenseSpec, list[np.ndarray]]:
    if is_last:
        activation = getattr(layer.activation, "__name__", None) or "custom"
    else:
        name = _activation_name(layer.activation, HIDDEN_DENSE_ACTIVATIONS)
        if name is None:
            shown = getattr(layer.activation, "__name__", repr(layer.activation))
            raise _refuse(
                layer,
                f"activation {shown!r} on a Dense layer before the last one is not supported; relevance passes "
                f"through {' and '.join(HIDDEN_DENSE_ACTIVATIONS)} only",
            )
        activation = name
    kernel = _numpy(layer.kernel)  # LoRA (if enabled) is merged in by Keras
    spec = DenseSpec(
        units=int(kernel.shape[1]),
        input_size=int(kernel.shape[0]),
        activation=activation,
        use_bias=bool(layer.use_bias),
        name=layer.name,
    )
    return spec, [kernel] + ([_numpy(layer.bias)] if layer.use_bias else [])


def _unsupported(layer: Any) -> ConversionError:
    return _refuse(
        layer,
        f"is not supported; tf_lrp reads models built from {', '.join(SUPPORTED_LAYERS)} (exact classes, "
        "in a chain: input, optional Embedding or Masking, recurrent layers, Dense head)",
    )


def from_keras(model: keras.Model) -> Converted:
    """Convert a Keras 3 recurrent classifier to a tf_lrp manifest and weights.

    Args:
        model: a built ``Sequential`` or functional model (see the module docstring for the
            layers and options it may contain).

    Returns:
        :class:`~tf_lrp.convert.Converted`: the normalised manifest (validated against
        ``weights_schema.json``; ``mask_value`` set for a ``Masking`` layer) and the weights
        in Keras order.

    Raises:
        ConversionError: for a layer or option tf_lrp cannot reproduce exactly; the message
            names the layer, its class and what is supported.
    """
    layers = model_layers(model)
    specs: list[LayerSpec] = []
    weights: list[np.ndarray] = []
    mask_value: float | None = None
    layers = [_unwrap_time_distributed(layer) for layer in layers]
    dense_indices = [i for i, layer in enumerate(layers) if type(layer) is _L.Dense]
    last_dense = dense_indices[-1] if dense_indices else -1
    sequence = True  # whether the current tensor has a time axis
    per_step = False  # whether the output has a time axis (a Dense on a sequence)
    pooled = False  # whether a pooling layer turns the sequence into a vector (a version-2 graph)
    for index, layer in enumerate(layers):
        if getattr(layer, "quantization_mode", None):
            raise _refuse(layer, f"is quantized ({layer.quantization_mode}); convert the float model")
        layer_type = type(layer)
        if layer_type in IDENTITY_LAYERS or layer_type is _L.InputLayer:
            continue
        if layer_type in (_L.Embedding, _L.Masking) and (specs or mask_value is not None):
            raise _refuse(layer, "must come first (before any recurrent or Dense layer, and only once)")
        if layer_type is _L.Embedding:
            table = _numpy(layer.embeddings)
            specs.append(EmbeddingSpec(table.shape[0], table.shape[1], bool(layer.mask_zero), layer.name))
            weights.append(table)
        elif layer_type is _L.Masking:
            mask_value = float(layer.mask_value)
            if mask_value != mask_value:  # NaN
                raise _refuse(
                    layer,
                    "has mask_value=nan, which masks nothing (NaN never equals NaN, also in Keras) and lets the NaN "
                    "steps reach every score; mark padding with a finite mask_value such as 0.0",
                )
        elif layer_type in _RECURRENT or layer_type is _L.Bidirectional:
            if not sequence:
                raise _refuse(layer, "receives no sequence: the recurrent layer before it has return_sequences=False")
            spec, arrays = (
                _convert_bidirectional(layer) if layer_type is _L.Bidirectional else _convert_recurrent(layer)
            )
            specs.append(spec)
            weights += arrays
            sequence = spec.return_sequences
        elif layer_type in _POOLING:
            if not sequence:
                raise _refuse(layer, "pools over time but its input has no time axis")
            if layer.data_format != "channels_last" or layer.keepdims:
                raise _refuse(layer, "data_format='channels_first' or keepdims=True is not supported; use the defaults")
            width = specs[-1].output_size if specs else None
            if width is None:
                raise _refuse(layer, "pools the raw input; put a recurrent or Embedding layer before it")
            masked = mask_value is not None or (isinstance(specs[-1], EmbeddingSpec) and specs[-1].mask_zero)
            if layer_type is _L.GlobalMaxPooling1D and masked and isinstance(specs[-1], EmbeddingSpec | None):
                raise _refuse(
                    layer,
                    "takes the max over padded steps too (Keras ignores the mask there), so it would explain "
                    "padding; put a recurrent layer before it or use GlobalAveragePooling1D",
                )
            specs.append(PoolingSpec(_POOLING[layer_type], width, name=layer.name))
            sequence, pooled = False, True
        elif layer_type is _L.Dense:
            per_step = per_step or sequence  # a Dense on (B, T, F) applies to every step
            spec_d, arrays = _convert_dense(layer, index == last_dense)
            specs.append(spec_d)
            weights += arrays
        else:
            raise _unsupported(layer)
    if index_of_last_real(layers) != last_dense or last_dense < 0:
        raise ConversionError(
            f"model {model.name!r} must end with a Dense layer (its pre-activation is the explained score); "
            f"its last layer is {_describe(layers[-1]) if layers else 'missing'}"
        )
    if per_step or pooled:  # a version-2 graph (a version-1 chain: recurrent layers, then a Dense head)
        tokens = bool(specs) and isinstance(specs[0], EmbeddingSpec)
        features = 1 if tokens else specs[0].input_size  # type: ignore[attr-defined]
        chain = tuple((input_edge(0),) if i == 0 else (i - 1,) for i in range(len(specs)))
        inputs = (InputSpec("input", features, tokens, mask_value),)
        manifest = to_manifest(specs, name=model.name, edges=chain, inputs=inputs)
    else:
        manifest = to_manifest(specs, name=model.name, mask_value=mask_value)
    try:
        validate_manifest(manifest)
    except LayoutError as exc:
        raise ConversionError(f"model {model.name!r} cannot be explained by tf_lrp: {exc}") from exc
    return Converted(manifest, weights)


def _unwrap_time_distributed(layer: Any) -> Any:
    """``TimeDistributed(Dense)`` is a Dense on every step: return the Dense (others unchanged)."""
    if type(layer) is _L.TimeDistributed:
        if type(layer.layer) is not _L.Dense:
            raise _refuse(layer, f"wraps {type(layer.layer).__name__}; tf_lrp reads TimeDistributed(Dense) only")
        return layer.layer
    return layer


def index_of_last_real(layers: Sequence[Any]) -> int:
    """Index of the last layer that is not an inference identity (-1 if none)."""
    for index in reversed(range(len(layers))):
        if type(layers[index]) not in IDENTITY_LAYERS:
            return index
    return -1


# --------------------------------------------------------------------------------------------
# The Keras reference for the forward-equivalence check


def score_model(model: keras.Model) -> keras.Model:
    """A functional model: the input of ``model`` -> the last Dense layer's pre-activation.

    It reuses ``model``'s own layers (and so its masking) up to the last Dense, then applies a
    linear copy of that Dense with the same weights.

    Raises:
        ConversionError: if the model's graph cannot be reached (see :func:`model_layers`).
    """
    layers = model_layers(model)
    last = layers[index_of_last_real(layers)]
    wrapper = last
    last = _unwrap_time_distributed(last)
    if type(last) is not _L.Dense:
        raise ConversionError(f"model {model.name!r} must end with a Dense layer; got {_describe(last)}")
    try:
        inputs = model.inputs
        features = wrapper._inbound_nodes[0].arguments.args[0]  # the tensor (not the mask it was called with)
    except (AttributeError, ValueError) as exc:
        raise ConversionError(
            f"model {model.name!r} has no symbolic graph to compare against; build it with keras.Input(shape=...)"
        ) from exc
    head = _L.Dense(last.units, activation=None, use_bias=last.use_bias, dtype=last.dtype_policy)
    outputs = head(features)
    head.set_weights([_numpy(last.kernel)] + ([_numpy(last.bias)] if last.use_bias else []))
    return keras.Model(inputs, outputs, name=f"{model.name}_scores")


def keras_scores(model: keras.Model, x: np.ndarray) -> np.ndarray:
    """The (B, C) pre-activation scores of ``model`` on ``x``, computed by Keras."""
    reference = score_model(model)
    dtype = reference.inputs[0].dtype
    return _numpy(reference(keras.ops.convert_to_tensor(np.asarray(x), dtype=dtype), training=False))


def probe_batch(manifest: dict[str, Any], model: keras.Model, seed: int = 0) -> np.ndarray:
    """A small random batch for the forward-equivalence check.

    Token ids within the vocabulary (with pre-, post- and mid-sequence padding when the
    embedding has ``mask_zero``), or standard-normal features (with steps set to
    ``mask_value`` when the model has a ``Masking`` layer). The length is the model's fixed
    input length, else 7.

    Args:
        manifest: the converted manifest.
        model: the Keras model (for its input length).
        seed: random seed.

    Returns:
        (4, T) int32 ids or (4, T, D) float32 features.
    """
    rng = np.random.default_rng(seed)
    try:
        shape = tuple(model.inputs[0].shape)
    except (AttributeError, ValueError, IndexError):
        shape = ()
    steps = int(shape[1]) if len(shape) > 1 and shape[1] is not None else 7
    batch = 4
    first = manifest["layers"][0]
    cut = max(1, steps // 2)
    if first["kind"] == "embedding":
        padding = first["mask_zero"] and first["input_dim"] > 1
        ids = rng.integers(1 if padding else 0, first["input_dim"], size=(batch, steps))
        if padding and steps > 1:
            ids[1, cut:] = 0  # post-padding
            ids[2, : steps - cut] = 0  # pre-padding
            ids[3, steps // 2] = 0  # a masked step inside
        return ids.astype(np.int32)
    x = rng.standard_normal((batch, steps, first["input_size"])).astype(np.float32)
    mask_value = manifest.get("mask_value")
    if mask_value is not None and steps > 1:
        x[1, cut:] = mask_value
        x[2, : steps - cut] = mask_value
        x[3, steps // 2] = mask_value
    return x


def check_equivalence(ours: np.ndarray, theirs: np.ndarray, tolerance: float, name: str) -> float:
    """Compare tf_lrp's scores with Keras's; return the relative error or raise.

    The error is ``max|ours - theirs| / max(1, max|theirs|)``.

    Raises:
        ConversionError: when it exceeds ``tolerance``, with the max difference.
    """
    ours, theirs = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    if ours.shape != theirs.shape:
        raise ConversionError(
            f"model {name!r}: the converted network gives scores of shape {ours.shape}, Keras {theirs.shape}"
        )
    difference = float(np.max(np.abs(ours - theirs)))
    relative = difference / max(1.0, float(np.max(np.abs(theirs))))
    if not relative <= tolerance:
        raise ConversionError(
            f"model {name!r}: the converted network's scores differ from the Keras model's pre-activation outputs "
            f"by up to {difference:.3g} (relative {relative:.3g} > tolerance {tolerance:g}) on the probe batch; "
            "the conversion does not reproduce this model (gate order, activation or masking), so its "
            "explanations would be wrong. Pass your own sample= to check on real data, or report the model"
        )
    return relative


__all__ = [
    "SUPPORTED_LAYERS",
    "check_equivalence",
    "from_keras",
    "keras_scores",
    "load_model",
    "model_layers",
    "probe_batch",
    "score_model",
]
