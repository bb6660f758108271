"""Keras 3 models -> tf_lrp layer graphs.

:func:`from_keras` walks the functional graph of a ``Sequential`` or functional model (a model
used as a layer is walked in place) from its inputs to its output, and turns each layer call
into tf_lrp layer specs through the handler registered for the layer's exact class (see
:mod:`tf_lrp.convert.keras_nodes` for the contract and ``keras_core`` for the handlers). Layers
are matched by exact class, so a subclass with its own ``call`` is refused rather than silently
misread; every option whose inference semantics tf_lrp does not reproduce is refused with the
layer's name and the fix. The explained score is the pre-activation of the layer that produces
the output (a ``Dense`` or ``TimeDistributed(Dense)``); ``Dropout``-like layers, and an
``Activation`` or ``Softmax`` layer after the score layer, are skipped. After the walk, each
``BatchNormalization`` next to a ``Dense`` / ``Conv1D`` is folded into it where that is exact
(:mod:`tf_lrp.convert.keras_fold`; ``fold_batch_norm=False`` keeps them all as nodes).

:func:`score_model` builds the Keras reference the explainer checks itself against: the same
model up to the score layer, followed by a linear copy of it (its pre-activation).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import keras
import numpy as np

from ..errors import ConversionError, InputError, LayoutError
from ..layout import (
    DenseSpec,
    Edge,
    EmbeddingSpec,
    InputSpec,
    LayerSpec,
    Port,
    RecurrentSpec,
    input_edge,
    to_manifest,
    validate_manifest,
)
from ..text import SPLIT, STANDARDIZE, TextVectorizer
from . import Converted, keras_attention, keras_conv, keras_core, keras_fold, keras_layers, keras_shape
from .keras_nodes import Call, Emitted, Handler, Incoming, describe, refuse

_L = keras.layers
#: Every Keras class the walker converts -> its handler (one dict per family module, merged).
HANDLERS: Mapping[type, Handler] = {
    **keras_core.HANDLERS,
    **keras_conv.HANDLERS,
    **keras_layers.HANDLERS,
    **keras_attention.HANDLERS,
    **keras_shape.HANDLERS,
}
#: Layers skipped after the score layer (the score is the pre-activation before them).
_OUTPUT_ACTIVATIONS: tuple[type, ...] = (_L.Activation, _L.Softmax)
#: Class names :func:`from_keras` reads (for error messages).
SUPPORTED_LAYERS: tuple[str, ...] = (
    "InputLayer",
    "Masking",
    "TextVectorization",
    *sorted(cls.__name__ for cls in HANDLERS),
)
#: Kinds a version-1 (chain) manifest holds.
_CHAIN_KINDS = (EmbeddingSpec, RecurrentSpec, DenseSpec)


# --------------------------------------------------------------------------------------------
# Loading


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


# --------------------------------------------------------------------------------------------
# The functional graph


def functional_graph(model: Any) -> Any:
    """The functional graph of ``model``: itself when functional, its inner graph when Sequential.

    Raises:
        ConversionError: for a subclassed or unbuilt model (its structure is code, not data).
    """
    if not isinstance(model, keras.Model):
        raise ConversionError(f"expected a keras.Model; got {type(model).__name__}")
    if not model.built:
        raise ConversionError(
            f"model {model.name!r} is not built: give it a keras.Input(shape=...) or call it on a batch first"
        )
    graph = getattr(model, "_functional", None) if isinstance(model, keras.Sequential) else model
    try:
        inputs, outputs = graph.inputs, graph.outputs  # type: ignore[union-attr]
    except (AttributeError, ValueError):
        inputs, outputs = None, None
    if not inputs or not outputs:
        raise ConversionError(
            f"model {model.name!r} ({type(model).__name__}) is a subclassed model (or a Sequential one built "
            "without keras.Input); tf_lrp reads Sequential and functional models built on keras.Input"
        )
    return graph


def _flat(value: Any) -> Iterator[Any]:
    if isinstance(value, (list, tuple)):
        for item in value:
            yield from _flat(item)
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _flat(item)
    else:
        yield value


def _is_tensor(value: Any) -> bool:
    return isinstance(value, keras.KerasTensor)


class _Node(NamedTuple):
    """One call in a functional graph: the operation, its data tensors and their keywords."""

    operation: Any
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    tensors: tuple[Any, ...]
    keywords: tuple[str | None, ...]
    outputs: tuple[Any, ...]


def _node_of(tensor: Any) -> _Node:
    operation, node_index, _ = tensor._keras_history
    node = operation._inbound_nodes[node_index]
    args, kwargs = tuple(node.arguments.args), dict(node.arguments.kwargs)
    tensors: list[Any] = []
    keywords: list[str | None] = []
    for value in _flat(args):
        if _is_tensor(value):
            tensors.append(value)
            keywords.append(None)
    for key, value in kwargs.items():
        if key in ("mask", "training"):
            continue  # masks travel with the tensors (the walker tracks them)
        for item in _flat(value):
            if _is_tensor(item):
                tensors.append(item)
                keywords.append(key)
    return _Node(operation, args, kwargs, tuple(tensors), tuple(keywords), tuple(_flat(node.outputs)))


def _topological(outputs: Sequence[Any], stop: set[int]) -> list[_Node]:
    """The calls the ``outputs`` depend on through data tensors, inputs first (stops at tensors in ``stop``)."""
    order: list[_Node] = []
    seen: set[int] = set()

    def visit(tensor: Any) -> None:
        if id(tensor) in stop:
            return
        node = _node_of(tensor)
        key = id(node.outputs[0])
        if key in seen:
            return
        seen.add(key)
        if type(node.operation) is _L.InputLayer:
            raise ConversionError(f"input {node.operation.name!r} is not an input of the model being walked")
        for source in node.tensors:
            visit(source)
        order.append(node)

    for tensor in outputs:
        visit(tensor)
    return order


# --------------------------------------------------------------------------------------------
# The walker


class _Value(NamedTuple):
    """A tensor of the Keras graph as tf_lrp sees it."""

    edge: Edge
    port: Port
    masked: bool
    producer: LayerSpec | None


class _Graph:
    """The layer graph under construction: specs, their input edges, weights and inputs."""

    def __init__(self) -> None:
        self.specs: list[LayerSpec] = []
        self.edges: list[tuple[Edge, ...]] = []
        self.weights: list[np.ndarray] = []
        self.inputs: list[InputSpec] = []
        self.names: set[str] = set()

    def unique(self, name: str, kind: str) -> str:
        base = name or kind
        candidate, count = base, 0
        while candidate in self.names:
            count += 1
            candidate = f"{base}_{count}"
        self.names.add(candidate)
        return candidate

    def add(self, spec: LayerSpec, reads: Sequence[_Value], is_output: bool, layer: Any) -> _Value:
        spec = dataclasses.replace(spec, name=self.unique(spec.name, spec.kind))  # type: ignore[type-var]
        index = len(self.specs)
        where = f"{describe(layer)} (as tf_lrp {spec.kind})"
        try:
            port = spec.infer([value.port for value in reads], where, is_output)
        except LayoutError as exc:
            raise ConversionError(str(exc)) from exc
        self.specs.append(spec)
        self.edges.append(tuple(value.edge for value in reads))
        return _Value(index, port._replace(what=f"layer {spec.name!r}"), False, spec)


def _score_call(tensor: Any) -> tuple[Any, set[int]]:
    """The call producing the explained score: the output's producer, past identities and output activations.

    Returns:
        The score tensor and the ids of the output tensors after it (whose calls are skipped).
    """
    skipped: set[int] = set()
    while True:
        node = _node_of(tensor)
        kind = type(node.operation)
        if kind in _OUTPUT_ACTIVATIONS or HANDLERS.get(kind) is keras_core.identity:
            skipped.add(id(tensor))
            tensor = node.tensors[0]
            continue
        return tensor, skipped


class _Walker:
    def __init__(self, model: Any, fold_batch_norm: bool = True) -> None:
        self.model = model
        self.graph = _Graph()
        self.fold_batch_norm = fold_batch_norm

    def run(self) -> Converted:
        graph = functional_graph(self.model)
        if len(graph.outputs) != 1:
            raise ConversionError(
                f"model {self.model.name!r} has {len(graph.outputs)} outputs; tf_lrp explains one output "
                "(build a model with the output you want explained)"
            )
        score, _ = _score_call(graph.outputs[0])
        values = self._bind_inputs(graph, score)
        result = self._walk(graph, [score], values, score_id=id(score))
        (output,) = result
        if output.edge < 0 or not type(self.graph.specs[output.edge]).scores:
            raise ConversionError(
                f"model {self.model.name!r} must end with a Dense layer (or TimeDistributed(Dense)): its "
                "pre-activation is the explained score"
            )
        if self.fold_batch_norm:
            output = self._fold(output)
        return self._converted(output)

    def _fold(self, output: _Value) -> _Value:
        """Fold batch normalisations into their neighbouring Dense / Conv1D (:mod:`.keras_fold`)."""
        graph = self.graph
        flat = keras_fold.FlatGraph(tuple(graph.specs), tuple(graph.edges), tuple(graph.weights), int(output.edge))
        folded = keras_fold.fold_batch_norms(flat)
        graph.specs, graph.edges, graph.weights = list(folded.specs), list(folded.edges), list(folded.weights)
        return output._replace(edge=folded.output, producer=folded.specs[folded.output])

    def _bind_inputs(self, graph: Any, score: Any) -> dict[int, _Value]:
        consumers: dict[int, list[Any]] = {id(t): [] for t in graph.inputs}
        for node in _topological([score], set(consumers)):
            for tensor in node.tensors:
                if id(tensor) in consumers:
                    consumers[id(tensor)].append(node.operation)
        values: dict[int, _Value] = {}
        for k, tensor in enumerate(graph.inputs):
            # one input keeps the name "input" (the manifests, and so the fingerprints, of earlier releases)
            name = tensor._keras_history[0].name if len(graph.inputs) > 1 else "input"
            shape = tuple(tensor.shape)
            users = consumers[id(tensor)]
            if not users:
                raise ConversionError(
                    f"input {name!r} of model {self.model.name!r} does not reach the output; remove it"
                )
            if len(shape) == 2 and all(type(user) is _L.Embedding for user in users):
                spec = InputSpec(name, 1, True)
            elif len(shape) in (1, 2) and all(type(user) is _L.TextVectorization for user in users):
                spec = InputSpec(name, 1, True)  # the tokenizer is read from its layer by the walk
            elif len(shape) == 3 and shape[2] is not None:
                spec = InputSpec(name, int(shape[2]))
            elif len(shape) == 2 and shape[1] is not None and not str(tensor.dtype).startswith(("int", "uint")):
                spec = InputSpec(name, int(shape[1]), sequence=False)  # static features, one vector per sample
            else:
                raise ConversionError(
                    f"input {name!r} has shape {shape}; tf_lrp reads sequences (batch, time, features), token ids "
                    "(batch, time) that go into an Embedding, or float vectors (batch, features)"
                )
            self.graph.inputs.append(spec)
            self.graph.names.add(name)
            port = Port(spec.sequence, spec.features, spec.tokens, f"input {name!r}")
            values[id(tensor)] = _Value(input_edge(k), port, False, None)
        return values

    def _walk(
        self, graph: Any, outputs: Sequence[Any], values: dict[int, _Value], score_id: int | None
    ) -> list[_Value]:
        for node in _topological(outputs, set(values)):
            operation = node.operation
            if getattr(operation, "quantization_mode", None):
                raise refuse(operation, f"is quantized ({operation.quantization_mode}); convert the float model")
            incoming = [values[id(t)] for t in node.tensors]
            is_last = score_id is not None and id(node.outputs[0]) == score_id
            if isinstance(operation, keras.Model):
                inner = functional_graph(operation)
                if len(inner.inputs) != len(incoming):
                    raise refuse(operation, f"is called on {len(incoming)} tensors but has {len(inner.inputs)} inputs")
                bound = {id(t): v for t, v in zip(inner.inputs, incoming, strict=True)}
                if is_last and _score_call(inner.outputs[0])[1]:
                    raise refuse(
                        operation,
                        "is used as the last layer and ends with an activation or dropout layer; move those "
                        "into the outer model, after it",
                    )
                results = self._walk(inner, inner.outputs, bound, id(inner.outputs[0]) if is_last else None)
            elif type(operation) is _L.Masking:
                results = [self._masking(operation, incoming)]
            elif type(operation) is _L.TextVectorization:
                results = [self._text(operation, incoming)]
            else:
                results = self._call(node, incoming, is_last)
            if len(results) != len(node.outputs):
                raise refuse(operation, f"returns {len(node.outputs)} tensors; tf_lrp reads {len(results)} of them")
            for tensor, value in zip(node.outputs, results, strict=True):
                values[id(tensor)] = value
        return [values[id(t)] for t in outputs]

    def _masking(self, layer: Any, incoming: Sequence[_Value]) -> _Value:
        (value,) = incoming
        mask_value = float(layer.mask_value)
        if mask_value != mask_value:  # NaN
            raise refuse(
                layer,
                "has mask_value=nan, which masks nothing (NaN never equals NaN, also in Keras) and lets the NaN "
                "steps reach every score; mark padding with a finite mask_value such as 0.0",
            )
        if value.edge >= 0:
            raise refuse(layer, "must read a network input directly (tf_lrp masks the input's padded steps)")
        k = -1 - value.edge
        spec = self.graph.inputs[k]
        if spec.mask_value is not None:
            raise refuse(layer, f"is the second Masking on input {spec.name!r}; keep one")
        self.graph.inputs[k] = dataclasses.replace(spec, mask_value=mask_value)
        return value._replace(masked=True)

    def _text(self, layer: Any, incoming: Sequence[_Value]) -> _Value:
        """``TextVectorization`` on a string input: the input becomes token ids, tokenized by its data."""
        (value,) = incoming
        if value.edge >= 0 or not value.port.tokens:
            raise refuse(layer, "must read a string network input directly (keras.Input(shape=(1,), dtype='string'))")
        config = layer.get_config()
        unsupported = {
            "output_mode": (config.get("output_mode"), "int"),
            "ngrams": (config.get("ngrams"), None),
            "ragged": (config.get("ragged"), False),
        }
        for option, (got, want) in unsupported.items():
            if got != want:
                raise refuse(layer, f"{option}={got!r} is not supported; tf_lrp reads {option}={want!r}")
        standardize, split = config.get("standardize"), config.get("split")
        if standardize not in STANDARDIZE or split not in SPLIT:
            raise refuse(
                layer,
                f"standardize={standardize!r}, split={split!r}: tf_lrp reproduces standardize in {STANDARDIZE} and "
                f"split in {SPLIT} (a custom function is code, not data)",
            )
        vocabulary = [str(token) for token in layer.get_vocabulary()]
        if len(vocabulary) < 2 or vocabulary[0] != "" or getattr(layer._lookup_layer, "num_oov_indices", 1) != 1:
            raise refuse(layer, "needs the default mask token '' and one out-of-vocabulary index; adapt it with those")
        length = config.get("output_sequence_length")
        try:
            vectorizer = TextVectorizer(tuple(vocabulary), standardize, split, int(length) if length else None)
        except InputError as exc:
            raise refuse(layer, str(exc)) from exc
        k = -1 - value.edge
        self.graph.inputs[k] = dataclasses.replace(self.graph.inputs[k], text=vectorizer)
        return value

    def _call(self, node: _Node, incoming: Sequence[_Value], is_last: bool) -> list[_Value]:
        layer = node.operation
        handler = HANDLERS.get(type(layer))
        if handler is None:
            raise refuse(
                layer,
                f"is not supported; tf_lrp reads {', '.join(SUPPORTED_LAYERS)} (exact classes, not subclasses)",
            )
        call = Call(
            layer,
            tuple(Incoming(v.port, v.masked, v.producer) for v in incoming),
            node.keywords,
            node.args,
            node.kwargs,
            is_last,
        )
        emitted: Emitted = handler(call)
        if not emitted.specs:  # the identity at inference
            return [incoming[0]]
        reads = [incoming[i] for i in emitted.reads] if emitted.reads is not None else list(incoming)
        self.graph.weights.extend(emitted.arrays)
        produced: list[_Value] = []
        current = reads
        for position, spec in enumerate(emitted.specs):
            last_spec = position == len(emitted.specs) - 1
            link = emitted.links[position] if emitted.links is not None and position > 0 else None
            value = self.graph.add(spec, current if link is None else [produced[link]], is_last and last_spec, layer)
            produced.append(value)
            current = [value]
        masked_in = any(v.masked for v in reads)
        masked = emitted.masked if emitted.masked is not None else masked_in
        chosen = [produced[i] for i in emitted.outputs] if emitted.outputs is not None else [produced[-1]]
        return [v._replace(masked=bool(masked) and v.port.sequence) for v in chosen]

    def _converted(self, output: _Value) -> Converted:
        graph = self.graph
        specs, edges, inputs = graph.specs, graph.edges, graph.inputs
        chain = all(reads == ((index - 1,) if index else (input_edge(0),)) for index, reads in enumerate(edges))
        simple = (
            len(inputs) == 1
            and inputs[0].sequence  # a version-1 manifest reads a sequence
            and chain
            and all(isinstance(spec, _CHAIN_KINDS) for spec in specs)
            and not output.port.sequence
            and inputs[0].text is None
        )
        name = self.model.name
        if simple:
            manifest = to_manifest(specs, name=name, mask_value=inputs[0].mask_value)
        else:
            manifest = to_manifest(specs, name=name, edges=edges, inputs=inputs)
        try:
            validate_manifest(manifest)
        except LayoutError as exc:
            raise ConversionError(f"model {name!r} cannot be explained by tf_lrp: {exc}") from exc
        return Converted(manifest, list(graph.weights))


def from_keras(model: keras.Model, fold_batch_norm: bool = True) -> Converted:
    """Convert a Keras 3 model to a tf_lrp manifest and weights.

    Args:
        model: a built ``Sequential`` or functional model whose layers are in
            :data:`SUPPORTED_LAYERS` (see the module docstring).
        fold_batch_norm: fold each ``BatchNormalization`` into the ``Dense`` / ``Conv1D`` next
            to it where that is exact (:mod:`tf_lrp.convert.keras_fold`); False keeps every one
            a ``batch_normalization`` node.

    Returns:
        :class:`~tf_lrp.convert.Converted`: the normalised manifest (a version-1 chain when the
        model is one, else a version-2 graph; validated against ``weights_schema.json``) and
        the weights in the manifest's order.

    Raises:
        ConversionError: for a layer or option tf_lrp cannot reproduce exactly; the message
            names the layer, its class and what is supported.
    """
    return _Walker(model, fold_batch_norm).run()


# --------------------------------------------------------------------------------------------
# The Keras reference for the forward-equivalence check


def score_model(model: keras.Model) -> keras.Model:
    """A functional model: the inputs of ``model`` -> the score layer's pre-activation.

    It reuses ``model``'s own layers (and so its masking) up to the score layer, then applies a
    linear copy of it with the same weights (inside a model used as the last layer, recursively).

    Raises:
        ConversionError: if the model's graph cannot be reached (see :func:`functional_graph`)
            or its output is not made by a Dense layer.
    """
    graph = functional_graph(model)
    score, _ = _score_call(graph.outputs[0])
    node = _node_of(score)
    layer = node.operation
    if isinstance(layer, keras.Model):  # the score layer is inside a model used as a layer
        inner = score_model(layer)
        outputs = inner(list(node.tensors) if len(node.tensors) > 1 else node.tensors[0])
        return keras.Model(graph.inputs, outputs, name=f"{model.name}_scores")
    dense = layer.layer if type(layer) is _L.TimeDistributed else layer
    if type(dense) is not _L.Dense:
        raise ConversionError(f"model {model.name!r} must end with a Dense layer; got {describe(layer)}")
    head = _L.Dense(dense.units, activation=None, use_bias=dense.use_bias, dtype=dense.dtype_policy)
    outputs = head(node.tensors[0])
    kernel = np.asarray(keras.ops.convert_to_numpy(dense.kernel))
    bias = [np.asarray(keras.ops.convert_to_numpy(dense.bias))] if dense.use_bias else []
    head.set_weights([kernel, *bias])
    return keras.Model(graph.inputs, outputs, name=f"{model.name}_scores")


def keras_scores(model: keras.Model, x: Any) -> np.ndarray:
    """The pre-activation scores of ``model`` on ``x`` (an array, or a list with one per input), by Keras."""
    reference = score_model(model)
    if len(reference.inputs) == 1:
        arrays = [x]
    elif isinstance(x, Mapping):
        arrays = [x[t._keras_history[0].name] for t in reference.inputs]
    else:
        arrays = list(x)
    tensors = []
    for array, tensor in zip(arrays, reference.inputs, strict=True):
        if tensor.dtype == "string":  # raw texts, shaped like the model's string input
            texts = np.asarray(array, dtype=object).reshape((-1,) + (1,) * (len(tensor.shape) - 1))
            tensors.append(keras.ops.convert_to_tensor(texts.astype(str)))
        else:
            tensors.append(keras.ops.convert_to_tensor(np.asarray(array), dtype=tensor.dtype))
    result = reference(tensors if len(tensors) > 1 else tensors[0], training=False)
    return np.asarray(keras.ops.convert_to_numpy(result))


def _probe_texts(text: Mapping[str, Any], rng: Any) -> np.ndarray:
    """(4,) sentences from the vocabulary, with unknown words, capitals, punctuation and uneven lengths."""
    words = [w for w in text["vocabulary"][2:] if w] or ["word"]
    sentences = []
    for row in range(3):
        chosen = [str(words[i]) for i in rng.integers(0, len(words), size=5 + 2 * row)]
        chosen[0] = chosen[0].upper()
        chosen[-1] = chosen[-1] + "!"
        if row == 1:
            chosen.insert(2, "zzqxunknown,")
        sentences.append("  ".join(chosen) if row == 2 else " ".join(chosen))
    sentences.append(f"{words[0]} zzqxunknown")
    return np.asarray(sentences, dtype=object)


def _probe_one(entry: Mapping[str, Any], embedding: Mapping[str, Any] | None, steps: int, rng: Any) -> np.ndarray:
    if "text" in entry:
        return _probe_texts(entry["text"], rng)
    batch, cut = 4, max(1, steps // 2)
    if embedding is not None:
        padding = embedding["mask_zero"] and embedding["input_dim"] > 1
        ids = rng.integers(1 if padding else 0, embedding["input_dim"], size=(batch, steps))
        if padding and steps > 1:
            ids[1, cut:] = 0  # post-padding
            ids[2, : steps - cut] = 0  # pre-padding
            ids[3, steps // 2] = 0  # a masked step inside
        return ids.astype(np.int32)
    if entry.get("sequence", True) is False:  # static features, one vector per sample
        return rng.standard_normal((batch, entry["features"])).astype(np.float32)
    x = rng.standard_normal((batch, steps, entry["features"])).astype(np.float32)
    mask_value = entry.get("mask_value")
    if mask_value is not None and steps > 1:
        x[1, cut:] = mask_value
        x[2, : steps - cut] = mask_value
        x[3, steps // 2] = mask_value
    return x


def probe_batch(manifest: dict[str, Any], model: keras.Model, seed: int = 0) -> Any:
    """A small random batch for the forward-equivalence check.

    Per input: token ids within the vocabulary (with pre-, post- and mid-sequence padding when
    the embedding has ``mask_zero``), or standard-normal features (with steps set to
    ``mask_value`` when a ``Masking`` layer reads the input). The length is the input's fixed
    length, else 7.

    Args:
        manifest: the converted manifest.
        model: the Keras model (for its input lengths).
        seed: random seed.

    Returns:
        (4, T) int32 ids or (4, T, D) float32 features; a list of them for several inputs.
    """
    rng = np.random.default_rng(seed)
    layers = manifest["layers"]
    if manifest["version"] == 1:
        first = layers[0]
        tokens = first["kind"] == "embedding"
        entries = [{"name": "input", "features": 1 if tokens else first["input_size"], "tokens": tokens}]
        if manifest.get("mask_value") is not None:
            entries[0]["mask_value"] = manifest["mask_value"]
        embeddings = {"input": first} if tokens else {}
    else:
        entries = manifest["inputs"]
        embeddings = {e["inputs"][0]: e for e in layers if e["kind"] == "embedding"}
    try:
        shapes = [tuple(t.shape) for t in functional_graph(model).inputs]
    except ConversionError:
        shapes = [() for _ in entries]
    probes = []
    for entry, shape in zip(entries, shapes, strict=True):
        steps = int(shape[1]) if len(shape) > 1 and shape[1] is not None else 7
        probes.append(_probe_one(entry, embeddings.get(entry["name"]) if entry["tokens"] else None, steps, rng))
    return probes[0] if len(probes) == 1 else probes


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
    "HANDLERS",
    "SUPPORTED_LAYERS",
    "check_equivalence",
    "from_keras",
    "functional_graph",
    "keras_scores",
    "load_model",
    "probe_batch",
    "score_model",
]
