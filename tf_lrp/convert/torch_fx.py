"""PyTorch modules -> tf_lrp layer graphs, by tracing ``forward`` with ``torch.fx``.

:func:`from_torch_module` traces a module's ``forward`` (``torch.fx`` symbolic tracing, in eval
mode) and turns every operation between its input and the explained score into tf_lrp nodes of a
version-2 manifest, so what the head reads is what the module reads (the state_dict converter
:func:`tf_lrp.convert.torch.from_torch` has to assume the head reads the final state):

* ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` (tanh, relu; any ``num_layers``, bidirectional,
  ``batch_first`` either way; dropout is the identity at eval; ``proj_size`` refused): one
  recurrent node per layer and direction, returning its sequence (a backward direction's outputs
  aligned to the original time order, as PyTorch's). Layer k > 0 reads ``[fw ; bw]`` of layer
  k - 1 (a concatenate node). ``h_n[i]`` is the final state of layer ``i // D`` direction
  ``i % D``: step -1 of a forward direction, step 0 of a backward one (``select_step`` nodes).
  ``c_n`` (the LSTM cell state) is refused.
* ``nn.Embedding`` (``padding_idx`` row used as stored; ``max_norm`` refused) on the token input;
  ``nn.Linear`` on vectors or on every step; ``relu`` right after an ``nn.Linear`` (its
  activation); after the score layer, ``relu`` / ``tanh`` / ``sigmoid`` / ``softmax`` /
  ``log_softmax`` are skipped (the explained score is the last ``nn.Linear``'s pre-activation).
* Tensor ops: ``out[:, t]`` / ``out[t]`` (by layout) -> ``select_step``; feature slices that fall
  on direction boundaries (``out[:, -1, :H]``); ``h_n[i]``, ``h_n[a:b]`` and their
  ``transpose(0, 1).reshape(B, -1)`` / ``flatten(1)``; ``torch.cat`` on the feature axis;
  ``mean`` / ``max`` / ``amax`` over time -> ``global_average_pooling`` / ``global_max_pooling``
  (PyTorch has no masks: the mean is over every step); ``transpose`` / ``permute`` that swap batch
  and time; dropout, ``contiguous`` and dtype casts (the identity).
* Attention pooling: ``torch.softmax(scores, dim=time)`` -> ``softmax``; ``(w * out).sum(dim=time)``
  and ``torch.bmm(w.transpose(1, 2), out).squeeze(1)`` -> ``weighted_sum``; ``tanh`` right after a
  per-step ``nn.Linear`` (the scores) -> ``activation``. ``nn.MultiheadAttention`` (self or cross,
  no masks) -> ``multi_head_attention``.

Anything else is refused with a :class:`~tf_lrp.errors.ConversionError` naming the operation, the
module path and the source line (from the fx node's stack trace). torch is imported inside the
functions only: ``import tf_lrp.convert`` works without it.
"""

from __future__ import annotations

import dataclasses
import operator
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ..errors import ConversionError, LayoutError
from ..layout import (
    ActivationSpec,
    ConcatenateSpec,
    DenseSpec,
    Edge,
    EmbeddingSpec,
    InputSpec,
    LayerSpec,
    MultiHeadAttentionSpec,
    PoolingSpec,
    Port,
    RecurrentSpec,
    SelectStepSpec,
    SoftmaxSpec,
    WeightedSumSpec,
    input_edge,
    to_manifest,
    validate_manifest,
)
from . import Converted
from .torch import _gru_rows, _to_numpy

#: activations skipped after the score layer (the explained score is its pre-activation)
OUTPUT_ACTIVATIONS = ("relu", "tanh", "sigmoid", "softmax", "log_softmax")
_CELLS = {"LSTM": "lstm", "GRU": "gru", "RNN": "simple_rnn"}
_ACTIVATION_MODULES = {
    "ReLU": "relu", "Tanh": "tanh", "Sigmoid": "sigmoid", "Softmax": "softmax", "LogSoftmax": "log_softmax"
}  # fmt: skip
_FRAME = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<func>\S+)\n\s*(?P<code>[^\n]*)')


class TracedModule(NamedTuple):
    """A traced and converted PyTorch module.

    Attributes:
        converted: the version-2 manifest and its weights.
        graph_module: the ``torch.fx.GraphModule`` of the module's ``forward``.
        score: the name of the fx node whose output is the explained score.
        time_major: whether the module reads its input as (time, batch, ...).
        score_time_major: whether a per-step score comes out as (time, batch, C).
    """

    converted: Converted
    graph_module: Any
    score: str
    time_major: bool
    score_time_major: bool


# --------------------------------------------------------------------------------------------
# Values: what flows on an fx edge, as the converter sees it


#: a part of a value's feature axis: an edge (node output or input), or a lazy time step of one
Part = tuple[Any, int]  # (edge | ("step", edge, t), width)


@dataclass(frozen=True)
class _Seq:
    """A sequence whose features are ``parts`` side by side; ``axes`` its torch layout.

    ``axes`` is ``"bt"`` (batch, time, ...), ``"tb"`` (time, batch, ...), or ``"in"`` / ``"ni"``:
    the module input's layout (not known yet) or its transpose.
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
    """A size read off a tensor (``x.size(0)``, ``x.shape``): only reshape arguments use it."""


@dataclass(frozen=True)
class _Weighted:
    """``w * out`` of attention pooling: weights (width 1) times values, per step; only ``.sum(time)`` reads it."""

    weights: _Seq
    values: _Seq


@dataclass(frozen=True)
class _WeightsRow:
    """``w.transpose(1, 2)``: attention weights (B, 1, T); only ``torch.bmm(·, out)`` reads it."""

    weights: _Seq


@dataclass(frozen=True)
class _Context:
    """``torch.bmm(w.transpose(1, 2), out)``: the weighted sum (B, 1, H); only ``.squeeze(1)`` reads it."""

    weights: _Seq
    values: _Seq


_FLIP = {"bt": "tb", "tb": "bt", "in": "ni", "ni": "in"}


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
        if axes in ("bt", "tb"):
            return axes
        if self.input_layout is None:
            self.input_layout = default
        return self.input_layout if axes == "in" else _FLIP[self.input_layout]

    def require(self, axes: str, want: str) -> bool:
        """Whether ``axes`` is ``want`` (fixing the input's layout so that it is, if still open)."""
        if axes in ("bt", "tb"):
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
                "reads the module's input directly; tf_lrp reads it through nn.Embedding, a recurrent module or "
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


# --------------------------------------------------------------------------------------------
# Refusals with the source line


def _source(node: Any) -> str:
    """``file:line `code``` of the user's frame that made the fx node, or '' when unknown."""
    trace = node.meta.get("stack_trace") or getattr(node, "stack_trace", None) or ""
    frames = [m for m in _FRAME.finditer(trace) if f"{os.sep}torch{os.sep}" not in m.group("file")]
    if not frames:
        return ""
    frame = frames[-1]
    return f" at {os.path.basename(frame.group('file'))}:{frame.group('line')} `{frame.group('code').strip()}`"


def _module_path(node: Any) -> str:
    stack = node.meta.get("nn_module_stack")
    if stack:
        return str(list(stack.values())[-1][0]) or "the root module"
    return ""


def _op_name(node: Any, module: Any) -> str:
    if node.op == "call_module":
        return f"module {node.target!r} ({type(module.get_submodule(node.target)).__name__})"
    if node.op == "call_method":
        return f"Tensor.{node.target}"
    if node.op == "call_function":
        target = node.target
        owner = getattr(target, "__module__", None) or ""
        name = getattr(target, "__name__", repr(target))
        if owner in ("_operator", "operator"):
            return f"operator.{name}"
        return f"{owner + '.' if owner else 'torch.'}{name}"
    return f"{node.op} {node.target!r}"


def _refuse(node: Any, module: Any, reason: str) -> ConversionError:
    where = _module_path(node)
    inside = f" in {where!r}" if where and node.op != "call_module" else ""
    return ConversionError(f"{_op_name(node, module)} (fx node {node.name!r}{inside}){_source(node)}: {reason}")


# --------------------------------------------------------------------------------------------
# The walk


_IDENTITY_METHODS = ("contiguous", "float", "double", "half", "to", "type_as", "clone", "detach", "long", "int")


def _kind(node: Any, module: Any) -> tuple[str, str]:
    """``(family, name)`` of an fx node: ("module", class name), ("function"/"method", name)."""
    if node.op == "call_module":
        return "module", type(module.get_submodule(node.target)).__name__
    if node.op == "call_method":
        return "method", str(node.target)
    if node.op == "call_function":
        return "function", getattr(node.target, "__name__", "")
    return node.op, str(node.target)


def _activation(node: Any, module: Any) -> str | None:
    """The activation an fx node applies (relu, tanh, ...), or None."""
    family, name = _kind(node, module)
    if family == "module":
        return {
            "ReLU": "relu",
            "Tanh": "tanh",
            "Sigmoid": "sigmoid",
            "Softmax": "softmax",
            "LogSoftmax": "log_softmax",
        }.get(name)
    if family in ("function", "method") and name.rstrip("_") in OUTPUT_ACTIVATIONS:
        return name.rstrip("_")
    return None


def _is_identity(node: Any, module: Any) -> bool:
    family, name = _kind(node, module)
    if family == "module":
        return name in ("Dropout", "Dropout1d", "Dropout2d", "AlphaDropout", "FeatureAlphaDropout", "Identity")
    if family == "function":
        return name in ("dropout", "alpha_dropout", "feature_alpha_dropout")
    return family == "method" and name in _IDENTITY_METHODS


def _score_node(graph: Any, module: Any) -> tuple[Any, str]:
    """The fx node of the explained score (the output past activations and identities) and its activation."""
    outputs = [n for n in graph.nodes if n.op == "output"]
    value = outputs[0].args[0]
    if not hasattr(value, "op"):
        raise ConversionError(
            f"the module returns {type(value).__name__}; tf_lrp explains one output tensor (return the scores only)"
        )
    activation = "linear"
    while True:
        name = _activation(value, module)
        if name is not None:
            activation = name if activation == "linear" else activation
            value = value.args[0]
            continue
        if _is_identity(value, module):
            value = value.args[0]
            continue
        return value, activation


def _ancestors(node: Any) -> set[Any]:
    seen: set[Any] = set()
    stack = [node]
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        stack.extend(current.all_input_nodes)
    return seen


class _Walk:
    def __init__(self, module: Any, graph: Any) -> None:
        self.module = module
        self.graph = graph
        self.conv = _Converter(module)
        self.values: dict[Any, Any] = {}

    def run(self) -> TracedModule:
        import torch

        score, activation = _score_node(self.graph, self.module)
        needed = _ancestors(score)
        placeholders = [n for n in self.graph.nodes if n.op == "placeholder"]
        for node in self.graph.nodes:
            if node not in needed:
                continue
            if node.op == "placeholder":
                if node is placeholders[0]:
                    self.values[node] = _Seq(((input_edge(0), 0),), "in")
                elif node.args:  # an argument with a default value (e.g. lengths=None)
                    self.values[node] = node.args[0]
                else:
                    raise _refuse(
                        node,
                        self.module,
                        "the module's forward takes several tensors; tf_lrp traces a forward(x) of one input",
                    )
                continue
            if node.op == "get_attr":
                raise _refuse(
                    node, self.module, "reads a parameter or buffer directly; tf_lrp reads it through modules"
                )
            try:
                self.values[node] = self.step(node, node is score)
            except _RefusalError as exc:
                raise _refuse(node, self.module, str(exc)) from None
        result = self.values[score]
        spec_index = result.parts[0][0] if isinstance(result, (_Seq, _Vec)) and len(result.parts) == 1 else None
        if score.op != "call_module" or not isinstance(self.module.get_submodule(score.target), torch.nn.Linear):
            raise _refuse(
                score,
                self.module,
                "the module's output must be made by an nn.Linear (its pre-activation is the explained score), "
                "optionally followed by relu, tanh, sigmoid, softmax or log_softmax",
            )
        if not isinstance(spec_index, int):  # pragma: no cover - an nn.Linear makes one node
            raise ConversionError("internal: the score layer made no single node")
        if activation != "linear":
            spec = self.conv.specs[spec_index]
            self.conv.specs[spec_index] = dataclasses.replace(spec, activation=activation)  # type: ignore[type-var]
        name = type(self.module).__name__
        converted = self.conv.converted(spec_index, name)
        score_time_major = isinstance(result, _Seq) and self.conv.resolve(result.axes) == "tb"
        return TracedModule(converted, None, score.name, self.conv.input_layout == "tb", score_time_major)

    # dispatch ---------------------------------------------------------------------------------

    def arg(self, value: Any) -> Any:
        if hasattr(value, "op") and value in self.values:
            return self.values[value]
        if isinstance(value, (list, tuple)):
            return type(value)(self.arg(v) for v in value)
        return value

    def step(self, node: Any, is_score: bool) -> Any:
        args = [self.arg(a) for a in node.args]
        kwargs = {k: self.arg(v) for k, v in node.kwargs.items()}
        family, name = _kind(node, self.module)
        if _is_identity(node, self.module):
            return args[0]
        activation = _activation(node, self.module)
        if activation == "softmax":
            return self.softmax(node, args, kwargs)
        if activation == "tanh" and self.folds_tanh(node, args):
            return self.tanh(node, args)
        if activation is not None and activation != "relu":
            raise _RefusalError(
                f"{activation} before the score layer has no tf_lrp node (hidden layers use relu or nothing); "
                f"{activation} is supported after the last nn.Linear only (the explained score is its pre-activation)"
            )
        if family == "module":
            sub = self.module.get_submodule(node.target)
            if name in _CELLS:
                return self.recurrent(node, sub, args, kwargs)
            if name == "Embedding":
                return self.embedding(node, sub, args)
            if name == "Linear":
                return self.linear(node, sub, args)
            if name == "ReLU":
                return self.relu(node, args)
            if name == "MultiheadAttention":
                return self.multihead_attention(node, sub, args, kwargs)
            raise _RefusalError(
                f"is not supported; tf_lrp converts nn.LSTM, nn.GRU, nn.RNN, nn.Embedding, nn.Linear, nn.ReLU "
                f"(after an nn.Linear) and dropout modules (module path {node.target!r})"
            )
        if family == "function" and node.target is operator.getitem:
            return self.getitem(args[0], args[1])
        if family == "function" and name == "getattr":
            return self.getattr(args[0], args[1])
        method = name if family in ("method", "function") else ""
        if method in ("relu", "relu_"):
            return self.relu(node, args)
        if method in ("cat", "concat", "concatenate"):
            return self.cat(args[0], kwargs.get("dim", args[1] if len(args) > 1 else 0))
        if method in ("transpose", "swapaxes", "swapdims"):
            dims = [kwargs.get(k) for k in ("dim0", "dim1")] if len(args) < 3 else args[1:3]
            if self.is_weights_row(args[0], dims):
                return _WeightsRow(args[0])
            return self.transpose(args[0], dims)
        if method in ("mul", "bmm", "matmul"):
            return self.weigh(method, args)
        if method == "permute":
            order = list(args[1] if len(args) == 2 and isinstance(args[1], (list, tuple)) else args[1:])
            return self.permute(args[0], order or list(kwargs.get("dims", ())))
        if method in ("mean", "max", "amax"):
            return self.pool(node, method, args, kwargs)
        if method == "sum":
            return self.sum(node, args, kwargs)
        if method == "size" or (family == "function" and name == "getattr"):
            return _Size()
        if method == "squeeze" and isinstance(args[0], _Context):
            return self.squeeze_context(node, args, kwargs)
        if method in ("reshape", "view", "flatten", "squeeze"):
            return self.reshape(method, args, kwargs)
        raise _RefusalError("is not supported between the input and the score layer (see docs/pytorch.md for the list)")

    # handlers ---------------------------------------------------------------------------------

    def recurrent(self, node: Any, rnn: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
        conv = self.conv
        cell = _CELLS[type(rnn).__name__]
        if len(args) > 1 or kwargs.get("hx") is not None:
            initial = args[1] if len(args) > 1 else kwargs.get("hx")
            if initial is not None:
                raise _RefusalError("is called with an initial state; tf_lrp starts every recurrent layer from zeros")
        x = args[0]
        if not isinstance(x, _Seq) or x.tokens:
            what = "token ids: put an nn.Embedding in between" if isinstance(x, _Seq) else "no sequence"
            raise _RefusalError(f"reads {what}")
        if getattr(rnn, "proj_size", 0):
            raise _RefusalError(
                f"proj_size={rnn.proj_size}: an LSTM with a projected state has no tf_lrp (Keras) equivalent; "
                "use proj_size=0"
            )
        want = "bt" if rnn.batch_first else "tb"
        if not conv.require(x.axes, want):
            raise _RefusalError(
                f"batch_first={rnn.batch_first} but it reads a tensor laid out "
                f"{'(batch, time, ...)' if want == 'tb' else '(time, batch, ...)'}"
            )
        if x.parts and x.parts[0][0] == input_edge(0):
            x = _Seq(((conv.input_value(False, rnn.input_size), rnn.input_size),), x.axes)
        if x.width != rnn.input_size:
            raise _RefusalError(f"input_size={rnn.input_size} but it reads {x.width} features")
        activation = "tanh" if cell != "simple_rnn" else str(rnn.nonlinearity)
        if activation not in ("tanh", "relu"):
            raise _RefusalError(f"nonlinearity={activation!r} is not supported; use 'tanh' or 'relu'")
        units, gates = rnn.hidden_size, {"lstm": 4, "gru": 3, "simple_rnn": 1}[cell]
        suffixes = ("", "_reverse") if rnn.bidirectional else ("",)
        layer_input = x
        finals: list[_Vec] = []
        for layer in range(rnn.num_layers):
            source = conv.materialize(layer_input, f"{node.target}.l{layer}")
            parts: list[Part] = []
            for suffix in suffixes:
                arrays = _rnn_arrays(rnn, cell, f"_l{layer}{suffix}", units, gates)
                spec = RecurrentSpec(
                    cell=cell,
                    units=units,
                    input_size=layer_input.width,
                    direction="backward" if suffix else "forward",
                    return_sequences=True,
                    activation=activation,
                    use_bias=bool(rnn.bias),
                    name=f"{node.target}.l{layer}{suffix}",
                )
                edge = conv.add(spec, [source], arrays)
                parts.append((edge, units))
                finals.append(_Vec(((("step", edge, 0 if suffix else -1), units),)))
            layer_input = _Seq(tuple(parts), want)
        h_n = _Stack(tuple(finals))
        if cell == "lstm":
            c_n = _Opaque(f"the cell state c_n of {node.target!r} (tf_lrp explains through the hidden states h)")
            return (layer_input, (h_n, c_n))
        return (layer_input, h_n)

    def embedding(self, node: Any, table: Any, args: list[Any]) -> Any:
        x = args[0]
        if not (isinstance(x, _Seq) and x.parts == ((input_edge(0), 0),)):
            raise _RefusalError("must read the module's input (token ids) directly")
        if table.max_norm is not None:
            raise _RefusalError(
                "max_norm renormalises rows in the forward pass; tf_lrp reads a fixed table: max_norm=None"
            )
        source = self.conv.input_value(True, 1)
        weights = _to_numpy(table.weight, f"{node.target}.weight")
        spec = EmbeddingSpec(weights.shape[0], weights.shape[1], False, name=str(node.target))
        edge = self.conv.add(spec, [source], [weights])
        return _Seq(((edge, weights.shape[1]),), x.axes)

    def linear(self, node: Any, linear: Any, args: list[Any]) -> Any:
        x = args[0]
        if isinstance(x, _Seq) and (x.tokens or x.parts[0][0] == input_edge(0)):
            if x.tokens:
                raise _RefusalError("reads token ids: put an nn.Embedding in between")
            x = _Seq(((self.conv.input_value(False, linear.in_features), linear.in_features),), x.axes)
        if not isinstance(x, (_Seq, _Vec)):
            raise _RefusalError(f"reads {_describe(x)}; an nn.Linear reads features")
        if x.width != linear.in_features:
            raise _RefusalError(f"in_features={linear.in_features} but it reads {x.width} features")
        source = self.conv.materialize(x, str(node.target))
        arrays = [_to_numpy(linear.weight, f"{node.target}.weight").T.copy()]
        if linear.bias is not None:
            arrays.append(_to_numpy(linear.bias, f"{node.target}.bias"))
        spec = DenseSpec(linear.out_features, linear.in_features, "linear", linear.bias is not None, str(node.target))
        edge = self.conv.add(spec, [source], arrays)
        self.conv.producers[edge] = node
        if isinstance(x, _Seq):
            return _Seq(((edge, linear.out_features),), x.axes)
        return _Vec(((edge, linear.out_features),))

    def relu(self, node: Any, args: list[Any]) -> Any:
        x = args[0]
        source: Any = node.args[0]
        if isinstance(x, (_Seq, _Vec)) and len(x.parts) == 1 and isinstance(x.parts[0][0], int):
            edge = x.parts[0][0]
            spec = self.conv.specs[edge] if edge >= 0 else None
            if (
                isinstance(spec, DenseSpec)
                and spec.activation == "linear"
                and self.conv.producers.get(edge) is source
                and len(getattr(source, "users", ())) == 1
            ):
                self.conv.specs[edge] = dataclasses.replace(spec, activation="relu")
                return x
        raise _RefusalError(
            "tf_lrp applies relu only as the activation of the nn.Linear right before it (read by nothing else); "
            "relu on other tensors has no tf_lrp node"
        )

    # attention pooling and nn.MultiheadAttention -----------------------------------------------

    def time_axis(self, value: _Seq) -> int:
        """The time axis of a sequence in torch's layout (1 for batch_first, else 0)."""
        return 1 if self.conv.resolve(value.axes) == "bt" else 0

    def softmax(self, node: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
        """``torch.softmax(scores, dim=time)`` (function, method or ``nn.Softmax``) -> a softmax node."""
        x = args[0]
        if node.op == "call_module":
            dim = self.module.get_submodule(node.target).dim
        else:
            dim = kwargs.get("dim", args[1] if len(args) > 1 else None)
        if not isinstance(x, _Seq) or x.tokens or x.parts[0][0] == input_edge(0):
            raise _RefusalError(
                f"softmax of {_describe(x)} before the score layer; tf_lrp reads a softmax over the time axis of "
                "per-step scores (attention pooling: torch.softmax(self.att(out), dim=1))"
            )
        if _norm_dim(dim, 3) != self.time_axis(x):
            raise _RefusalError(
                f"softmax over dim={dim!r}, not the time axis ({self.time_axis(x)}); before the score layer tf_lrp "
                "reads a softmax over time only (the attention weights of an attention pooling)"
            )
        source = self.conv.materialize(x, str(node.name))
        return _Seq(((self.conv.add(SoftmaxSpec(x.width, name=str(node.name)), [source]), x.width),), x.axes)

    def folds_tanh(self, node: Any, args: list[Any]) -> bool:
        """Whether ``tanh`` follows a per-step nn.Linear, read by nothing else (attention scores)."""
        x, source = args[0], node.args[0]
        if not (isinstance(x, _Seq) and len(x.parts) == 1 and isinstance(x.parts[0][0], int) and x.parts[0][0] >= 0):
            return False
        spec = self.conv.specs[x.parts[0][0]]
        return (
            isinstance(spec, DenseSpec)
            and spec.activation == "linear"
            and self.conv.producers.get(x.parts[0][0]) is source
            and len(getattr(source, "users", ())) == 1
        )

    def tanh(self, node: Any, args: list[Any]) -> Any:
        """``tanh`` right after a per-step nn.Linear (attention scores) -> an activation node."""
        x = args[0]
        edge = self.conv.add(ActivationSpec("tanh", x.width, name=str(node.name)), [x.parts[0][0]])
        return _Seq(((edge, x.width),), x.axes)

    def is_softmax(self, value: _Seq) -> bool:
        """Whether ``value`` is the output of a softmax node (attention weights: they sum to 1 over time)."""
        edge = value.parts[0][0] if len(value.parts) == 1 else None
        return isinstance(edge, int) and edge >= 0 and isinstance(self.conv.specs[edge], SoftmaxSpec)

    def is_weights_row(self, value: Any, dims: Sequence[Any]) -> bool:
        """Whether ``value.transpose(*dims)`` turns batch-first weights (B, T, 1) into (B, 1, T) for ``torch.bmm``."""
        return (
            isinstance(value, _Seq)
            and not value.tokens
            and value.width == 1
            and self.is_softmax(value)
            and sorted(_norm_dim(d, 3) or 0 for d in dims) == [1, 2]
            and self.conv.resolve(value.axes) == "bt"
        )

    def weigh(self, method: str, args: list[Any]) -> Any:
        """``w * out`` (either order) and ``torch.bmm(w.transpose(1, 2), out)``: the products of attention pooling."""
        first, second = args[0], args[1] if len(args) > 1 else None
        if method == "mul" and isinstance(first, _Seq) and isinstance(second, _Seq):
            weights, values = (first, second) if first.width == 1 else (second, first)
            same = self.conv.resolve(weights.axes) == self.conv.resolve(values.axes)
            if weights.width == 1 and same and not weights.tokens and not values.tokens and self.is_softmax(weights):
                return _Weighted(weights, values)
        row = method in ("bmm", "matmul") and isinstance(first, _WeightsRow)
        if row and isinstance(second, _Seq) and self.conv.resolve(second.axes) == "bt" and not second.tokens:
            return _Context(first.weights, second)
        raise _RefusalError(
            f"{method} of {_describe(first)} and {_describe(second)}; tf_lrp reads products only in attention "
            "pooling: (w * out).sum(dim=1) or torch.bmm(w.transpose(1, 2), out).squeeze(1), w = torch.softmax(scores, "
            "dim=1) of width 1"
        )

    def weighted_sum(self, name: str, weights: _Seq, values: _Seq) -> _Vec:
        """The weighted_sum node of ``Σ_t w_t out_t``."""
        reads = [self.conv.materialize(weights, name), self.conv.materialize(values, name)]
        return _Vec(((self.conv.add(WeightedSumSpec(values.width, name=name), reads), values.width),))

    def sum(self, node: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
        """``(w * out).sum(dim=time)`` -> a weighted_sum node; a plain sum over time is refused."""
        value = args[0]
        dim = kwargs.get("dim", args[1] if len(args) > 1 else None)
        keepdim = kwargs.get("keepdim", args[2] if len(args) > 2 else False)
        if not isinstance(value, _Weighted):
            raise _RefusalError(
                "a sum over time has no tf_lrp node (it is T times the mean, and T varies); use .mean(dim) "
                "(global_average_pooling) or .max(dim), or weigh the steps first (attention pooling: "
                "(w * out).sum(dim=1) with w = torch.softmax(scores, dim=1))"
            )
        if keepdim or _norm_dim(dim, 3) != self.time_axis(value.values):
            raise _RefusalError(
                f"sums the weighted steps over dim={dim!r} (keepdim={keepdim!r}); tf_lrp reads the sum over the time "
                f"axis ({self.time_axis(value.values)}) without keepdim"
            )
        return self.weighted_sum(str(node.name), value.weights, value.values)

    def squeeze_context(self, node: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
        """``torch.bmm(w.transpose(1, 2), out).squeeze(1)`` -> a weighted_sum node."""
        dim = kwargs.get("dim", args[1] if len(args) > 1 else None)
        if _norm_dim(dim, 3) != 1:
            raise _RefusalError(
                f"squeeze(dim={dim!r}) of the weighted sum (B, 1, H); tf_lrp reads .squeeze(1) (a bare squeeze() "
                "would also drop a batch of one)"
            )
        context = args[0]
        return self.weighted_sum(str(node.name), context.weights, context.values)

    def multihead_attention(self, node: Any, mha: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
        """``nn.MultiheadAttention(query, key, value)`` -> a multi_head_attention node (weights unsupported)."""
        names = ("query", "key", "value")
        order = (*names, "key_padding_mask", "need_weights", "attn_mask", "average_attn_weights", "is_causal")
        given = dict(zip(order, args, strict=False))
        given.update(kwargs)
        for option in ("key_padding_mask", "attn_mask"):
            if given.get(option) is not None:
                raise _RefusalError(
                    f"is called with {option}; tf_lrp's attention reads no masks from PyTorch: call it without one"
                )
        if given.get("is_causal"):
            raise _RefusalError("is_causal=True is not supported; call it without a causal mask")
        if mha.bias_k is not None or mha.add_zero_attn:
            raise _RefusalError("add_bias_kv / add_zero_attn are not supported; use the defaults (False)")
        if not set(names) <= set(given):
            raise _RefusalError("needs query, key and value")
        query, key, value = (given[n] for n in names)
        want = "bt" if mha.batch_first else "tb"
        for role, part in zip(names, (query, key, value), strict=True):
            if not isinstance(part, _Seq) or part.tokens or part.parts[0][0] == input_edge(0):
                raise _RefusalError(
                    f"its {role} is {_describe(part)}; tf_lrp attends over recurrent or projected states"
                )
            if not self.conv.require(part.axes, want):
                raise _RefusalError(f"batch_first={mha.batch_first} but its {role} is laid out the other way")
        heads, width = int(mha.num_heads), int(mha.embed_dim)
        head_dim = width // heads
        has_key = key != value
        reads = [self.conv.materialize(query, str(node.target)), self.conv.materialize(value, str(node.target))]
        if has_key:
            reads.append(self.conv.materialize(key, str(node.target)))
        spec = MultiHeadAttentionSpec(
            num_heads=heads, key_dim=head_dim, value_dim=head_dim, query_size=query.width, value_size=value.width,
            key_size=key.width, out_size=width, use_bias=mha.in_proj_bias is not None, has_key=has_key,
            name=str(node.target),
        )  # fmt: skip
        edge = self.conv.add(spec, reads, _mha_arrays(mha, str(node.target), head_dim))
        return (_Seq(((edge, width),), query.axes), _Opaque(f"the attention weights of {node.target!r}"))

    def getitem(self, value: Any, key: Any) -> Any:
        if isinstance(value, tuple):
            if isinstance(key, int) and not isinstance(key, bool):
                return value[key]
            raise _RefusalError(f"indexes a tuple with {key!r}")
        if isinstance(value, _Opaque):
            raise _RefusalError(f"reads {value.what}")
        if isinstance(value, _Size):
            return _Size()
        if isinstance(value, _Stack):
            return self.stack_item(value, key)
        items = list(key) if isinstance(key, tuple) else [key]
        if isinstance(value, _Vec):
            return self.vec_item(value, items, key)
        if isinstance(value, _Seq):
            return self.seq_item(value, items, key)
        raise _RefusalError(f"indexes {_describe(value)}")

    def vec_item(self, value: _Vec, given: list[Any], key: Any) -> Any:
        items = _expand(given, 2)
        if items is None or not _full(items[0]) or not isinstance(items[1], slice):
            raise _RefusalError(f"indexes a (batch, features) tensor with {key!r}; tf_lrp reads v[:, a:b] there")
        parts = _slice_parts(value.parts, items[1])
        if parts is None:
            raise _RefusalError(_CUT.format(key=key))
        return _Vec(parts)

    def seq_item(self, value: _Seq, items: list[Any], key: Any) -> Any:
        if value.tokens or value.parts[0][0] == input_edge(0):
            raise _RefusalError("indexes the module's input; tf_lrp reads the whole input (slice your data instead)")
        expanded = _expand(items, 3)
        if expanded is None:
            raise _RefusalError(f"indexes a sequence with {key!r}")
        axes = self.conv.resolve(value.axes)
        batch, time = (expanded[0], expanded[1]) if axes == "bt" else (expanded[1], expanded[0])
        features = expanded[2]
        if not _full(batch):
            raise _RefusalError(f"indexes the batch axis with {key!r}; tf_lrp explains every sample of the batch")
        parts = value.parts
        if not _full(features):
            if not isinstance(features, slice):
                raise _RefusalError(
                    f"picks one feature with {key!r}; tf_lrp reads whole directions (slices such as [:H])"
                )
            cut = _slice_parts(parts, features)
            if cut is None:
                raise _RefusalError(_CUT.format(key=key))
            parts = cut
        if _full(time):
            return _Seq(parts, value.axes)
        if isinstance(time, bool) or not isinstance(time, int):
            raise _RefusalError(f"slices the time axis with {key!r}; tf_lrp reads one step (out[:, t]) or all of them")
        return _Vec(tuple((("step", self.conv.edge_of((p, w), "select"), time), w) for p, w in parts))

    def stack_item(self, value: _Stack, key: Any) -> Any:
        items = list(key) if isinstance(key, tuple) else [key]
        expanded = _expand(items, 3)
        if expanded is None:
            raise _RefusalError(f"indexes h_n with {key!r}")
        layer, batch = (expanded[1], expanded[0]) if value.batch_first else (expanded[0], expanded[1])
        if not _full(batch) or not _full(expanded[2]):
            raise _RefusalError(f"indexes h_n with {key!r}; tf_lrp reads whole states h_n[i] or h_n[a:b]")
        if isinstance(layer, slice):
            chosen = value.items[layer]
            if not chosen:
                raise _RefusalError(f"h_n{key!r} is empty")
            return _Stack(chosen, value.batch_first)
        if isinstance(layer, bool) or not isinstance(layer, int):
            raise _RefusalError(f"indexes h_n with {key!r}")
        try:
            return value.items[layer]
        except IndexError:
            raise _RefusalError(f"h_n has {len(value.items)} states; index {layer} is out of range") from None

    def getattr(self, value: Any, name: Any) -> Any:
        if name == "shape":
            return _Size()
        if name == "values" and isinstance(value, tuple) and len(value) == 2:
            return value[0]
        if name == "indices" and isinstance(value, tuple):
            return value[1]
        raise _RefusalError(f"reads attribute {name!r} of {_describe(value)}")

    def cat(self, values: Any, dim: Any) -> Any:
        if not isinstance(values, (list, tuple)) or not values:
            raise _RefusalError("concatenates no list of tensors")
        if all(isinstance(v, _Vec) for v in values) and _norm_dim(dim, 2) == 1:
            return _Vec(tuple(p for v in values for p in v.parts))
        if all(isinstance(v, _Seq) and not v.tokens for v in values) and _norm_dim(dim, 3) == 2:
            layouts = {self.conv.resolve(v.axes) for v in values}
            if len(layouts) == 1:
                return _Seq(tuple(p for v in values for p in v.parts), values[0].axes)
        stacks = all(isinstance(v, _Stack) for v in values) and len({v.batch_first for v in values}) == 1
        if stacks and _norm_dim(dim, 3) == (1 if values[0].batch_first else 0):
            return _Stack(tuple(i for v in values for i in v.items), values[0].batch_first)
        raise _RefusalError(
            f"concatenates {', '.join(_describe(v) for v in values)} along dim={dim!r}; tf_lrp joins vectors or "
            "sequences (of one layout) on the feature axis (dim=-1)"
        )

    def transpose(self, value: Any, dims: Sequence[Any]) -> Any:
        if isinstance(value, _Seq) and sorted(_norm_dim(d, 3 if not value.tokens else 2) or 0 for d in dims) == [0, 1]:
            return _Seq(value.parts, _FLIP[value.axes], value.tokens)
        if isinstance(value, _Stack) and sorted(_norm_dim(d, 3) or 0 for d in dims) == [0, 1]:
            return _Stack(value.items, not value.batch_first)
        raise _RefusalError(f"transposes {_describe(value)} with dims {list(dims)}; tf_lrp swaps batch and time only")

    def permute(self, value: Any, dims: list[Any]) -> Any:
        ndim = 2 if isinstance(value, _Seq) and value.tokens else 3
        order = [_norm_dim(d, ndim) for d in dims]
        if isinstance(value, (_Seq, _Stack)) and order in ([0, 1, 2][:ndim], [1, 0, 2][:ndim]):
            return value if order[0] == 0 else self.transpose(value, [0, 1])
        raise _RefusalError(f"permutes {_describe(value)} to {dims}; tf_lrp swaps batch and time only")

    def pool(self, node: Any, method: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        value = args[0]
        dim = kwargs.get("dim", args[1] if len(args) > 1 else None)
        keepdim = kwargs.get("keepdim", args[2] if len(args) > 2 else False)
        if not isinstance(value, _Seq) or value.tokens or dim is None or isinstance(dim, (list, tuple)):
            raise _RefusalError(
                f"{method} of {_describe(value)} over dim={dim!r}; tf_lrp pools a sequence over its time axis "
                "(out.mean(dim=1) for batch_first)"
            )
        if keepdim:
            raise _RefusalError("keepdim=True: tf_lrp pools to one vector per sample (keepdim=False)")
        time = 1 if self.conv.resolve(value.axes) == "bt" else 0
        if _norm_dim(dim, 3) != time:
            raise _RefusalError(f"{method} over dim={dim} is not the time axis ({time}); tf_lrp pools over time only")
        kind = "global_average_pooling" if method == "mean" else "global_max_pooling"
        parts = []
        for part in value.parts:
            source = self.conv.edge_of(part, str(node.name))
            parts.append((self.conv.add(PoolingSpec(kind, part[1], name=f"{node.name}"), [source]), part[1]))
        pooled = _Vec(tuple(parts))
        if method == "max":  # Tensor.max(dim) returns (values, indices)
            return (pooled, _Opaque("the indices of a max (argmax)"))
        return pooled

    def reshape(self, method: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        value = args[0]
        if isinstance(value, _Stack):
            if (
                method == "squeeze"
                and len(value.items) == 1
                and _norm_dim(args[1] if len(args) > 1 else 0, 3) == (1 if value.batch_first else 0)
            ):
                return value.items[0]
            if value.batch_first and _flattens(method, args[1:], kwargs, sum(i.width for i in value.items)):
                return _Vec(tuple(p for item in value.items for p in item.parts))
        if isinstance(value, _Vec) and _flattens(method, args[1:], kwargs, value.width):
            return value
        raise _RefusalError(
            f"{method} of {_describe(value)}; tf_lrp reads h_n[a:b].transpose(0, 1).reshape(B, -1) (or "
            ".flatten(1)) to join final states"
        )


_CUT = (
    "slices the features with {key!r} across a direction or layer boundary; tf_lrp splits a bidirectional "
    "output into its directions only (out[..., :H] forward, out[..., H:] backward)"
)


def _flattens(method: str, shape: Sequence[Any], kwargs: Mapping[str, Any], width: int) -> bool:
    """Whether a reshape / view / flatten call makes (batch, width) of (batch, ...)."""
    if method == "flatten":
        start = kwargs.get("start_dim", shape[0] if shape else 0)
        end = kwargs.get("end_dim", shape[1] if len(shape) > 1 else -1)
        return start == 1 and end == -1
    if method == "squeeze":
        return False
    if len(shape) == 1 and isinstance(shape[0], (list, tuple)):
        shape = shape[0]
    if len(shape) != 2:
        return False
    first, second = shape
    return (second == -1 and first != -1) or (second == width)


def _full(item: Any) -> bool:
    return item is Ellipsis or (isinstance(item, slice) and item == slice(None))


def _expand(items: list[Any], ndim: int) -> list[Any] | None:
    """Index items padded to ``ndim`` entries (Ellipsis expanded); None for ``None`` / too many."""
    if any(item is None for item in items):
        return None
    if Ellipsis in items:
        at = items.index(Ellipsis)
        fill = ndim - (len(items) - 1)
        if fill < 0 or items.count(Ellipsis) > 1:
            return None
        items = items[:at] + [slice(None)] * fill + items[at + 1 :]
    if len(items) > ndim:
        return None
    return items + [slice(None)] * (ndim - len(items))


def _describe(value: Any) -> str:
    if isinstance(value, _Seq):
        return "token ids" if value.tokens else f"a sequence of width {value.width}"
    if isinstance(value, _Vec):
        return f"a (batch, {value.width}) tensor"
    if isinstance(value, _Stack):
        return f"stacked final states h_n ({len(value.items)})"
    if isinstance(value, _Opaque):
        return value.what
    if isinstance(value, (_Weighted, _WeightsRow, _Context)):
        return "attention-pooling weights or products"
    if isinstance(value, tuple):
        return f"a tuple of {len(value)}"
    return type(value).__name__


def _rnn_arrays(rnn: Any, cell: str, suffix: str, units: int, gates: int) -> list[np.ndarray]:
    """One direction of one layer in Keras order (LSTM/RNN: biases summed; GRU: rows reordered, (2, 3H) bias)."""
    w_ih = _to_numpy(getattr(rnn, f"weight_ih{suffix}"), f"weight_ih{suffix}")
    w_hh = _to_numpy(getattr(rnn, f"weight_hh{suffix}"), f"weight_hh{suffix}")
    biases = (
        [_to_numpy(getattr(rnn, f"{kind}{suffix}"), f"{kind}{suffix}") for kind in ("bias_ih", "bias_hh")]
        if rnn.bias
        else []
    )
    if cell == "gru":
        arrays = [_gru_rows(w_ih, units).T.copy(), _gru_rows(w_hh, units).T.copy()]
        if biases:
            arrays.append(np.stack([_gru_rows(b, units) for b in biases]))
        return arrays
    arrays = [w_ih.T.copy(), w_hh.T.copy()]
    if biases:
        arrays.append(biases[0] + biases[1])
    return arrays


def _mha_arrays(mha: Any, where: str, head_dim: int) -> list[np.ndarray]:
    """``nn.MultiheadAttention``'s projections in the multi_head_attention node's Keras layout (heads, head_dim).

    PyTorch scales the scores by ``1/√head_dim`` exactly; the node applies it rounded to float32 (as
    Keras does), so the query projection carries the ratio of the two (the scores are then PyTorch's).
    """
    import math

    heads = int(mha.num_heads)
    if mha._qkv_same_embed_dim:
        q_w, k_w, v_w = np.split(_to_numpy(mha.in_proj_weight, f"{where}.in_proj_weight"), 3)
    else:
        q_w, k_w, v_w = (_to_numpy(getattr(mha, f"{n}_proj_weight"), f"{where}.{n}_proj_weight") for n in "qkv")
    exact = 1.0 / math.sqrt(head_dim)
    ratio = exact / float(np.float32(exact))
    kernels = [q_w.T * ratio, k_w.T, v_w.T]  # (D, E) each
    arrays: list[np.ndarray] = []
    biases = (
        np.split(_to_numpy(mha.in_proj_bias, f"{where}.in_proj_bias"), 3) if mha.in_proj_bias is not None else None
    )
    for index, kernel in enumerate(kernels):
        arrays.append(kernel.reshape(kernel.shape[0], heads, head_dim).copy())
        if biases is not None:
            bias = biases[index] * (ratio if index == 0 else 1.0)
            arrays.append(bias.reshape(heads, head_dim).copy())
    out_w = _to_numpy(mha.out_proj.weight, f"{where}.out_proj.weight")  # (E, E): out = context @ out_w.T
    arrays.append(out_w.T.reshape(heads, head_dim, out_w.shape[0]).copy())
    if biases is not None:
        arrays.append(_to_numpy(mha.out_proj.bias, f"{where}.out_proj.bias"))
    return arrays


# --------------------------------------------------------------------------------------------
# Public API


def _is_module(value: Any) -> bool:
    """Whether ``value`` is a ``torch.nn.Module`` (without importing torch)."""
    return any(c.__name__ == "Module" and c.__module__ == "torch.nn.modules.module" for c in type(value).__mro__)


def from_torch_module(module: Any) -> TracedModule:
    """Trace ``module.forward`` with ``torch.fx`` and convert it (see the module docstring).

    Args:
        module: a ``torch.nn.Module`` whose ``forward(x)`` takes (batch, time, features) floats
            or (batch, time) token ids (or time-major ones, read off the recurrent layers'
            ``batch_first``) and returns the scores.

    Returns:
        :class:`TracedModule`: the converted network and what :func:`torch_scores` needs.

    Raises:
        ConversionError: an operation tf_lrp cannot reproduce (named, with its module path and
            source line), or a forward that ``torch.fx`` cannot trace (data-dependent control flow).
    """
    import torch
    import torch.fx

    if not isinstance(module, torch.nn.Module):
        raise ConversionError(f"expected a torch.nn.Module; got {type(module).__name__}")
    training = module.training
    module.eval()
    try:
        tracer = torch.fx.Tracer()
        tracer.record_stack_traces = True
        try:
            graph = tracer.trace(module)
        except Exception as exc:  # fx raises TraceError, TypeError, ... for data-dependent code
            raise ConversionError(
                f"torch.fx cannot trace {type(module).__name__}.forward ({type(exc).__name__}: {exc}); tf_lrp reads "
                "a forward without data-dependent control flow"
            ) from exc
        graph_module = torch.fx.GraphModule(module, graph)
        traced = _Walk(module, graph).run()
    finally:
        module.train(training)
    return traced._replace(graph_module=graph_module)


class _StopError(Exception):
    def __init__(self, value: Any) -> None:
        super().__init__("stop")
        self.value = value


def torch_scores(traced: TracedModule, x: np.ndarray) -> np.ndarray:
    """The module's explained scores (the score layer's pre-activation) on ``x``, by PyTorch.

    Args:
        traced: from :func:`from_torch_module`.
        x: (B, T, D) floats or (B, T) token ids, batch-major like tf_lrp's input.

    Returns:
        (B, C) scores, or (B, T, C) for a per-step score.
    """
    import torch
    import torch.fx

    graph_module = traced.graph_module
    parameter = next(graph_module.parameters(), None)
    dtype = parameter.dtype if parameter is not None else torch.float32
    array = np.asarray(x)
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    tensor = tensor.long() if array.dtype.kind in "iu" else tensor.to(dtype)
    if traced.time_major:
        tensor = tensor.transpose(0, 1)

    class Until(torch.fx.Interpreter):
        def run_node(self, n: Any) -> Any:
            result = super().run_node(n)
            if n.name == traced.score:
                raise _StopError(result)
            return result

    training = graph_module.training
    graph_module.eval()
    try:
        with torch.no_grad():
            Until(graph_module).run(tensor)
    except _StopError as stop:
        out = stop.value
    else:  # pragma: no cover - the score node is always reached
        raise ConversionError("the traced module never computed its score layer")
    finally:
        graph_module.train(training)
    if traced.score_time_major:
        out = out.transpose(0, 1)
    return np.asarray(out.detach().cpu().double().numpy())


def probe_batch(manifest: Mapping[str, Any], seed: int = 0) -> np.ndarray:
    """(4, 7) token ids within the vocabulary, or (4, 7, D) standard-normal features."""
    rng = np.random.default_rng(seed)
    entry = manifest["inputs"][0]
    if entry["tokens"]:
        vocabulary = next(layer["input_dim"] for layer in manifest["layers"] if layer["kind"] == "embedding")
        return rng.integers(0, vocabulary, size=(4, 7)).astype(np.int64)
    return rng.standard_normal((4, 7, entry["features"]))


def check_equivalence(ours: np.ndarray, theirs: np.ndarray, tolerance: float, name: str) -> float:
    """The relative error ``max|ours - theirs| / max(1, max|theirs|)``; a ConversionError beyond ``tolerance``."""
    ours, theirs = np.asarray(ours, dtype=np.float64), np.asarray(theirs, dtype=np.float64)
    if ours.shape != theirs.shape:
        raise ConversionError(
            f"module {name!r}: the converted network gives scores of shape {ours.shape}, the module {theirs.shape}"
        )
    difference = float(np.max(np.abs(ours - theirs))) if ours.size else 0.0
    relative = difference / max(1.0, float(np.max(np.abs(theirs))) if theirs.size else 1.0)
    if not relative <= tolerance:
        raise ConversionError(
            f"module {name!r}: the converted network's scores differ from the module's score layer (pre-activation) "
            f"by up to {difference:.3g} (relative {relative:.3g} > tolerance {tolerance:g}); the conversion does not "
            "reproduce this module, so its explanations would be wrong. Report the module"
        )
    return relative


__all__ = ["TracedModule", "check_equivalence", "from_torch_module", "probe_batch", "torch_scores"]
