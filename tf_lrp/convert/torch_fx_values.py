"""What flows on a torch.fx edge as the converter sees it, and the converter that writes the graph.

Values (:class:`_Seq`, :class:`_Vec`, ...) stand for the tensors of a traced ``forward``: which node
outputs make up their feature axis and in which torch layout they lie; :class:`_Converter`
collects the layout specs and weights those values are made of.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConversionError, LayoutError
from ..layout import (
    ConcatenateSpec,
    Edge,
    InputSpec,
    LayerSpec,
    Port,
    SelectStepSpec,
    input_edge,
    to_manifest,
    validate_manifest,
)
from . import Converted

# --------------------------------------------------------------------------------------------
# Values: what flows on an fx edge, as the converter sees it


#: a part of a value's feature axis: an edge (node output or input), or a lazy time step of one
Part = tuple[Any, int]  # (edge | ("step", edge, t), width)


@dataclass(frozen=True)
class _Seq:
    """A sequence whose features are ``parts`` side by side; ``axes`` its torch layout.

    ``axes`` is ``"bt"`` (batch, time, ...), ``"tb"`` (time, batch, ...), ``"bf"`` (batch, features,
    time: channels-first, what ``nn.Conv1d`` reads), or ``"in"`` / ``"ni"``: the module input's layout
    (not known yet) or its transpose.
    """

    parts: tuple[Part, ...]
    axes: str
    tokens: bool = False

    @property
    def width(self) -> int:
        return sum(w for _, w in self.parts)


@dataclass(frozen=True)
class _Vec:
    """One vector per sample (batch, features): ``parts`` side by side."""

    parts: tuple[Part, ...]

    @property
    def width(self) -> int:
        return sum(w for _, w in self.parts)


@dataclass(frozen=True)
class _Stack:
    """``h_n``: final states stacked on axis 0 (``batch_first``: after ``transpose(0, 1)``)."""

    items: tuple[_Vec, ...]
    batch_first: bool = False


@dataclass(frozen=True)
class _Opaque:
    """A value tf_lrp cannot use (an LSTM's ``c_n``, argmax indices); refused when read."""

    what: str


@dataclass(frozen=True)
class _Size:
    """A size read off a tensor (``x.size(0)``, ``x.shape``): reshape arguments and pooling windows use it.

    ``letter``: the axis it is the size of (b, t or f) where known; ``letters``: a whole ``shape``'s.
    """

    letter: str = ""
    letters: str = ""


@dataclass(frozen=True)
class _Kept:
    """A sequence pooled over time with its time axis kept (size 1): ``keepdim=True``, ``AdaptiveMaxPool1d(1)``."""

    vec: _Vec
    axis: int  # where the size-1 axis is

    @property
    def width(self) -> int:
        return self.vec.width


@dataclass(frozen=True)
class _Flat:
    """A (batch, time, F) sequence flattened to (batch, time·F): its step count comes from the nn.Linear reading it."""

    seq: _Seq


@dataclass(frozen=True)
class _WeightsAndValues:
    """Attention weights (width 1) and the values they weight, not yet summed over time."""

    weights: _Seq
    values: _Seq


@dataclass(frozen=True)
class _Weighted(_WeightsAndValues):
    """``w * out`` of attention pooling: weights times values, per step; only ``.sum(time)`` reads it."""


@dataclass(frozen=True)
class _WeightsRow:
    """``w.transpose(1, 2)``: attention weights (B, 1, T); only ``torch.bmm(·, out)`` reads it."""

    weights: _Seq


@dataclass(frozen=True)
class _Context(_WeightsAndValues):
    """``torch.bmm(w.transpose(1, 2), out)``: the weighted sum (B, 1, H); only ``.squeeze(1)`` reads it."""


_FLIP = {"bt": "tb", "tb": "bt", "in": "ni", "ni": "in"}
#: a concrete layout -> the order of its torch axes (b: batch, t: time, f: features), and back
_AXES = {"bt": "btf", "tb": "tbf", "bf": "bft"}
_LAYOUTS = {letters: name for name, letters in _AXES.items()}


def _permute_layout(layout: str, order: Sequence[int | None]) -> str | None:
    """The layout of a (3-d) sequence in ``layout`` after ``permute(order)``, or None when it is not one."""
    if sorted(d if d is not None else -1 for d in order) != [0, 1, 2]:
        return None
    letters = _AXES[layout]
    return _LAYOUTS.get("".join(letters[d] for d in order if d is not None))


def _norm_dim(dim: Any, ndim: int) -> int | None:
    if isinstance(dim, bool) or not isinstance(dim, int):
        return None
    return dim + ndim if dim < 0 else dim


def _slice_parts(parts: tuple[Part, ...], item: slice) -> tuple[Part, ...] | None:
    """The parts a feature slice keeps, or None when it cuts one."""
    total = sum(w for _, w in parts)
    start, stop, step = item.indices(total)
    if step != 1:
        return None
    kept: list[Part] = []
    offset = 0
    for part in parts:
        end = offset + part[1]
        if start <= offset and end <= stop:
            kept.append(part)
        elif end > start and offset < stop:
            return None
        offset = end
    return tuple(kept) if kept else None


# --------------------------------------------------------------------------------------------
# The converter


class _RefusalError(Exception):
    """Raised inside a handler; the walker adds the node's name and source line."""


class _Converter:
    def __init__(self, module: Any) -> None:
        self.module = module
        self.specs: list[LayerSpec] = []
        self.edges: list[tuple[Edge, ...]] = []
        self.arrays: list[list[np.ndarray]] = []
        self.ports: dict[Edge, Port] = {}
        self.names: set[str] = {"input"}
        self.input_spec: InputSpec | None = None
        self.input_layout: str | None = None  # "bt" or "tb" once known
        self.cache: dict[Any, Edge] = {}
        self.producers: dict[Edge, Any] = {}  # edge -> fx node that produced it (dense folding)

    # layout -----------------------------------------------------------------------------------

    def resolve(self, axes: str, default: str = "bt") -> str:
        """The concrete layout of ``axes`` (fixing the input's to ``default`` if still open)."""
        if axes in _AXES:
            return axes
        if self.input_layout is None:
            self.input_layout = default
        return self.input_layout if axes == "in" else _FLIP[self.input_layout]

    def require(self, axes: str, want: str) -> bool:
        """Whether ``axes`` is ``want`` (fixing the input's layout so that it is, if still open)."""
        if axes in _AXES:
            return axes == want
        if self.input_layout is None:
            self.input_layout = want if axes == "in" else _FLIP[want]
        return self.resolve(axes) == want

    # graph ------------------------------------------------------------------------------------

    def unique(self, name: str) -> str:
        base, candidate, count = name or "node", name or "node", 0
        while candidate in self.names:
            count += 1
            candidate = f"{base}_{count}"
        self.names.add(candidate)
        return candidate

    def add(self, spec: LayerSpec, reads: Sequence[Edge], arrays: Sequence[np.ndarray] = ()) -> Edge:
        spec = dataclasses.replace(spec, name=self.unique(spec.name or spec.kind))  # type: ignore[type-var]
        index = len(self.specs)
        if any(e not in self.ports for e in reads):
            raise _RefusalError(
                "reads the module's input directly; tf_lrp reads it through nn.Embedding, a recurrent module, "
                "nn.Conv1d, a normalization or "
                "nn.Linear"
            )
        try:
            port = spec.infer([self.ports[e] for e in reads], f"tf_lrp {spec.kind} {spec.name!r}", False)
        except LayoutError as exc:
            raise _RefusalError(str(exc)) from exc
        self.specs.append(spec)
        self.edges.append(tuple(reads))
        self.arrays.append(list(arrays))
        self.ports[index] = port._replace(what=f"layer {spec.name!r}")
        return index

    def input_value(self, tokens: bool, features: int) -> Edge:
        """The network input's edge, declaring what it holds on first use."""
        edge = input_edge(0)
        want = InputSpec("input", 1 if tokens else features, tokens)
        if self.input_spec is None:
            self.input_spec = want
            self.ports[edge] = Port(True, want.features, tokens, "input 'input'")
        elif self.input_spec != want:
            raise _RefusalError(
                "the module input is read both as token ids and as features (or with two widths); tf_lrp reads one "
                "(batch, time, features) or (batch, time) input"
            )
        return edge

    def edge_of(self, part: Part, name: str) -> Edge:
        """The edge of one part (a lazy time step becomes a select_step node, once)."""
        key, width = part
        if isinstance(key, tuple):
            if key not in self.cache:
                _, source, step = key
                self.cache[key] = self.add(SelectStepSpec(step, width, name=f"{name}.step{step}"), [source])
            return self.cache[key]
        return int(key)

    def materialize(self, value: _Seq | _Vec, name: str) -> Edge:
        """One edge holding ``value`` (its parts joined by a concatenate node when there are several)."""
        edges = tuple(self.edge_of(part, name) for part in value.parts)
        if len(edges) == 1:
            return edges[0]
        key = ("cat", edges)
        if key not in self.cache:
            self.cache[key] = self.add(ConcatenateSpec(tuple(w for _, w in value.parts), name=f"{name}.cat"), edges)
        return self.cache[key]

    # result -----------------------------------------------------------------------------------

    def converted(self, output: Edge, name: str) -> Converted:
        keep: set[int] = set()
        stack = [output]
        while stack:
            index = stack.pop()
            if index < 0 or index in keep:
                continue
            keep.add(index)
            stack.extend(self.edges[index])
        order = sorted(keep)
        if order[-1] != output:
            raise ConversionError(f"internal: the score node {output} is not the last of {order}")
        renumber = {old: new for new, old in enumerate(order)}
        specs = [self.specs[i] for i in order]
        edges = [tuple(e if e < 0 else renumber[e] for e in self.edges[i]) for i in order]
        weights = [array for i in order for array in self.arrays[i]]
        if self.input_spec is None:
            raise ConversionError("the module's input reaches no nn.Embedding, recurrent or nn.Linear module")
        manifest = to_manifest(specs, name=name, edges=tuple(edges), inputs=(self.input_spec,))
        try:
            validate_manifest(manifest)
        except LayoutError as exc:
            raise ConversionError(f"module {name!r} cannot be explained by tf_lrp: {exc}") from exc
        return Converted(manifest, weights)


def _like(value: _Seq | _Vec, edge: Edge, width: int) -> _Seq | _Vec:
    """A value of ``value``'s kind (and layout) held by one edge."""
    if isinstance(value, _Seq):
        return _Seq(((edge, width),), value.axes)
    return _Vec(((edge, width),))


def _describe(value: Any) -> str:
    if isinstance(value, _Seq):
        return "token ids" if value.tokens else f"a sequence of width {value.width}"
    if isinstance(value, _Vec):
        return f"a (batch, {value.width}) tensor"
    if isinstance(value, _Stack):
        return f"stacked final states h_n ({len(value.items)})"
    if isinstance(value, _Opaque):
        return value.what
    if isinstance(value, _Kept):
        return f"a pooled (batch, {value.width}, 1) tensor"
    if isinstance(value, _Flat):
        return f"a flattened sequence of width {value.seq.width} (only an nn.Linear reads it)"
    if isinstance(value, (_WeightsAndValues, _WeightsRow)):
        return "attention-pooling weights or products"
    if isinstance(value, tuple):
        return f"a tuple of {len(value)}"
    return type(value).__name__
