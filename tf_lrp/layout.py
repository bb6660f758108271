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
import math
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
    #: which input edge's time axis a sequence output follows (and so its step mask)
    time_from: ClassVar[int] = 0
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

    def array_specs(self, index: int) -> tuple[ArraySpec, ...] | None:
        """Its weight arrays where the schema's ``x-arrays`` cannot list them (None: the schema's)."""
        return None

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


class SameWidthSpec(Spec):
    """Base of the specs whose input and output have the same width, ``features``.

    Pooling, activation, normalization, the merges, step selection and repetition.
    """

    features: int

    @property
    def input_size(self) -> int:
        """Width of the layer's input (each input's, for a merge)."""
        return self.features

    @property
    def output_size(self) -> int:
        """Width of the layer's output."""
        return self.features


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
    #: Keras ``initial_state=``: the layer reads its initial states (h, and c for an LSTM) as extra
    #: inputs (vectors (B, units)) after its sequence; relevance reaching them flows on to their producers.
    #: Like Keras (which fills ``mask`` only for a call on one tensor) it then reads no step mask;
    #: its output keeps the sequence's mask
    initial_state: bool = False
    #: Keras ``return_state=True`` (one direction, last output only): the output is the final
    #: states side by side, ``[h ; c]`` for an LSTM (the walker slices ``h`` and ``c`` out of it)
    return_state: bool = False

    @property
    def state_count(self) -> int:
        """How many state vectors the cell carries: 2 for an LSTM (h, c), else 1."""
        return 2 if self.cell == "lstm" else 1

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
        """Width of the layer's output (2H for a bidirectional concat, the states' for return_state)."""
        if self.return_state:
            return self.state_count * self.units
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
            initial_state=values.get("initial_state", False),
            return_state=values.get("return_state", False),
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
        # written only when set: older manifests keep their fingerprints
        for option in ("zero_output_for_mask", "initial_state", "return_state"):
            if getattr(self, option):
                entry[option] = True
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
        """A sequence (and its initial states) in; a sequence, its last output or its final states out."""
        states = self.state_count if self.initial_state else 0
        if (self.initial_state or self.return_state) and self.direction != "forward":
            raise LayoutError(f"{where}: initial_state and return_state are supported for forward layers only")
        if self.return_state and self.return_sequences:
            raise LayoutError(f"{where}: return_state needs return_sequences=false (the output is the final states)")
        _one_input(parts[: len(parts) - states] if states else parts, where, self.input_size, want="sequence")
        for part in parts[len(parts) - states :] if states else ():
            if part.sequence or part.tokens or part.width != self.units:
                raise LayoutError(
                    f"{where} reads an initial state from {part.what} (width {part.width}); each initial state is one "
                    f"vector of width units={self.units} per sample"
                )
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
class PoolingSpec(SameWidthSpec):
    """Keras ``GlobalMaxPooling1D`` / ``GlobalAveragePooling1D`` / ``keras.ops.sum(x, axis=1)``: (B, T, F) -> (B, F).

    Max: winner takes all (ties split equally), like Keras it ignores the mask; average: over the
    valid steps (Keras's mask-aware mean), relevance proportional to each step's share (ε-rule);
    sum: over the valid steps, the same ε-rule (the sum of an attention pooling's weighted steps).
    The rule is fixed by the kind: no rule to choose.
    """

    kinds: ClassVar[tuple[str, ...]] = ("global_max_pooling", "global_average_pooling", "global_sum_pooling")
    kind: str  # "global_max_pooling", "global_average_pooling" or "global_sum_pooling"
    features: int
    name: str = ""

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> PoolingSpec:
        """The spec of a manifest entry."""
        return cls(entry["kind"], entry["features"], entry.get("name", ""))

    def to_entry(self) -> dict[str, Any]:
        """The normalised manifest entry."""
        return {"kind": self.kind, "features": self.features}

    def describe(self, reads: str) -> str:
        """The ``info`` line."""
        title = {"global_max_pooling": "GlobalMaxPooling1D", "global_average_pooling": "GlobalAveragePooling1D"}.get(
            self.kind, "Sum(over time)"
        )
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
class SliceSpec(Spec):
    """Features ``start:stop`` of a vector or sequence: relevance and gradient go back to that slice.

    The walker emits it for Keras ``return_state=True``: ``h`` and ``c`` out of the final states.
    """

    kinds: ClassVar[tuple[str, ...]] = ("slice",)
    input_size: int
    start: int
    stop: int
    name: str = ""
    kind: str = "slice"

    @property
    def output_size(self) -> int:
        """``stop - start``."""
        return self.stop - self.start

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> SliceSpec:
        """The spec of a manifest entry."""
        return cls(entry["input_size"], entry["start"], entry["stop"], entry.get("name", ""))

    def to_entry(self) -> dict[str, Any]:
        """The normalised manifest entry."""
        return {"kind": "slice", "input_size": self.input_size, "start": self.start, "stop": self.stop}

    def describe(self, reads: str) -> str:
        """The ``info`` line."""
        return f"Slice [{self.start}:{self.stop}]{reads}: {self.input_size} -> {self.output_size}"

    def infer(self, parts: Sequence[Port], where: str, is_output: bool) -> Port:
        """Any one input as wide as ``input_size``; a non-empty range inside it."""
        if not 0 <= self.start < self.stop <= self.input_size:
            raise LayoutError(f"{where}: start={self.start}, stop={self.stop} is no range inside 0..{self.input_size}")
        part = _one_input(parts, where, self.input_size)
        return Port(part.sequence, self.output_size, False, "")


@dataclass(frozen=True)
class Seq2SeqSpec(Spec):
    """The GRU encoder-decoder forecaster (Mirzavand Borujeni et al. 2023) as one node of the graph.

    It reads three inputs: the history (B, T_in, input_size), the known-future inputs
    (B, T_out, future_size) — their time axis is the forecast horizon — and, when
    ``static_size > 0``, the static features (B, static_size), one vector per sample; it outputs
    the forecasts (B, T_out, outputs), one score vector per decoder step. Its encoder, decoder
    and head take the recurrent rules (product rule, sum spread) and the head / output rules.

    Attributes:
        num_layers: L, GRU layers in the encoder and (equally many) in the decoder.
        units: H, width of every GRU state.
        input_size: F, history features per step; the first ``outputs`` are the targets.
        outputs: O, forecast targets per step.
        future_size: F_dec, known-future features per decoder step (may be 0).
        static_size: S, static features, read by the head only (may be 0).
        head_units: H', width of the head's hidden (relu) layer (0: ``units``).
        name: optional label.
    """

    kinds: ClassVar[tuple[str, ...]] = ("seq2seq",)
    rule_kind: ClassVar[str | None] = "recurrent"
    scores: ClassVar[bool] = True
    #: the input edge whose time axis the output follows: the known-future inputs (the horizon)
    time_from: ClassVar[int] = 1
    num_layers: int
    units: int
    input_size: int
    outputs: int
    future_size: int = 0
    static_size: int = 0
    head_units: int = 0
    name: str = ""
    kind: str = "seq2seq"

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
    def output_size(self) -> int:
        """Width of the forecasts: O targets per step."""
        return self.outputs

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> Seq2SeqSpec:
        """The spec of a manifest entry."""
        return cls(
            num_layers=entry["num_layers"],
            units=entry["units"],
            input_size=entry["input_size"],
            outputs=entry["outputs"],
            future_size=entry.get("future_size", 0),
            static_size=entry.get("static_size", 0),
            head_units=entry.get("head_units", entry["units"]),
            name=entry.get("name", ""),
        )

    def to_entry(self) -> dict[str, Any]:
        """The normalised manifest entry."""
        return {
            "kind": "seq2seq",
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

    @property
    def manifest(self) -> dict[str, Any]:
        """The forecaster's own manifest: one ``seq2seq`` layer (version 1; what ``Seq2SeqExplainer`` saves)."""
        entry = self.to_entry()
        if self.name:
            entry["name"] = self.name
        return {"format": FORMAT, "version": FORMAT_VERSION, "layers": [entry]}

    @property
    def arrays(self) -> tuple[ArraySpec, ...]:
        """Every weight array, in Keras ``get_weights()`` order, named as in the schema."""
        return self.array_specs(0, keyed=False)

    def array_specs(self, index: int, keyed: bool = True) -> tuple[ArraySpec, ...]:
        """The ``x-arrays`` of ``$defs/seq2seq``: consecutive entries of one ``block`` repeat per layer.

        Args:
            index: the node's index in the network.
            keyed: key each array ``"<index>/<name>"`` (a network file) or by its bare name (the
                forecaster's own file).
        """
        entries = load_schema()["$defs"]["seq2seq"]["x-arrays"]
        base = {**self.__dict__, "head_input": self.units + self.static_size}
        result: list[ArraySpec] = []
        position = 0
        while position < len(entries):
            repeat, block_name = entries[position].get("repeat"), entries[position].get("block")
            block = [entries[position]]
            while (
                block_name
                and position + len(block) < len(entries)
                and entries[position + len(block)].get("block") == block_name
            ):
                block.append(entries[position + len(block)])
            for layer in range(int(base[repeat]) if repeat else 1):
                sizes = {
                    **base,
                    "enc_input": self.input_size if layer == 0 else self.units,
                    "dec_input": self.outputs + self.future_size if layer == 0 else self.units,
                }
                for entry in block:
                    name = entry["name"].format(i=layer)
                    shape = tuple(eval_shape_expr(e, sizes) for e in entry["shape"])
                    key = f"{index}/{name}" if keyed else name
                    result.append(ArraySpec(index, key, name, shape, tuple(entry["shape"])))
            position += len(block)
        return tuple(result)

    def describe(self, reads: str = "") -> str:
        """One line, for messages, ``repr`` and ``tf-lrp info``."""
        return (
            f"GRU encoder-decoder{reads}: {self.num_layers} x GRU({self.units}); history F={self.input_size}, "
            f"targets O={self.outputs}, future F_dec={self.future_size}, static S={self.static_size}, "
            f"head {self.units + self.static_size} -> {self.head_units} (relu) -> {self.outputs}"
        )

    def infer(self, parts: Sequence[Port], where: str, is_output: bool) -> Port:
        """History and known-future sequences, then (when ``static_size > 0``) the static vector."""
        if self.outputs > self.input_size:
            raise LayoutError(
                f"{where}: outputs={self.outputs} exceeds input_size={self.input_size}: the decoder's seed ŷ_(-1) is "
                f"the last observed targets x[:, -1, :outputs], so the first {self.outputs} history features must be "
                "the targets"
            )
        wanted = [("history", True, self.input_size), ("known-future inputs", True, self.future_size)]
        if self.static_size:
            wanted.append(("static features", False, self.static_size))
        if len(parts) != len(wanted):
            raise LayoutError(
                f"{where} reads {len(parts)} inputs; it reads {len(wanted)}: "
                + ", ".join(f"the {label}" for label, _, _ in wanted)
            )
        for part, (label, sequence, width) in zip(parts, wanted, strict=True):
            if part.tokens:
                raise LayoutError(f"{where} reads the token ids of {part.what}: the forecaster reads real numbers")
            if part.sequence != sequence or part.width != width:
                shape = f"(B, T, {width})" if sequence else f"(B, {width})"
                raise LayoutError(f"{where}: its {label} must be {shape}; {part.what} gives width {part.width}")
        return Port(True, self.outputs, False, "")


def forecaster_layout(spec: Seq2SeqSpec) -> NetworkLayout:
    """The forecaster as a network: inputs history, known-future inputs (and static features when S > 0), one node.

    Raises:
        LayoutError: when the sizes do not make a forecaster (more targets than history features).
    """
    inputs = [InputSpec("history", spec.input_size), InputSpec("future", spec.future_size)]
    if spec.static_size:
        inputs.append(InputSpec("static", spec.static_size, sequence=False))
    edges = (tuple(input_edge(k) for k in range(len(inputs))),)
    manifest = to_manifest([spec], name=spec.name or None, edges=edges, inputs=tuple(inputs))
    return _validate_graph(manifest, [spec])


#: Keras ``padding`` of the windowed layers (``causal``: Conv1D only).
WINDOW_PADDINGS: tuple[str, ...] = ("valid", "same", "causal")
#: Activations a Conv1D may carry (relevance passes through them; others need their own node).
CONV_ACTIVATIONS: tuple[str, ...] = ("relu", "linear")


@dataclass(frozen=True)
class ConvSpec(Spec):
    """Keras ``Conv1D`` (channels_last) on a sequence: (B, T, input_size) -> (B, T', filters).

    ``T'`` follows from ``padding``, ``strides`` and ``dilation_rate`` (:class:`tf_lrp.nodes.windows.Window`);
    the kernel is (kernel_size, input_size / groups, filters). A linear node (its rule is chosen
    by the rule map); relu or linear activation. Keras drops the mask here.
    """

    kinds: ClassVar[tuple[str, ...]] = ("conv1d",)
    rule_kind: ClassVar[str | None] = "linear"

    filters: int
    input_size: int
    kernel_size: int
    strides: int = 1
    dilation_rate: int = 1
    padding: str = "valid"
    groups: int = 1
    activation: str = "linear"
    use_bias: bool = True
    name: str = ""
    kind: str = "conv1d"

    @property
    def output_size(self) -> int:
        """Width of the layer's output."""
        return self.filters

    @property
    def derived_sizes(self) -> dict[str, int]:
        """Sizes the schema's array shapes name besides the fields: ``group_size`` = input_size / groups."""
        return {"group_size": self.input_size // self.groups}

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> ConvSpec:
        """The spec of a manifest entry."""
        return cls(
            entry["filters"], entry["input_size"], entry["kernel_size"], entry.get("strides", 1),
            entry.get("dilation_rate", 1), entry.get("padding", "valid"), entry.get("groups", 1),
            entry.get("activation", "linear"), entry.get("use_bias", True), entry.get("name", ""),
        )  # fmt: skip

    def to_entry(self) -> dict[str, Any]:
        """The normalised manifest entry."""
        return {
            "kind": "conv1d", "filters": self.filters, "input_size": self.input_size,
            "kernel_size": self.kernel_size, "strides": self.strides, "dilation_rate": self.dilation_rate,
            "padding": self.padding, "groups": self.groups, "activation": self.activation,
            "use_bias": self.use_bias,
        }  # fmt: skip

    def describe(self, reads: str) -> str:
        """The ``info`` line."""
        options = f"kernel_size={self.kernel_size}, strides={self.strides}, padding={self.padding}"
        if self.dilation_rate != 1:
            options += f", dilation_rate={self.dilation_rate}"
        if self.groups != 1:
            options += f", groups={self.groups}"
        return (
            f"Conv1D(filters={self.filters}, {options}, activation={self.activation}){reads}: "
            f"{self.input_size} -> {self.filters}"
        )

    def infer(self, parts: Sequence[Port], where: str, is_output: bool) -> Port:
        """A convolution reads a sequence and outputs one (shorter with strides or valid padding)."""
        _one_input(parts, where, self.input_size, want="sequence")
        if self.input_size % self.groups or self.filters % self.groups:
            raise LayoutError(
                f"{where}: groups={self.groups} must divide input_size ({self.input_size}) and filters ({self.filters})"
            )
        if self.activation not in CONV_ACTIVATIONS:
            raise LayoutError(
                f"{where} has activation {self.activation!r}; a conv1d layer uses one of {CONV_ACTIVATIONS}"
            )
        return Port(True, self.filters, False, "")


@dataclass(frozen=True)
class Pooling1DSpec(SameWidthSpec):
    """Keras ``MaxPooling1D`` / ``AveragePooling1D`` (channels_last): (B, T, F) -> (B, T', F).

    Max: winner takes all in each window (ties split equally); average: the mean over the window's
    real (unpadded) steps, relevance proportional (ε-rule). The rule is fixed by the kind. Keras
    drops the mask here.
    """

    kinds: ClassVar[tuple[str, ...]] = ("max_pooling1d", "average_pooling1d")
    kind: str  # "max_pooling1d" or "average_pooling1d"
    features: int
    pool_size: int = 2
    strides: int = 2
    padding: str = "valid"
    name: str = ""

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> Pooling1DSpec:
        """The spec of a manifest entry (strides default to pool_size, as in Keras)."""
        size = entry.get("pool_size", 2)
        return cls(
            entry["kind"], entry["features"], size, entry.get("strides", size), entry.get("padding", "valid"),
            entry.get("name", ""),
        )  # fmt: skip

    def to_entry(self) -> dict[str, Any]:
        """The normalised manifest entry."""
        return {
            "kind": self.kind, "features": self.features, "pool_size": self.pool_size, "strides": self.strides,
            "padding": self.padding,
        }  # fmt: skip

    def describe(self, reads: str) -> str:
        """The ``info`` line."""
        title = "MaxPooling1D" if self.kind == "max_pooling1d" else "AveragePooling1D"
        options = f"pool_size={self.pool_size}, strides={self.strides}, padding={self.padding}"
        return f"{title}({options}){reads}: {self.features} -> {self.features}"

    def infer(self, parts: Sequence[Port], where: str, is_output: bool) -> Port:
        """Pooling reads a sequence and outputs a (shorter) one."""
        _one_input(parts, where, self.features, want="sequence")
        if self.padding == "causal":
            raise LayoutError(f"{where}: padding 'causal' is for conv1d; pooling uses 'valid' or 'same'")
        return Port(True, self.features, False, "")


@dataclass(frozen=True)
class RepeatVectorSpec(SameWidthSpec):
    """Keras ``RepeatVector(n)``: one vector (B, F) -> the sequence (B, n, F) of n copies."""

    kinds: ClassVar[tuple[str, ...]] = ("repeat_vector",)
    n: int
    features: int
    name: str = ""
    kind: str = "repeat_vector"

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> RepeatVectorSpec:
        """The spec of a manifest entry."""
        return cls(entry["n"], entry["features"], entry.get("name", ""))

    def to_entry(self) -> dict[str, Any]:
        """The normalised manifest entry."""
        return {"kind": "repeat_vector", "n": self.n, "features": self.features}

    def describe(self, reads: str) -> str:
        """The ``info`` line."""
        return f"RepeatVector(n={self.n}){reads}: {self.features} -> {self.n} x {self.features}"

    def infer(self, parts: Sequence[Port], where: str, is_output: bool) -> Port:
        """It reads one vector per sample and outputs a sequence."""
        part = _one_input(parts, where, self.features)
        if part.sequence:
            raise LayoutError(f"{where} reads {part.what}, a sequence; repeat_vector reads one vector per sample")
        return Port(True, self.features, False, "")


@dataclass(frozen=True)
class FlattenSpec(Spec):
    """Keras ``Flatten`` (or ``Reshape((-1,))``) of a sequence of fixed length: (B, T, F) -> (B, T·F).

    Relevance and gradient go back to the step and feature they came from, so the time axis stays
    readable. Keras drops the mask here.
    """

    kinds: ClassVar[tuple[str, ...]] = ("flatten",)
    steps: int
    features: int
    name: str = ""
    kind: str = "flatten"

    @property
    def output_size(self) -> int:
        """``steps · features``."""
        return self.steps * self.features

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> FlattenSpec:
        """The spec of a manifest entry."""
        return cls(entry["steps"], entry["features"], entry.get("name", ""))

    def to_entry(self) -> dict[str, Any]:
        """The normalised manifest entry."""
        return {"kind": "flatten", "steps": self.steps, "features": self.features}

    def describe(self, reads: str) -> str:
        """The ``info`` line."""
        return f"Flatten{reads}: {self.steps} x {self.features} -> {self.output_size}"

    def infer(self, parts: Sequence[Port], where: str, is_output: bool) -> Port:
        """It reads a sequence (of ``steps`` steps, checked when run) and outputs one vector."""
        _one_input(parts, where, self.features, want="sequence")
        return Port(False, self.output_size, False, "")


#: Elementwise activations an ``activation`` node computes (Keras 3 names with their default
#: parameters; ``gelu_approximate`` is Keras's ``gelu(approximate=True)``). Relevance passes them
#: unchanged; the node module holds each one's derivative.
ELEMENTWISE_ACTIVATIONS: tuple[str, ...] = (
    "linear", "relu", "relu6", "leaky_relu", "elu", "selu", "celu", "gelu", "gelu_approximate", "sigmoid",
    "hard_sigmoid", "log_sigmoid", "sparse_sigmoid", "tanh", "hard_tanh", "tanh_shrink", "softplus", "sparse_plus",
    "squareplus", "softsign", "silu", "hard_silu", "mish", "exponential", "soft_shrink", "hard_shrink",
)  # fmt: skip


#: Keras's ``leaky_relu`` slope (the ``activation`` node's default ``negative_slope``)
LEAKY_RELU_SLOPE = 0.2


def _same_shape(parts: Sequence[Port], where: str, features: int, count: int | None) -> Port:
    """The ports of an elementwise merge: all of one width and time axis (``count``: how many, or None: >= 2)."""
    if count is not None and len(parts) != count:
        raise LayoutError(f"{where} reads {len(parts)} inputs; it takes {count}")
    if len(parts) < 2:
        raise LayoutError(f"{where} reads {len(parts)} input; it merges two or more")
    for part in parts:
        if part.tokens:
            raise LayoutError(f"{where} reads the token ids of {part.what}: put an embedding layer in between")
        if part.width != features:
            raise LayoutError(f"{where}: {part.what} outputs width {part.width} but features says {features}")
    if len({part.sequence for part in parts}) > 1:
        raise LayoutError(f"{where} merges sequences with vectors; its inputs must have the same shape")
    return parts[0]


@dataclass(frozen=True)
class ActivationSpec(SameWidthSpec):
    """Keras ``Activation`` (and a hidden ``Dense``'s own activation): an elementwise function.

    Relevance passes it unchanged (the identity rule); the gradient is the activation's derivative.
    """

    kinds: ClassVar[tuple[str, ...]] = ("activation",)
    activation: str
    features: int
    name: str = ""
    kind: str = "activation"
    #: leaky_relu only: its slope for x < 0 (Keras's ``leaky_relu`` default 0.2; ``LeakyReLU`` layers set it)
    negative_slope: float = LEAKY_RELU_SLOPE

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> ActivationSpec:
        """The spec of a manifest entry."""
        slope = float(entry.get("negative_slope", LEAKY_RELU_SLOPE))
        return cls(entry["activation"], entry["features"], entry.get("name", ""), negative_slope=slope)

    def to_entry(self) -> dict[str, Any]:
        """The normalised manifest entry (``negative_slope`` only where it is not the default)."""
        entry: dict[str, Any] = {"kind": "activation", "activation": self.activation, "features": self.features}
        if self.negative_slope != LEAKY_RELU_SLOPE:
            entry["negative_slope"] = self.negative_slope
        return entry

    def describe(self, reads: str) -> str:
        """The ``info`` line."""
        slope = f", negative_slope={self.negative_slope:g}" if self.negative_slope != LEAKY_RELU_SLOPE else ""
        return f"Activation({self.activation}{slope}){reads}: {self.features} -> {self.features}"

    def infer(self, parts: Sequence[Port], where: str, is_output: bool) -> Port:
        """Elementwise: the input's shape."""
        part = _one_input(parts, where, self.features)
        if self.activation not in ELEMENTWISE_ACTIVATIONS:
            raise LayoutError(
                f"{where}: activation {self.activation!r} is not elementwise or not supported; "
                f"use one of {ELEMENTWISE_ACTIVATIONS}"
            )
        if self.negative_slope != LEAKY_RELU_SLOPE and self.activation != "leaky_relu":
            raise LayoutError(f"{where}: negative_slope is read by activation leaky_relu only; remove it")
        if not math.isfinite(self.negative_slope):
            raise LayoutError(f"{where}: negative_slope must be a finite number; got {self.negative_slope}")
        return Port(part.sequence, self.features, False, "")


@dataclass(frozen=True)
class PReLUSpec(SameWidthSpec):
    """Keras ``PReLU``: ``y = relu(x) - alpha * relu(-x)``, a learned slope ``alpha`` (F,) per feature.

    Elementwise like an activation: relevance passes it unchanged; the gradient is 1 for x > 0,
    else alpha. A sequence's alpha is shared over the time axis (Keras ``shared_axes=[1]``).
    """

    kinds: ClassVar[tuple[str, ...]] = ("prelu",)
    features: int
    name: str = ""
    kind: str = "prelu"

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> PReLUSpec:
        """The spec of a manifest entry."""
        return cls(entry["features"], entry.get("name", ""))

    def to_entry(self) -> dict[str, Any]:
        """The normalised manifest entry."""
        return {"kind": "prelu", "features": self.features}

    def describe(self, reads: str) -> str:
        """The ``info`` line."""
        return f"PReLU{reads}: {self.features} -> {self.features}"

    def infer(self, parts: Sequence[Port], where: str, is_output: bool) -> Port:
        """Elementwise: the input's shape."""
        part = _one_input(parts, where, self.features)
        return Port(part.sequence, self.features, False, "")


@dataclass(frozen=True)
class NormalizationSpec(SameWidthSpec):
    """Keras ``LayerNormalization`` / ``BatchNormalization`` (inference) over the last (feature) axis.

    ``layer_normalization``: ``y = (x - mean(x)) / sqrt(var(x) + epsilon) * gamma + beta`` per
    sample (and step); LRP treats the scale ``1/σ`` as a constant (CP-LRP, Ali et al. 2022) and
    applies the ε-rule with bias share to the linear map that remains. ``batch_normalization``:
    ``y = (x - moving_mean) / sqrt(moving_variance + epsilon) * gamma + beta``, an elementwise
    affine map, ε-rule per unit. The rule is fixed by the kind.
    """

    kinds: ClassVar[tuple[str, ...]] = ("layer_normalization", "batch_normalization")
    kind: str
    features: int
    epsilon: float = 1e-3
    center: bool = True
    scale: bool = True
    name: str = ""

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> NormalizationSpec:
        """The spec of a manifest entry."""
        return cls(
            entry["kind"], entry["features"], float(entry.get("epsilon", 1e-3)), entry.get("center", True),
            entry.get("scale", True), entry.get("name", ""),
        )  # fmt: skip

    def to_entry(self) -> dict[str, Any]:
        """The normalised manifest entry."""
        return {
            "kind": self.kind, "features": self.features, "epsilon": self.epsilon, "center": self.center,
            "scale": self.scale,
        }  # fmt: skip

    def describe(self, reads: str) -> str:
        """The ``info`` line."""
        title = "LayerNormalization" if self.kind == "layer_normalization" else "BatchNormalization"
        return (
            f"{title}(epsilon={self.epsilon:g}, center={self.center}, scale={self.scale}){reads}: "
            f"{self.features} -> {self.features}"
        )

    def infer(self, parts: Sequence[Port], where: str, is_output: bool) -> Port:
        """Over the feature axis: the input's shape."""
        part = _one_input(parts, where, self.features)
        return Port(part.sequence, self.features, False, "")


@dataclass(frozen=True)
class MergeSpec(SameWidthSpec):
    """Keras ``Add`` / ``Subtract`` / ``Average``: ``z = Σ_k c_k x_k`` with ``c_k`` = 1, ±1 or 1/K.

    Relevance in proportion to each input's contribution ``c_k x_k`` (ε-rule without bias; the
    stabiliser's share spread over the K inputs, so bias_factor = 1 conserves). Fixed rule.
    """

    kinds: ClassVar[tuple[str, ...]] = ("merge",)
    operation: str  # "add", "subtract" or "average"
    features: int
    name: str = ""
    kind: str = "merge"

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> MergeSpec:
        """The spec of a manifest entry."""
        return cls(entry["operation"], entry["features"], entry.get("name", ""))

    def to_entry(self) -> dict[str, Any]:
        """The normalised manifest entry."""
        return {"kind": "merge", "operation": self.operation, "features": self.features}

    def describe(self, reads: str) -> str:
        """The ``info`` line."""
        return f"{self.operation.capitalize()}{reads}: {self.features} -> {self.features}"

    def infer(self, parts: Sequence[Port], where: str, is_output: bool) -> Port:
        """Inputs of one shape; the output has it too (``subtract`` takes exactly two)."""
        part = _same_shape(parts, where, self.features, 2 if self.operation == "subtract" else None)
        return Port(part.sequence, self.features, False, "")


@dataclass(frozen=True)
class MultiplySpec(SameWidthSpec):
    """Keras ``Multiply`` of two or more tensors of one shape: a product node, split by the rule map's product rule."""

    kinds: ClassVar[tuple[str, ...]] = ("multiply",)
    rule_kind: ClassVar[str | None] = "product"
    features: int
    name: str = ""
    kind: str = "multiply"

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> MultiplySpec:
        """The spec of a manifest entry."""
        return cls(entry["features"], entry.get("name", ""))

    def to_entry(self) -> dict[str, Any]:
        """The normalised manifest entry."""
        return {"kind": "multiply", "features": self.features}

    def describe(self, reads: str) -> str:
        """The ``info`` line."""
        return f"Multiply{reads}: {self.features} -> {self.features}"

    def infer(self, parts: Sequence[Port], where: str, is_output: bool) -> Port:
        """Two or more inputs of one shape."""
        part = _same_shape(parts, where, self.features, None)
        return Port(part.sequence, self.features, False, "")


ATTENTION_SCORES: tuple[str, ...] = ("dot", "concat", "additive")


def _attention_parts(parts: Sequence[Port], where: str, sizes: tuple[int, int, int], has_key: bool) -> None:
    """Check the (query, value[, key]) sequences an attention layer reads against its sizes."""
    want = 3 if has_key else 2
    if len(parts) != want:
        roles = "query, value, key" if has_key else "query, value"
        raise LayoutError(f"{where} reads {len(parts)} inputs; it takes {want} ({roles})")
    for part, size, role in zip(parts, sizes, ("query", "value", "key"), strict=False):
        if part.tokens:
            raise LayoutError(f"{where} reads the token ids of {part.what}: put an embedding layer in between")
        if not part.sequence:
            raise LayoutError(f"{where}: its {role} {part.what} is one vector per sample; attention reads sequences")
        if part.width != size:
            raise LayoutError(f"{where}: its {role} {part.what} outputs width {part.width} but {role}_size is {size}")


@dataclass(frozen=True)
class AttentionSpec(Spec):
    """Keras ``Attention`` (score_mode dot / concat) and ``AdditiveAttention``: (query, value[, key]) -> (Tq, Dv).

    The attention weights are constants under CP-LRP (the default rule, ``RuleSet(attention=...)``):
    the output's relevance goes to the values by the ε-rule of the weighted sum; query and key get none.
    """

    kinds: ClassVar[tuple[str, ...]] = ("attention",)
    rule_kind: ClassVar[str | None] = "attention"
    query_size: int
    value_size: int
    score_mode: str = "dot"  # "dot", "concat" (Attention) or "additive" (AdditiveAttention)
    use_scale: bool = False
    causal: bool = False
    has_key: bool = False
    name: str = ""
    kind: str = "attention"

    @property
    def output_size(self) -> int:
        """Width of the layer's output: the value's."""
        return self.value_size

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> AttentionSpec:
        """The spec of a manifest entry."""
        return cls(
            entry["query_size"], entry["value_size"], entry.get("score_mode", "dot"), entry.get("use_scale", False),
            entry.get("causal", False), entry.get("has_key", False), entry.get("name", ""),
        )  # fmt: skip

    def to_entry(self) -> dict[str, Any]:
        """The normalised manifest entry."""
        return {
            "kind": "attention",
            "query_size": self.query_size,
            "value_size": self.value_size,
            "score_mode": self.score_mode,
            "use_scale": self.use_scale,
            "causal": self.causal,
            "has_key": self.has_key,
        }

    def describe(self, reads: str) -> str:
        """The ``info`` line."""
        title = "AdditiveAttention" if self.score_mode == "additive" else f"Attention(score_mode={self.score_mode})"
        return f"{title}{reads}: query {self.query_size}, value {self.value_size} -> {self.value_size}"

    def infer(self, parts: Sequence[Port], where: str, is_output: bool) -> Port:
        """Query, value (and key: as wide as the query) are sequences; the output has the query's steps."""
        _attention_parts(parts, where, (self.query_size, self.value_size, self.query_size), self.has_key)
        if not self.has_key and self.value_size != self.query_size:
            raise LayoutError(f"{where}: without a key input the key is the value, so value_size must equal query_size")
        return Port(True, self.value_size, False, "")


@dataclass(frozen=True)
class MultiHeadAttentionSpec(Spec):
    """Keras ``MultiHeadAttention`` on sequences (B, T, F) (attention over the time axis).

    CP-LRP (default, ``RuleSet(attention=...)``): the ε-rule through the value projection, the weighted
    sum (the attention weights are constants) and the output projection, with bias share.
    """

    kinds: ClassVar[tuple[str, ...]] = ("multi_head_attention",)
    rule_kind: ClassVar[str | None] = "attention"
    num_heads: int
    key_dim: int
    value_dim: int
    query_size: int
    value_size: int
    key_size: int
    out_size: int
    use_bias: bool = True
    causal: bool = False
    has_key: bool = False
    name: str = ""
    kind: str = "multi_head_attention"

    @property
    def output_size(self) -> int:
        """Width of the layer's output."""
        return self.out_size

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> MultiHeadAttentionSpec:
        """The spec of a manifest entry."""
        return cls(
            entry["num_heads"], entry["key_dim"], entry["value_dim"], entry["query_size"], entry["value_size"],
            entry["key_size"], entry["out_size"], entry.get("use_bias", True), entry.get("causal", False),
            entry.get("has_key", False), entry.get("name", ""),
        )  # fmt: skip

    def to_entry(self) -> dict[str, Any]:
        """The normalised manifest entry."""
        return {
            "kind": "multi_head_attention",
            "num_heads": self.num_heads,
            "key_dim": self.key_dim,
            "value_dim": self.value_dim,
            "query_size": self.query_size,
            "value_size": self.value_size,
            "key_size": self.key_size,
            "out_size": self.out_size,
            "use_bias": self.use_bias,
            "causal": self.causal,
            "has_key": self.has_key,
        }

    def describe(self, reads: str) -> str:
        """The ``info`` line."""
        return (
            f"MultiHeadAttention(num_heads={self.num_heads}, key_dim={self.key_dim}, value_dim={self.value_dim})"
            f"{reads}: query {self.query_size}, value {self.value_size} -> {self.out_size}"
        )

    def infer(self, parts: Sequence[Port], where: str, is_output: bool) -> Port:
        """Query, value (and key) are sequences of the declared widths; the output has the query's steps."""
        _attention_parts(parts, where, (self.query_size, self.value_size, self.key_size), self.has_key)
        if not self.has_key and self.key_size != self.value_size:
            raise LayoutError(f"{where}: without a key input the key is the value: set key_size to {self.value_size}")
        return Port(True, self.out_size, False, "")


@dataclass(frozen=True)
class SelectStepSpec(SameWidthSpec):
    """One time step of a sequence (B, T, F) -> (B, F): Keras ``x[:, t, :]``, PyTorch ``out[:, t]``.

    ``step`` counts from the start (0, 1, ...) or, when negative, from the end (-1 is the last
    step). Relevance goes to the selected step only: no rule.
    """

    kinds: ClassVar[tuple[str, ...]] = ("select_step",)
    step: int
    features: int
    name: str = ""
    kind: str = "select_step"

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


@dataclass(frozen=True)
class SoftmaxSpec(SameWidthSpec):
    """A softmax over the time axis of a sequence (B, T, F) -> (B, T, F), each feature on its own.

    Keras ``Softmax(axis=1)``, PyTorch ``torch.softmax(scores, dim=1)``: the attention weights of an
    attention pooling (``weighted_sum`` reads them). Masked steps get the weight 0 (Keras's masked
    softmax). CP-LRP (default, ``RuleSet(attention=...)``): it passes no relevance (the weights are
    constants); AttnLRP: its softmax rule.
    """

    kinds: ClassVar[tuple[str, ...]] = ("softmax",)
    rule_kind: ClassVar[str | None] = "attention"
    features: int
    name: str = ""
    kind: str = "softmax"

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> SoftmaxSpec:
        """The spec of a manifest entry."""
        return cls(entry["features"], entry.get("name", ""))

    def to_entry(self) -> dict[str, Any]:
        """The normalised manifest entry."""
        return {"kind": "softmax", "features": self.features}

    def describe(self, reads: str) -> str:
        """The ``info`` line."""
        return f"Softmax(over time){reads}: {self.features} -> {self.features}"

    def infer(self, parts: Sequence[Port], where: str, is_output: bool) -> Port:
        """It reads a sequence and outputs one of the same shape."""
        _one_input(parts, where, self.features, want="sequence")
        return Port(True, self.features, False, "")


@dataclass(frozen=True)
class WeightedSumSpec(SameWidthSpec):
    """The attention pooling's weighted sum over time: (weights (B, T, 1), values (B, T, F)) -> (B, F).

    ``o_j = Σ_t w_t v_tj``: Keras ``Dot(axes=1)([weights, values])`` (then a flatten), PyTorch
    ``(w * out).sum(dim=1)`` / ``torch.bmm(w.transpose(1, 2), out).squeeze(1)``. With ``per_step``
    the products ``w_t v_tj`` themselves (B, T, F) (Keras ``Multiply()([values, weights])``, summed
    over time by a ``global_sum_pooling`` after it). CP-LRP (default):
    the weights are constants, the values take all the relevance by the ε-rule over the T terms
    (conserving at bias_factor = 1 when the weights sum to 1: the converters read softmax weights only).
    """

    kinds: ClassVar[tuple[str, ...]] = ("weighted_sum",)
    rule_kind: ClassVar[str | None] = "attention"
    features: int
    per_step: bool = False
    name: str = ""
    kind: str = "weighted_sum"

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> WeightedSumSpec:
        """The spec of a manifest entry."""
        return cls(entry["features"], entry.get("per_step", False), entry.get("name", ""))

    def to_entry(self) -> dict[str, Any]:
        """The normalised manifest entry."""
        return {"kind": "weighted_sum", "features": self.features, "per_step": self.per_step}

    def describe(self, reads: str) -> str:
        """The ``info`` line."""
        what = "WeightedProduct(per step)" if self.per_step else "WeightedSum(over time)"
        return f"{what}{reads}: weights 1, values {self.features} -> {self.features}"

    def infer(self, parts: Sequence[Port], where: str, is_output: bool) -> Port:
        """Weights (width 1) and values (width ``features``), both sequences; one vector out."""
        if len(parts) != 2:
            raise LayoutError(f"{where} reads {len(parts)} inputs; it takes two (weights, values)")
        for part, role, width in zip(parts, ("weights", "values"), (1, self.features), strict=True):
            if part.tokens:
                raise LayoutError(f"{where} reads the token ids of {part.what}: put an embedding layer in between")
            if not part.sequence:
                raise LayoutError(f"{where}: its {role} {part.what} is one vector per sample; it sums over time")
            if part.width != width:
                raise LayoutError(
                    f"{where}: its {role} {part.what} outputs width {part.width}; they must be {width} wide"
                )
        return Port(self.per_step, self.features, False, "")


LayerSpec = Spec
_SPEC_CLASSES: tuple[type[Spec], ...] = (EmbeddingSpec, RecurrentSpec, DenseSpec, ConcatenateSpec, PoolingSpec)
_SPEC_CLASSES += (ConvSpec, Pooling1DSpec, RepeatVectorSpec, SliceSpec, Seq2SeqSpec)
_SPEC_CLASSES += (ActivationSpec, PReLUSpec, NormalizationSpec, MergeSpec, MultiplySpec)
_SPEC_CLASSES += (AttentionSpec, MultiHeadAttentionSpec)
_SPEC_CLASSES += (SelectStepSpec, FlattenSpec, SoftmaxSpec, WeightedSumSpec)
#: manifest kind -> spec class (the registry the manifest reader, the writer and the shape check read)
SPEC_TYPES: Mapping[str, type[Spec]] = MappingProxyType(
    {
        kind: cls
        for cls in _SPEC_CLASSES
        for kind in cls.kinds
    }
)
#: every node kind a manifest may name (the recurrent kinds are those of :data:`GATES`)
NODE_KINDS: tuple[str, ...] = tuple(SPEC_TYPES)


@dataclass(frozen=True)
class InputSpec:
    """One input of the network.

    (B, T, features) floats, (B, T) token ids when ``tokens``, or one vector per sample
    (B, features) when not ``sequence`` (static features).
    """

    name: str
    features: int
    tokens: bool = False
    #: Keras ``Masking``: a step whose features all equal this value is masked (None: no masking).
    mask_value: float | None = None
    #: Keras ``TextVectorization`` in front of a token input: raw strings are tokenized by it.
    text: TextVectorizer | None = None
    #: whether the input has a time axis (B, T, features); False: one vector per sample (B, features).
    sequence: bool = True


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
    def output_time_input(self) -> int:
        """The input whose time axis a per-step output follows (each node's ``time_from`` edge, back to an input)."""
        edge: Edge = len(self.layers) - 1
        while edge >= 0:
            edge = self.edges[edge][type(self.layers[edge]).time_from]
        return -1 - edge

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
        own = layer.array_specs(index)
        if own is not None:
            specs.extend(own)
            continue
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


def layer_array_specs(layers: Sequence[LayerSpec]) -> tuple[ArraySpec, ...]:
    """The weight arrays of ``layers``, in order, each with the index of the layer that owns it."""
    return _array_specs(layers)


def _layer_attrs(layer: LayerSpec) -> dict[str, Any]:
    attrs = dict(layer.__dict__)
    attrs.update(getattr(layer, "derived_sizes", {}))  # e.g. conv1d's group_size
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
        layers.append(SPEC_TYPES[entry["kind"]].from_entry(entry))
    if manifest.get("version", FORMAT_VERSION) == GRAPH_VERSION:
        return _validate_graph(manifest, layers)
    forecasters = [layer for layer in layers if isinstance(layer, Seq2SeqSpec)]
    if forecasters:  # the forecaster's own (version 1) manifest: the graph of its three inputs and one node
        if len(layers) != 1:
            raise LayoutError(
                f"a forecaster manifest has exactly one layer of kind 'seq2seq'; got kinds {[x.kind for x in layers]}"
            )
        return forecaster_layout(forecasters[0])
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
            entry.get("sequence", True),
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
        if not spec.sequence and (spec.tokens or spec.mask_value is not None):
            raise LayoutError(
                f"input {spec.name!r} is one vector per sample (\"sequence\": false): it can have no token ids "
                "and no mask_value; remove them or make it a sequence"
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
            return Port(spec.sequence, spec.features, spec.tokens, f"input {spec.name!r}")
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
            if not spec.sequence:
                item["sequence"] = False
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
    if isinstance(weights, Mapping) and len(layout.layers) == 1 and not any(s.key in weights for s in specs):
        # a one-node network's arrays may be keyed by name alone (the forecaster's own files)
        weights = {f"0/{key}": value for key, value in weights.items()}
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
