"""The network layout: manifest, schema validation, weight checks, gate order.

A *manifest* is a JSON-able dict that lists a network's layers in order (see
``weights_schema.json``, shipped inside the package). This module

* validates a manifest against the schema (``jsonschema``) and then for meaning
  (layers chain, the stack is one tf_lrp can build);
* turns it into a frozen :class:`NetworkLayout` of layer specs;
* checks a list or dict of numpy arrays against the layout (count, shape, dtype,
  finiteness), with errors that name the layer, the array, the expected and actual shape
  and the likely fix.

It is the only place where gate order is written down (:data:`LSTM_GATES`,
:data:`GRU_GATES`); the cells derive their slices from these tuples.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar, Literal, NamedTuple

import jsonschema
import numpy as np

from .errors import LayoutError
from .text import TextVectorizer

#: Keras LSTM gate blocks along the last axis of kernel, recurrent_kernel and bias.
LSTM_GATES: tuple[str, ...] = ("input", "forget", "cell", "output")
#: Keras GRU gate blocks along the last axis (z, r, h).
GRU_GATES: tuple[str, ...] = ("update", "reset", "candidate")
#: Keras SimpleRNN / PyTorch nn.RNN: one block, no gates.
SIMPLE_RNN_GATES: tuple[str, ...] = ("candidate",)
#: Gate blocks of each recurrent cell kind (the registry of recurrent kinds the layout knows).
GATES: Mapping[str, tuple[str, ...]] = {"lstm": LSTM_GATES, "gru": GRU_GATES, "simple_rnn": SIMPLE_RNN_GATES}

FORMAT = "tf_lrp.layout"
FORMAT_VERSION = 1
#: Manifests of version 2 describe a graph: layers name their inputs, the network may have several.
GRAPH_VERSION = 2

Direction = Literal["forward", "backward", "bidirectional"]
MergeMode = Literal["concat", "sum", "ave"]

#: Display names of the recurrent kinds (Keras class names).
CELL_NAMES: Mapping[str, str] = {"lstm": "LSTM", "gru": "GRU", "simple_rnn": "SimpleRNN"}
#: Activations the recurrent cells can compute (the forward pass uses the layer's own one).
RECURRENT_ACTIVATIONS = ("tanh", "sigmoid", "hard_sigmoid", "relu", "linear")
#: Activations allowed on a dense layer that is not the last one (relevance passes through them).
HIDDEN_DENSE_ACTIVATIONS = ("relu", "linear")


def gate_slice(gate: str, cell: str, units: int) -> slice:
    """The column slice of ``gate`` in a fused (…, n_gates * units) array.

    Args:
        gate: a name from :data:`LSTM_GATES` or :data:`GRU_GATES`.
        cell: ``"lstm"`` or ``"gru"``.
        units: H.

    Returns:
        ``slice(k * units, (k + 1) * units)`` where ``k`` is the gate's block index.

    Raises:
        LayoutError: for an unknown cell or gate name.
    """
    try:
        index = GATES[cell].index(gate)
    except (KeyError, ValueError):
        raise LayoutError(f"unknown gate {gate!r} for cell {cell!r}; gates are {GATES.get(cell)}") from None
    return slice(index * units, (index + 1) * units)


# --------------------------------------------------------------------------------------------
# Layer specs
#
# Each spec class owns its layer kind's facts: how it reads and writes its manifest entry
# (``from_entry`` / ``to_entry``), its ``info`` line, and what it makes of its inputs' shapes
# (``infer``). :data:`SPEC_TYPES` maps every manifest kind to its class; the manifest reader and
# writer, ``NetworkLayout.describe`` and the shape check read it, never ``if kind == ...``.


class Port(NamedTuple):
    """What flows on an edge, as the shape check sees it.

    Attributes:
        sequence: whether it has a time axis (B, T, F), else one vector per sample (B, F).
        width: F, its feature width.
        tokens: whether it holds token ids (B, T) (only a network input can).
        what: how error messages name its producer, e.g. ``"layer 2 (lstm)"``.
    """

    sequence: bool
    width: int
    tokens: bool
    what: str


class Spec:
    """Base of the layer specs: the facts every layer kind declares (subclasses are frozen dataclasses)."""

    #: the manifest kinds the class reads and writes
    kinds: ClassVar[tuple[str, ...]] = ()
    #: the kind of rule the rule map assigns to the node (None: its rule is fixed by the kind)
    rule_kind: ClassVar[str | None] = None
    #: whether the layer may be the network's last one (its pre-activation is the explained score)
    scores: ClassVar[bool] = False
    name: str
    kind: str

    @property
    def output_size(self) -> int:
        """Width of the layer's output."""
        raise NotImplementedError

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> Spec:
        """The spec of a schema-valid manifest entry (defaults filled in)."""
        raise NotImplementedError

    def to_entry(self) -> dict[str, Any]:
        """The normalised manifest entry, every default written out, without ``name`` and ``inputs``."""
        raise NotImplementedError

    def describe(self, reads: str) -> str:
        """The layer's ``tf-lrp info`` line after its index; ``reads`` is ``" <- edges"`` or empty."""
        raise NotImplementedError

    def infer(self, parts: Sequence[Port], where: str, is_output: bool) -> Port:
        """The output this layer makes of its inputs; checks that they fit it.

        Args:
            parts: one port per input edge.
            where: how errors name the layer, e.g. ``"layer 3 (dense)"``.
            is_output: whether it is the network's last layer.

        Returns:
            Its output port (``what`` is filled in by the caller).

        Raises:
            LayoutError: naming the layer, what it reads and the fix.
        """
        raise NotImplementedError


def _one_input(parts: Sequence[Port], where: str, width: int | None, want: str = "") -> Port:
    """The one port of a single-input layer, checked (``width``: the width it must have, or None)."""
    if len(parts) != 1:
        raise LayoutError(f"{where} reads {len(parts)} inputs; it takes one (join several with a concatenate layer)")
    part = parts[0]
    if part.tokens:
        raise LayoutError(f"{where} reads the token ids of {part.what}: put an embedding layer in between")
    if want == "sequence" and not part.sequence:
        raise LayoutError(
            f"{where} reads {part.what}, which is one vector per sample; {where.split(' (')[0]} reads a sequence"
        )
    if width is not None and part.width != width:
        raise LayoutError(
            f"{where} has input_size {width} but {part.what} outputs width {part.width}; "
            f"set input_size of {where.split(' (')[0]} to {part.width}"
        )
    return part


@dataclass(frozen=True)
class EmbeddingSpec(Spec):
    """A token embedding: ids (B, T) -> vectors (B, T, output_dim)."""

    kinds: ClassVar[tuple[str, ...]] = ("embedding",)
    input_dim: int
    output_dim: int
    mask_zero: bool = False
    name: str = ""
    kind: str = "embedding"

    @property
    def output_size(self) -> int:
        """Width of the layer's output."""
        return self.output_dim

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> EmbeddingSpec:
        """The spec of a manifest entry."""
        return cls(entry["input_dim"], entry["output_dim"], entry.get("mask_zero", False), entry.get("name", ""))

    def to_entry(self) -> dict[str, Any]:
        """The normalised manifest entry."""
        return {
            "kind": "embedding", "input_dim": self.input_dim, "output_dim": self.output_dim,
            "mask_zero": self.mask_zero,
        }  # fmt: skip

    def describe(self, reads: str) -> str:
        """The ``info`` line."""
        return f"Embedding(vocabulary={self.input_dim}, mask_zero={self.mask_zero}){reads} -> {self.output_dim}"

    def infer(self, parts: Sequence[Port], where: str, is_output: bool) -> Port:
        """An embedding reads one token input and outputs its vectors."""
        if len(parts) != 1 or not parts[0].tokens:
            raise LayoutError(f"{where}: an embedding reads token ids, so it must read an input with \"tokens\": true")
        return Port(True, self.output_dim, False, "")


_RECURRENT_DEFAULTS: dict[str, Any] = {
    "direction": "forward",
    "merge_mode": "concat",
    "return_sequences": False,
    "activation": "tanh",
    "recurrent_activation": "sigmoid",
    "use_bias": True,
}


@dataclass(frozen=True)
class RecurrentSpec(Spec):
    """A recurrent layer (LSTM, GRU, SimpleRNN), one or two directions."""

    kinds: ClassVar[tuple[str, ...]] = tuple(GATES)
    rule_kind: ClassVar[str | None] = "recurrent"

    cell: str
    units: int
    input_size: int
    direction: Direction = "forward"
    merge_mode: MergeMode = "concat"
    return_sequences: bool = False
    reset_after: bool = True
    activation: str = "tanh"
    recurrent_activation: str = "sigmoid"
    use_bias: bool = True
    name: str = ""
    #: Keras ``zero_output_for_mask`` (forced on by ``Bidirectional`` for returned sequences): a
    #: masked step outputs zeros instead of the carried state
    zero_output_for_mask: bool = False

    @property
    def kind(self) -> str:  # type: ignore[override]
        """The manifest kind (``"lstm"``, ``"gru"``, ``"simple_rnn"``)."""
        return self.cell

    @property
    def directions(self) -> tuple[str, ...]:
        """``("forward",)``, ``("backward",)`` or ``("forward", "backward")``."""
        return ("forward", "backward") if self.direction == "bidirectional" else (self.direction,)

    @property
    def output_size(self) -> int:
        """Width of the layer's output (2H for a bidirectional concat)."""
        if self.direction == "bidirectional" and self.merge_mode == "concat":
            return 2 * self.units
        return self.units

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> RecurrentSpec:
        """The spec of a manifest entry."""
        values = {**_RECURRENT_DEFAULTS, **entry}
        return cls(
            cell=entry["kind"],
            units=values["units"],
            input_size=values["input_size"],
            direction=values["direction"],
            merge_mode=values["merge_mode"],
            return_sequences=values["return_sequences"],
            reset_after=values.get("reset_after", True),
            activation=values["activation"],
            recurrent_activation=values["recurrent_activation"],
            use_bias=values["use_bias"],
            name=values.get("name", ""),
            zero_output_for_mask=values.get("zero_output_for_mask", False),
        )

    def to_entry(self) -> dict[str, Any]:
        """The normalised manifest entry."""
        entry: dict[str, Any] = {
            "kind": self.cell,
            "units": self.units,
            "input_size": self.input_size,
            "direction": self.direction,
            "merge_mode": self.merge_mode,
            "return_sequences": self.return_sequences,
            "activation": self.activation,
            "recurrent_activation": self.recurrent_activation,
            "use_bias": self.use_bias,
            "gate_order": list(GATES[self.cell]),
        }
        if self.zero_output_for_mask:  # written only when set: older manifests keep their fingerprints
            entry["zero_output_for_mask"] = True
        if self.cell == "gru":
            entry["reset_after"] = self.reset_after
        return entry

    def describe(self, reads: str) -> str:
        """The ``info`` line."""
        extra = f", reset_after={self.reset_after}" if self.cell == "gru" else ""
        merge = f" ({self.merge_mode})" if self.direction == "bidirectional" else ""
        return (
            f"{CELL_NAMES.get(self.cell, self.cell.upper())}(units={self.units}{extra}, "
            f"return_sequences={self.return_sequences}) {self.direction}{merge}{reads}: "
            f"{self.input_size} -> {self.output_size}"
        )

    def infer(self, parts: Sequence[Port], where: str, is_output: bool) -> Port:
        """A recurrent layer reads a sequence; it returns a sequence or its last state."""
        _one_input(parts, where, self.input_size, want="sequence")
        self.check_activations(where)
        return Port(self.return_sequences, self.output_size, False, "")

    def check_activations(self, where: str) -> None:
        """Refuse a cell activation the cells cannot compute."""
        for field in ("activation", "recurrent_activation"):
            if getattr(self, field) not in RECURRENT_ACTIVATIONS:
                raise LayoutError(
                    f"{where}: {field}={getattr(self, field)!r} is not supported; use one of {RECURRENT_ACTIVATIONS}"
                )


@dataclass(frozen=True)
class DenseSpec(Spec):
    """A dense layer (on vectors, or on every step of a sequence); the last one's pre-activation is the score."""

    kinds: ClassVar[tuple[str, ...]] = ("dense",)
    rule_kind: ClassVar[str | None] = "linear"
    scores: ClassVar[bool] = True

    units: int
    input_size: int
    activation: str = "linear"
    use_bias: bool = True
    name: str = ""
    kind: str = "dense"

    @property
    def output_size(self) -> int:
        """Width of the layer's output."""
        return self.units

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> DenseSpec:
        """The spec of a manifest entry."""
        return cls(
            entry["units"], entry["input_size"], entry.get("activation", "linear"), entry.get("use_bias", True),
            entry.get("name", ""),
        )  # fmt: skip

    def to_entry(self) -> dict[str, Any]:
        """The normalised manifest entry."""
        return {
            "kind": "dense",
            "units": self.units,
            "input_size": self.input_size,
            "activation": self.activation,
            "use_bias": self.use_bias,
        }

    def describe(self, reads: str) -> str:
        """The ``info`` line."""
        return f"Dense(units={self.units}, activation={self.activation}){reads}: {self.input_size} -> {self.units}"

    def infer(self, parts: Sequence[Port], where: str, is_output: bool) -> Port:
        """A dense layer keeps the time axis of its input (it applies to every step)."""
        part = _one_input(parts, where, self.input_size)
        if not is_output and self.activation not in HIDDEN_DENSE_ACTIVATIONS:
            raise LayoutError(
                f"{where} has activation {self.activation!r}; "
                f"a hidden dense layer must use one of {HIDDEN_DENSE_ACTIVATIONS}"
            )
        return Port(part.sequence, self.units, False, "")


@dataclass(frozen=True)
class PoolingSpec(Spec):
    """Keras ``GlobalMaxPooling1D`` / ``GlobalAveragePooling1D``: a sequence (B, T, F) -> one vector (B, F).

    Max: winner takes all (ties split equally), like Keras it ignores the mask; average: over the
    valid steps (Keras's mask-aware mean), relevance proportional to each step's share (ε-rule).
    The rule is fixed by the kind: no rule to choose.
    """

    kinds: ClassVar[tuple[str, ...]] = ("global_max_pooling", "global_average_pooling")
    kind: str  # "global_max_pooling" or "global_average_pooling"
    features: int
    name: str = ""

    @property
    def input_size(self) -> int:
        """Width of the layer's input."""
        return self.features

    @property
    def output_size(self) -> int:
        """Width of the layer's output."""
        return self.features

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> PoolingSpec:
        """The spec of a manifest entry."""
        return cls(entry["kind"], entry["features"], entry.get("name", ""))

    def to_entry(self) -> dict[str, Any]:
        """The normalised manifest entry."""
        return {"kind": self.kind, "features": self.features}

    def describe(self, reads: str) -> str:
        """The ``info`` line."""
        title = "GlobalMaxPooling1D" if self.kind == "global_max_pooling" else "GlobalAveragePooling1D"
        return f"{title}{reads}: {self.features} -> {self.features}"

    def infer(self, parts: Sequence[Port], where: str, is_output: bool) -> Port:
        """Pooling reads a sequence and outputs one vector."""
        _one_input(parts, where, self.features, want="sequence")
        return Port(False, self.features, False, "")


#: the pooling kinds (:class:`PoolingSpec`)
POOLING_KINDS: tuple[str, ...] = PoolingSpec.kinds


@dataclass(frozen=True)
class ConcatenateSpec(Spec):
    """Keras ``Concatenate`` along the feature axis (sequences with sequences, vectors with vectors).

    Relevance is split by slice: no rule.
    """

    kinds: ClassVar[tuple[str, ...]] = ("concatenate",)
    input_sizes: tuple[int, ...]
    name: str = ""
    kind: str = "concatenate"

    @property
    def output_size(self) -> int:
        """Width of the layer's output: the sum of the inputs' widths."""
        return sum(self.input_sizes)

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> ConcatenateSpec:
        """The spec of a manifest entry."""
        return cls(tuple(entry["input_sizes"]), entry.get("name", ""))

    def to_entry(self) -> dict[str, Any]:
        """The normalised manifest entry."""
        return {"kind": "concatenate", "input_sizes": list(self.input_sizes)}

    def describe(self, reads: str) -> str:
        """The ``info`` line."""
        return f"Concatenate{reads}: {' + '.join(map(str, self.input_sizes))} -> {self.output_size}"

    def infer(self, parts: Sequence[Port], where: str, is_output: bool) -> Port:
        """Like with like; each input as wide as ``input_sizes`` says."""
        if len(parts) != len(self.input_sizes):
            raise LayoutError(f"{where} has {len(self.input_sizes)} input_sizes but reads {len(parts)} inputs")
        if len({part.sequence for part in parts}) > 1:
            raise LayoutError(f"{where} joins sequences with vectors; concatenate like with like")
        for part, want in zip(parts, self.input_sizes, strict=True):
            if part.tokens:
                raise LayoutError(f"{where} reads the token ids of {part.what}: put an embedding layer in between")
            if part.width != want:
                raise LayoutError(f"{where}: {part.what} outputs width {part.width} but input_sizes says {want}")
        return Port(parts[0].sequence, self.output_size, False, "")


@dataclass(frozen=True)
class SelectStepSpec(Spec):
    """One time step of a sequence (B, T, F) -> (B, F): Keras ``x[:, t, :]``, PyTorch ``out[:, t]``.

    ``step`` counts from the start (0, 1, ...) or, when negative, from the end (-1 is the last
    step). Relevance goes to the selected step only: no rule.
    """

    kinds: ClassVar[tuple[str, ...]] = ("select_step",)
    step: int
    features: int
    name: str = ""
    kind: str = "select_step"

    @property
    def input_size(self) -> int:
        """Width of the layer's input."""
        return self.features

    @property
    def output_size(self) -> int:
        """Width of the layer's output."""
        return self.features

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> SelectStepSpec:
        """The spec of a manifest entry."""
        return cls(entry["step"], entry["features"], entry.get("name", ""))

    def to_entry(self) -> dict[str, Any]:
        """The normalised manifest entry."""
        return {"kind": "select_step", "step": self.step, "features": self.features}

    def describe(self, reads: str) -> str:
        """The ``info`` line."""
        return f"SelectStep(step={self.step}){reads}: {self.features} -> {self.features}"

    def infer(self, parts: Sequence[Port], where: str, is_output: bool) -> Port:
        """It reads a sequence and outputs one vector."""
        _one_input(parts, where, self.features, want="sequence")
        return Port(False, self.features, False, "")


LayerSpec = Spec
#: manifest kind -> spec class (the registry the manifest reader, the writer and the shape check read)
SPEC_TYPES: Mapping[str, type[Spec]] = MappingProxyType(
    {
        kind: cls
        for cls in (EmbeddingSpec, RecurrentSpec, DenseSpec, ConcatenateSpec, PoolingSpec, SelectStepSpec)
        for kind in cls.kinds
    }
)
#: every node kind a manifest may name (the recurrent kinds are those of :data:`GATES`)
NODE_KINDS: tuple[str, ...] = tuple(SPEC_TYPES)


@dataclass(frozen=True)
class InputSpec:
    """One input of the network: (B, T, features) floats, or (B, T) token ids when ``tokens``."""

    name: str
    features: int
    tokens: bool = False
    #: Keras ``Masking``: a step whose features all equal this value is masked (None: no masking).
    mask_value: float | None = None
    #: Keras ``TextVectorization`` in front of a token input: raw strings are tokenized by it.
    text: TextVectorizer | None = None


#: An edge: a node index (>= 0), or ``-1 - k`` for the network's input ``k``.
Edge = int


def input_edge(k: int) -> Edge:
    """The edge of the network's input ``k``."""
    return -1 - k


@dataclass(frozen=True)
class ArraySpec:
    """One named weight array of one layer, with its expected shape."""

    layer: int
    key: str  # e.g. "0/forward/kernel"
    name: str  # e.g. "forward/kernel"
    shape: tuple[int, ...]
    shape_expr: tuple[str, ...]


@dataclass(frozen=True)
class NetworkLayout:
    """A validated, frozen network layout.

    Attributes:
        layers: the layer specs, input to output.
        manifest: the manifest it was built from (normalised, with defaults filled in).
    """

    layers: tuple[LayerSpec, ...]
    manifest_json: str
    #: Keras ``Masking``: a step whose features all equal this value is masked (None: no masking).
    mask_value: float | None = None
    #: per node, the edges it reads (node indices, or ``input_edge(k)``); empty: a chain
    edges: tuple[tuple[Edge, ...], ...] = ()
    #: the network's inputs; empty: one input, read by the first layer
    inputs: tuple[InputSpec, ...] = ()

    def __post_init__(self) -> None:
        if not self.edges:
            chain = tuple((input_edge(0),) if i == 0 else (i - 1,) for i in range(len(self.layers)))
            object.__setattr__(self, "edges", chain)
        if not self.inputs:
            first = self.layers[0]
            tokens = isinstance(first, EmbeddingSpec)
            features = 1 if tokens else first.input_size  # type: ignore[attr-defined]
            object.__setattr__(self, "inputs", (InputSpec("input", features, tokens, self.mask_value),))

    @property
    def is_chain(self) -> bool:
        """Whether every layer reads the one before (a version-1 manifest)."""
        return len(self.inputs) == 1 and all(
            e == ((input_edge(0),) if i == 0 else (i - 1,)) for i, e in enumerate(self.edges)
        )

    @functools.cached_property
    def sequence_outputs(self) -> tuple[bool, ...]:
        """Per node: whether its output has a time axis (a sequence) or is one vector per sample."""
        return _infer_sequences(self.layers, self.edges, self.inputs)

    @property
    def per_step(self) -> bool:
        """Whether the network's output has a time axis: one score vector per step, (B, T, C)."""
        return self.sequence_outputs[-1]

    @property
    def attribution_edges(self) -> tuple[Edge, ...]:
        """Per input, where its relevance is reported: the input, or its embedding's output."""
        points = []
        for k, spec in enumerate(self.inputs):
            point = input_edge(k)
            if spec.tokens:
                point = next(i for i, e in enumerate(self.edges) if e == (input_edge(k),))
            points.append(point)
        return tuple(points)

    def attribution_size(self, k: int) -> int:
        """Feature width of input ``k``'s relevance (the embedding dimension for token inputs)."""
        point = self.attribution_edges[k]
        return self.inputs[k].features if point < 0 else self.layers[point].output_size

    @property
    def manifest(self) -> dict[str, Any]:
        """A fresh copy of the normalised manifest."""
        return json.loads(self.manifest_json)

    @property
    def embedding(self) -> EmbeddingSpec | None:
        """The embedding layer, if the network starts with one."""
        first = self.layers[0]
        return first if isinstance(first, EmbeddingSpec) else None

    @property
    def recurrent(self) -> tuple[RecurrentSpec, ...]:
        """The recurrent layers, bottom to top."""
        return tuple(layer for layer in self.layers if isinstance(layer, RecurrentSpec))

    @property
    def dense(self) -> tuple[DenseSpec, ...]:
        """The dense head, first to last."""
        return tuple(layer for layer in self.layers if isinstance(layer, DenseSpec))

    @property
    def input_size(self) -> int:
        """Feature width D of the (first) input's relevance (the embedding dimension for token models)."""
        return self.attribution_size(0)

    @property
    def num_outputs(self) -> int:
        """C, the number of scores."""
        return self.layers[-1].output_size

    @property
    def arrays(self) -> tuple[ArraySpec, ...]:
        """Every weight array, in Keras ``get_weights()`` order."""
        return _array_specs(self.layers)

    def describe(self) -> str:
        """One line per layer, for ``tf-lrp info`` and error messages."""
        lines = []
        names = [spec.name for spec in self.inputs]
        for index, layer in enumerate(self.layers):
            reads = "" if self.is_chain else " <- " + ", ".join(
                names[-1 - e] if e < 0 else str(e) for e in self.edges[index]
            )
            lines.append(f"{index}: {layer.describe(reads)}")
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Schema


@functools.cache
def load_schema() -> dict[str, Any]:
    """The manifest JSON Schema shipped inside the package (``tf_lrp/weights_schema.json``)."""
    text = importlib.resources.files("tf_lrp").joinpath("weights_schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def _schema_errors(manifest: Any) -> list[str]:
    validator = jsonschema.Draft202012Validator(load_schema())
    messages = []
    for error in sorted(validator.iter_errors(manifest), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        messages.append(f"{where}: {error.message}")
    return messages


_TERM = re.compile(r"^\s*(\d+|[a-z_]+)\s*$")


def eval_shape_expr(expr: str, sizes: Mapping[str, int]) -> int:
    """Evaluate a shape expression of the schema, e.g. ``"4*units"``, without ``eval``.

    Args:
        expr: a product of integers and size names joined by ``*``.
        sizes: the layer's sizes by name.

    Returns:
        The integer value.

    Raises:
        LayoutError: for a malformed expression or an unknown size name.
    """
    value = 1
    for term in expr.split("*"):
        match = _TERM.match(term)
        if match is None:
            raise LayoutError(f"malformed shape expression {expr!r} in weights_schema.json")
        token = match.group(1)
        if token.isdigit():
            value *= int(token)
        elif token in sizes:
            value *= int(sizes[token])
        else:
            raise LayoutError(f"shape expression {expr!r} names unknown size {token!r}")
    return value


def _array_specs(layers: Sequence[LayerSpec]) -> tuple[ArraySpec, ...]:
    schema = load_schema()
    prefixes = schema["x-direction-prefixes"]
    specs: list[ArraySpec] = []
    for index, layer in enumerate(layers):
        attrs = _layer_attrs(layer)
        layer_prefixes = prefixes[layer.direction] if isinstance(layer, RecurrentSpec) else [""]
        for prefix in layer_prefixes:
            for entry in schema["$defs"].get(layer.kind, {}).get("x-arrays", ()):  # pooling: none
                condition = entry.get("when", {})
                if any(attrs.get(key) != want for key, want in condition.items()):
                    continue
                shape = tuple(eval_shape_expr(e, attrs) for e in entry["shape"])
                name = prefix + entry["name"]
                specs.append(ArraySpec(index, f"{index}/{name}", name, shape, tuple(entry["shape"])))
    return tuple(specs)


def _layer_attrs(layer: LayerSpec) -> dict[str, Any]:
    attrs = dict(layer.__dict__)
    attrs["kind"] = layer.kind
    return attrs


# --------------------------------------------------------------------------------------------
# Manifest -> layout




def validate_manifest(manifest: Mapping[str, Any]) -> NetworkLayout:
    """Validate a manifest against the schema and for meaning; return the layout.

    Args:
        manifest: the parsed JSON manifest.

    Returns:
        The frozen :class:`NetworkLayout`.

    Raises:
        LayoutError: listing every schema violation, or the first structural problem (layers
            that do not chain, a recurrent layer after a dense one, a classifier whose last
            recurrent layer returns sequences, ...), with the fix.
    """
    if not isinstance(manifest, Mapping):
        raise LayoutError(f"a layout manifest is a JSON object (dict); got {type(manifest).__name__}")
    problems = _schema_errors(dict(manifest))
    if problems:
        raise LayoutError("the layout manifest does not match weights_schema.json:\n  " + "\n  ".join(problems))
    layers: list[LayerSpec] = []
    for entry in manifest["layers"]:
        if entry["kind"] == "seq2seq":
            raise LayoutError(
                "this manifest describes a GRU encoder-decoder forecaster (kind 'seq2seq'); build it with "
                "tf_lrp.Seq2SeqExplainer.from_manifest, not Explainer"
            )
        layers.append(SPEC_TYPES[entry["kind"]].from_entry(entry))
    if manifest.get("version", FORMAT_VERSION) == GRAPH_VERSION:
        return _validate_graph(manifest, layers)
    if "inputs" in manifest or any("inputs" in entry for entry in manifest["layers"]):
        raise LayoutError(
            "'inputs' (graph edges) belong to version 2 manifests; set \"version\": 2 or remove them"
        )
    graph_only = [layer.kind for layer in layers if not isinstance(layer, (EmbeddingSpec, RecurrentSpec, DenseSpec))]
    if graph_only:
        raise LayoutError(
            f"{graph_only[0]} layers need a graph: write a version 2 manifest whose layers name their inputs"
        )
    _check_structure(layers)
    mask_value = manifest.get("mask_value")
    if mask_value is not None and isinstance(layers[0], EmbeddingSpec):
        raise LayoutError(
            "mask_value (Keras Masking) applies to float inputs; a network that starts with an embedding "
            "masks padding with the embedding's mask_zero instead: remove mask_value"
        )
    normalised = to_manifest(layers, name=manifest.get("name"), mask_value=mask_value)
    return NetworkLayout(tuple(layers), json.dumps(normalised, sort_keys=True), mask_value)


def _validate_graph(manifest: Mapping[str, Any], layers: list[LayerSpec]) -> NetworkLayout:
    """The version-2 half of :func:`validate_manifest`: inputs, edges, shapes."""
    if "inputs" not in manifest:
        raise LayoutError(
            "a version 2 manifest lists the network's inputs: add \"inputs\": [{\"name\": "
            "..., \"features\": ...}]"
        )
    inputs = tuple(
        InputSpec(
            entry["name"],
            entry["features"],
            entry.get("tokens", False),
            entry.get("mask_value"),
            TextVectorizer.from_entry(entry["text"]) if "text" in entry else None,
        )
        for entry in manifest["inputs"]
    )
    if "mask_value" in manifest:
        raise LayoutError("in a version 2 manifest, mask_value belongs to an input: move it into \"inputs\"")
    names: dict[str, Edge] = {}
    for k, spec in enumerate(inputs):
        if spec.name in names:
            raise LayoutError(f"input {k}: the name {spec.name!r} is used twice; names must be unique")
        if spec.text is not None and not spec.tokens:
            raise LayoutError(f"input {spec.name!r} has a text tokenizer but no token ids: set \"tokens\": true")
        if spec.tokens and spec.mask_value is not None:
            raise LayoutError(
                f"input {spec.name!r}: token inputs mask padding with the embedding's mask_zero: "
                "remove mask_value"
            )
        names[spec.name] = input_edge(k)
    edges: list[tuple[Edge, ...]] = []
    for index, (entry, layer) in enumerate(zip(manifest["layers"], layers, strict=True)):
        reads = entry.get("inputs")
        if reads is None:
            edges.append((input_edge(0),) if index == 0 else (index - 1,))
        else:
            unknown = [r for r in reads if r not in names]
            if unknown:
                raise LayoutError(
                    f"layer {index} ({layer.kind}) reads {unknown}, which is no input and no earlier layer; "
                    f"known names: {sorted(names)}"
                )
            edges.append(tuple(names[r] for r in reads))
        if layer.name:
            if layer.name in names:
                raise LayoutError(f"layer {index}: the name {layer.name!r} is used twice; names must be unique")
            names[layer.name] = index
    layout_layers = tuple(layers)
    _infer_sequences(layout_layers, tuple(edges), inputs)  # raises on every shape problem
    used = {e for reads in edges for e in reads}
    unused = [spec.name for k, spec in enumerate(inputs) if input_edge(k) not in used]
    unused += [f"layer {i}" for i in range(len(layers) - 1) if i not in used]
    if unused:
        raise LayoutError(f"{', '.join(unused)} feed(s) nothing: every input and layer but the last must be read")
    if not type(layers[-1]).scores:
        raise LayoutError(
            f"the last layer must be a dense layer (its pre-activation is the explained score); got {layers[-1].kind!r}"
        )
    normalised = to_manifest(layers, name=manifest.get("name"), edges=tuple(edges), inputs=inputs)
    return NetworkLayout(layout_layers, json.dumps(normalised, sort_keys=True), None, tuple(edges), inputs)


def _infer_sequences(
    layers: Sequence[LayerSpec], edges: Sequence[tuple[Edge, ...]], inputs: Sequence[InputSpec]
) -> tuple[bool, ...]:
    """Whether each node's output is a sequence; checks that every node's inputs fit it (each spec's ``infer``).

    Raises:
        LayoutError: naming the layer, what it reads and the fix.
    """
    ports: list[Port] = []

    def source(edge: Edge) -> Port:
        if edge < 0:
            spec = inputs[-1 - edge]
            return Port(True, spec.features, spec.tokens, f"input {spec.name!r}")
        return ports[edge]

    last = len(layers) - 1
    for index, (layer, reads) in enumerate(zip(layers, edges, strict=True)):
        where = f"layer {index} ({layer.kind})"
        for edge in reads:
            if edge >= index:
                raise LayoutError(f"{where} reads layer {edge}, which comes later; list layers in topological order")
        port = layer.infer([source(edge) for edge in reads], where, index == last)
        ports.append(port._replace(what=where))
    return tuple(port.sequence for port in ports)


def _check_structure(layers: Sequence[LayerSpec]) -> None:
    recurrent = [i for i, layer in enumerate(layers) if isinstance(layer, RecurrentSpec)]
    dense = [i for i, layer in enumerate(layers) if isinstance(layer, DenseSpec)]
    for index, layer in enumerate(layers):
        if isinstance(layer, EmbeddingSpec) and index != 0:
            raise LayoutError(f"layer {index}: an embedding layer can only be the first layer")
    if not recurrent:
        raise LayoutError("the network has no recurrent (lstm/gru) layer; tf_lrp explains recurrent networks")
    if not dense or dense[-1] != len(layers) - 1:
        raise LayoutError(
            f"the last layer must be a dense layer (its pre-activation is the explained score); got {layers[-1].kind!r}"
        )
    if dense[0] < recurrent[-1]:
        raise LayoutError(
            f"layer {dense[0]} (dense) comes before recurrent layer {recurrent[-1]}; "
            "tf_lrp builds recurrent layers first, then a dense head"
        )
    for index in recurrent[:-1]:
        layer = layers[index]
        if isinstance(layer, RecurrentSpec) and not layer.return_sequences:
            raise LayoutError(
                f"layer {index} ({layer.cell}) has return_sequences=false but feeds another recurrent "
                "layer; set return_sequences=true on every recurrent layer except the last"
            )
    top = layers[recurrent[-1]]
    if isinstance(top, RecurrentSpec) and top.return_sequences:
        raise LayoutError(
            f"layer {recurrent[-1]} ({top.cell}) is the last recurrent layer and has return_sequences=true; "
            "the dense head explains one score per sequence, so the last recurrent layer must return "
            "its final state only (return_sequences=false)"
        )
    for index in dense[:-1]:
        layer = layers[index]
        if isinstance(layer, DenseSpec) and layer.activation not in HIDDEN_DENSE_ACTIVATIONS:
            raise LayoutError(
                f"layer {index} (dense) has activation {layer.activation!r}; a dense layer before the last "
                f"one must use one of {HIDDEN_DENSE_ACTIVATIONS}"
            )
    for index, layer in enumerate(layers):
        if isinstance(layer, RecurrentSpec):
            for field in ("activation", "recurrent_activation"):
                if getattr(layer, field) not in RECURRENT_ACTIVATIONS:
                    raise LayoutError(
                        f"layer {index} ({layer.cell}): {field}={getattr(layer, field)!r} is not supported; "
                        f"use one of {RECURRENT_ACTIVATIONS}"
                    )
        if index == 0:
            continue
        previous = layers[index - 1]
        width = previous.output_size
        if not isinstance(layer, (RecurrentSpec, DenseSpec)):
            continue
        if layer.input_size != width:
            how = ""
            if isinstance(previous, RecurrentSpec) and previous.direction == "bidirectional":
                how = f" (bidirectional {previous.merge_mode} of 2 × {previous.units} units)"
            raise LayoutError(
                f"layer {index} ({layer.kind}) has input_size {layer.input_size} but layer {index - 1} "
                f"({previous.kind}) outputs width {width}{how}; the layers do not chain: set input_size "
                f"of layer {index} to {width}"
            )


def to_manifest(
    layers: Sequence[LayerSpec],
    name: str | None = None,
    mask_value: float | None = None,
    edges: Sequence[tuple[Edge, ...]] | None = None,
    inputs: Sequence[InputSpec] | None = None,
) -> dict[str, Any]:
    """The normalised manifest (all defaults written out) of a list of layer specs.

    ``mask_value`` records a Keras ``Masking`` layer in front of a chain: a time step whose
    features all equal it is masked (carries the state through, gets zero relevance). With
    ``edges`` and ``inputs`` the manifest is a version-2 graph (layers name their inputs; the
    mask value then belongs to an input).
    """
    graph = edges is not None and inputs is not None
    edges = edges or ()
    inputs = inputs or ()
    entries: list[dict[str, Any]] = []
    for index, layer in enumerate(layers):
        entry = layer.to_entry()
        if layer.name:
            entry["name"] = layer.name
        if graph:
            entry["inputs"] = [inputs[-1 - e].name if e < 0 else _node_name(layers, e) for e in edges[index]]
        entries.append(entry)
    if graph:
        described = []
        for spec in inputs:
            item: dict[str, Any] = {"name": spec.name, "features": spec.features, "tokens": spec.tokens}
            if spec.mask_value is not None:
                item["mask_value"] = float(spec.mask_value)
            if spec.text is not None:
                item["text"] = spec.text.to_entry()
            described.append(item)
        graph_manifest: dict[str, Any] = {
            "format": FORMAT, "version": GRAPH_VERSION, "inputs": described, "layers": entries
        }  # fmt: skip
        if name:
            graph_manifest["name"] = name
        return graph_manifest
    manifest: dict[str, Any] = {"format": FORMAT, "version": FORMAT_VERSION, "layers": entries}
    if name:
        manifest["name"] = name
    if mask_value is not None:
        manifest["mask_value"] = float(mask_value)
    return manifest


def _node_name(layers: Sequence[LayerSpec], index: int) -> str:
    """The name an edge to node ``index`` uses in a version-2 manifest."""
    name = layers[index].name
    if not name:
        raise LayoutError(f"layer {index} ({layers[index].kind}) feeds another layer in a graph and needs a name")
    return name


# --------------------------------------------------------------------------------------------
# Weights


def check_weights(
    layout: NetworkLayout,
    weights: Sequence[Any] | Mapping[str, Any],
) -> list[np.ndarray]:
    """Check weight arrays against a layout and return them in Keras order.

    Args:
        layout: the validated layout.
        weights: a list in ``model.get_weights()`` order, or a dict keyed
            ``"{layer}/{array}"`` (e.g. ``"0/forward/kernel"``, ``"1/bias"``).

    Returns:
        The arrays as numpy arrays (not copied when already numpy), in Keras order.

    Raises:
        LayoutError: wrong count, missing or unknown keys, wrong shape (with a hint when the
            shape is the transposed PyTorch layout), a non-floating dtype, or NaN/inf values.
    """
    specs = layout.arrays
    if isinstance(weights, Mapping):
        missing = [s.key for s in specs if s.key not in weights]
        unknown = sorted(set(weights) - {s.key for s in specs})
        if missing or unknown:
            raise LayoutError(
                f"weight dict keys do not match the layout: missing {missing}, unknown {unknown}; "
                f"expected keys {[s.key for s in specs]}"
            )
        arrays = [weights[s.key] for s in specs]
    else:
        arrays = list(weights)
        if len(arrays) != len(specs):
            listing = ", ".join(f"{s.key} {s.shape}" for s in specs)
            raise LayoutError(
                f"expected {len(specs)} weight arrays for this layout, got {len(arrays)}. "
                f"Expected, in Keras get_weights() order: {listing}"
            )
    checked = []
    for spec, value in zip(specs, arrays, strict=True):
        array = np.asarray(value)
        layer = layout.layers[spec.layer]
        where = f"layer {spec.layer} ({layer.kind}) array {spec.name!r}"
        if array.dtype.kind != "f":
            raise LayoutError(
                f"{where}: dtype {array.dtype} is not a real floating type; pass float32 or float64 arrays"
            )
        if array.shape != spec.shape:
            expr = "(" + ", ".join(spec.shape_expr) + ")"
            raise LayoutError(
                f"{where}: expected shape {spec.shape} = {expr}, got {array.shape}. "
                + _shape_hint(layer, spec, array.shape)
            )
        bad = int(array.size - np.count_nonzero(np.isfinite(array)))
        if bad:
            raise LayoutError(f"{where}: {bad} of {array.size} values are NaN or infinite")
        checked.append(array)
    return checked


def _shape_hint(layer: LayerSpec, spec: ArraySpec, got: tuple[int, ...]) -> str:
    if got == tuple(reversed(spec.shape)) and len(got) == 2:
        if isinstance(layer, RecurrentSpec):
            return (
                f"This is PyTorch layout ({len(GATES[layer.cell])}H, D): transpose it, or convert the whole "
                "state_dict with tf_lrp.convert.from_torch (it also reorders GRU gates)."
            )
        return "This is the transposed (PyTorch nn.Linear) layout: transpose it."
    if isinstance(layer, RecurrentSpec) and spec.name.endswith("bias"):
        if layer.cell == "gru" and len(got) == 1 and layer.reset_after:
            return "A (3H,) GRU bias belongs to reset_after=False; Keras 3's default reset_after=True has (2, 3H)."
        if layer.cell == "gru" and len(got) == 2 and not layer.reset_after:
            return "A (2, 3H) GRU bias belongs to reset_after=True; pass reset_after=True."
    if isinstance(layer, RecurrentSpec) and len(got) == 2 and len(spec.shape) == 2:
        gates = len(GATES[layer.cell])
        if got[1] % gates == 0 and got[1] != spec.shape[1]:
            other = "gru" if gates == 4 else "lstm"
            if got[1] % len(GATES[other]) == 0 and got[1] // len(GATES[other]) in (spec.shape[0], got[0]):
                return f"The column count fits a {other.upper()} ({len(GATES[other])} gate blocks): check `cell`."
    return "Check the layer sizes (units, input_size) and the order of the arrays."


def fingerprint(layout: NetworkLayout, arrays: Sequence[np.ndarray]) -> str:
    """A SHA-256 over the normalised manifest and every array's dtype, shape and bytes."""
    digest = hashlib.sha256(layout.manifest_json.encode("utf-8"))
    for array in arrays:
        contiguous = np.ascontiguousarray(array)
        digest.update(f"{contiguous.dtype.str}{contiguous.shape}".encode())
        digest.update(contiguous.tobytes())
    return digest.hexdigest()
