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
  ``nn.Linear`` on vectors or on every step; after the score layer, ``relu`` / ``tanh`` /
  ``sigmoid`` / ``softmax`` / ``log_softmax`` are skipped (the explained score is the last
  ``nn.Linear``'s pre-activation).
* ``nn.Conv1d`` on a channels-first (batch, channels, time) sequence -> ``conv1d`` (padding
  ``0``/``'valid'``, ``'same'`` or its symmetric equivalent at stride 1; ``padding_mode='zeros'``;
  kernel ``weight.permute(2, 1, 0)``); ``nn.MaxPool1d`` / ``nn.AvgPool1d`` (no padding) ->
  ``max_pooling1d`` / ``average_pooling1d``; ``nn.LayerNorm`` over the feature axis and
  ``nn.BatchNorm1d`` at eval (vectors or channels-first sequences) -> ``layer_normalization`` /
  ``batch_normalization``.
* Hidden elementwise activations (modules, ``torch.*`` / ``F.*`` functions and tensor methods:
  relu, tanh, sigmoid, gelu, elu, selu, silu, softplus, ... with the activation node's parameters)
  -> an ``activation`` node; ``relu`` right after an ``nn.Linear`` / ``nn.Conv1d`` read by nothing
  else becomes its activation. ``a + b`` / ``a - b`` of two tensors of one shape and layout ->
  ``merge`` (add / subtract); ``a * b`` of one shape -> ``multiply`` (a product node).
* Tensor ops: ``out[:, t]`` / ``out[t]`` (by layout) -> ``select_step``; feature slices that fall
  on direction boundaries (``out[:, -1, :H]``); ``h_n[i]``, ``h_n[a:b]`` and their
  ``transpose(0, 1).reshape(B, -1)`` / ``flatten(1)``; ``torch.cat`` on the feature axis;
  ``mean`` / ``max`` / ``amax`` / ``sum`` over time -> ``global_average_pooling`` /
  ``global_max_pooling`` / ``global_sum_pooling`` (PyTorch has no masks: every step counts), also
  with the time axis kept (``keepdim``, ``AdaptiveMaxPool1d(1)``, ``F.max_pool1d(h, h.size(2))``)
  and then squeezed; ``out.reshape(B, -1)`` of a (batch, time, F) sequence into an ``nn.Linear``
  -> ``flatten`` (T = in_features / F); ``transpose`` / ``permute`` between the layouts (batch,
  time, F), (time, batch, F) and channels-first (batch, F, time), tracked per value; ``view`` /
  ``reshape`` of a sequence that keeps its shape; dropout, ``contiguous`` and dtype casts (the
  identity).
* Attention pooling: ``torch.softmax(scores, dim=time)`` -> ``softmax``; ``(w * out).sum(dim=time)``
  and ``torch.bmm(w.transpose(1, 2), out).squeeze(1)`` -> ``weighted_sum`` (the weights must
  be a softmax's: they sum to 1, so the ε-rule conserves). ``nn.MultiheadAttention`` (self or cross,
  no masks) -> ``multi_head_attention``.

Anything else is refused with a :class:`~tf_lrp.errors.ConversionError` naming the operation, the
module path and the source line (from the fx node's stack trace). The values flowing on fx edges and the
graph being written live in :mod:`~tf_lrp.convert.torch_fx_values`, the reading of fx nodes (op
names, activations, the score, refusals) in :mod:`~tf_lrp.convert.torch_fx_ops`; this module walks
the graph and converts each operation. torch is imported inside the
functions only: ``import tf_lrp.convert`` works without it.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from ..errors import ConversionError
from ..layout import (
    ActivationSpec,
    ConvSpec,
    DenseSpec,
    EmbeddingSpec,
    FlattenSpec,
    MergeSpec,
    MultiHeadAttentionSpec,
    MultiplySpec,
    NormalizationSpec,
    Pooling1DSpec,
    PoolingSpec,
    RecurrentSpec,
    SoftmaxSpec,
    WeightedSumSpec,
    input_edge,
)
from . import Converted
from .torch import _gru_rows, _to_numpy
from .torch_fx_ops import (
    _CELLS,
    _activation,
    _ancestors,
    _hidden_activation,
    _is_identity,
    _kind,
    _refuse,
    _score_node,
)
from .torch_fx_values import (
    _AXES,
    _FLIP,
    Part,
    _Context,
    _Converter,
    _describe,
    _Flat,
    _Kept,
    _like,
    _norm_dim,
    _Opaque,
    _permute_layout,
    _RefusalError,
    _Seq,
    _Size,
    _slice_parts,
    _Stack,
    _Vec,
    _Weighted,
    _WeightsRow,
)

#: activations skipped after the score layer (the explained score is its pre-activation)


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
        if activation == "log_softmax":
            raise _RefusalError(
                f"{activation} before the score layer has no tf_lrp node (it mixes the features); "
                f"{activation} is supported after the last nn.Linear only (the explained score is its pre-activation)"
            )
        hidden = _hidden_activation(node, self.module, args, kwargs)
        if hidden is not None:
            return self.activation(node, hidden.name, args, hidden.negative_slope)
        if family == "module":
            sub = self.module.get_submodule(node.target)
            if name in _CELLS:
                return self.recurrent(node, sub, args, kwargs)
            if name == "Embedding":
                return self.embedding(node, sub, args)
            if name == "Linear":
                return self.linear(node, sub, args)
            if name == "Conv1d":
                return self.conv1d(node, sub, args)
            if name in ("MaxPool1d", "AvgPool1d"):
                return self.pool1d(node, sub, args)
            if name == "Flatten":
                return self.reshape("flatten", [args[0], sub.start_dim, sub.end_dim], {})
            if name in ("AdaptiveMaxPool1d", "AdaptiveAvgPool1d"):
                return self.pool_function(node, name, [args[0], sub.output_size], {})
            if name == "LayerNorm":
                return self.layer_norm(node, sub, args)
            if name == "BatchNorm1d":
                return self.batch_norm(node, sub, args)
            if name == "MultiheadAttention":
                return self.multihead_attention(node, sub, args, kwargs)
            raise _RefusalError(
                f"is not supported; tf_lrp converts nn.LSTM, nn.GRU, nn.RNN, nn.Embedding, nn.Linear, nn.Conv1d, "
                f"nn.MaxPool1d, nn.AvgPool1d, nn.LayerNorm, nn.BatchNorm1d, nn.Flatten, elementwise activations and "
                f"dropout modules (module path {node.target!r})"
            )
        if family == "function" and node.target is operator.getitem:
            return self.getitem(args[0], args[1])
        if family == "function" and name == "getattr":
            return self.getattr(args[0], args[1])
        method = name if family in ("method", "function") else ""
        if method in ("add", "sub", "subtract", "iadd", "isub", "add_", "sub_"):
            return self.merge(method, args, kwargs)
        if method in ("cat", "concat", "concatenate"):
            return self.cat(args[0], kwargs.get("dim", args[1] if len(args) > 1 else 0))
        if method in ("transpose", "swapaxes", "swapdims"):
            dims = [kwargs.get(k) for k in ("dim0", "dim1")] if len(args) < 3 else args[1:3]
            if self.is_weights_row(args[0], dims):
                return _WeightsRow(args[0])
            return self.transpose(args[0], dims)
        if method in ("mul", "bmm", "matmul"):
            return self.weigh(node, method, args)
        if method == "permute":
            order = list(args[1] if len(args) == 2 and isinstance(args[1], (list, tuple)) else args[1:])
            return self.permute(args[0], order or list(kwargs.get("dims", ())))
        if method in ("mean", "max", "amax"):
            return self.pool(node, method, args, kwargs)
        if method == "sum":
            return self.sum(node, args, kwargs)
        if method == "size":
            return self.size(args[0], kwargs.get("dim", args[1] if len(args) > 1 else None))
        if method in ("adaptive_max_pool1d", "adaptive_avg_pool1d", "max_pool1d", "avg_pool1d"):
            return self.pool_function(node, method, args, kwargs)
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
        if x.axes == "bf":
            raise _RefusalError(
                "reads a channels-first (batch, channels, time) sequence; transpose(1, 2) it to (batch, time, "
                "channels) first"
            )
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

    def features(self, x: Any, width: int, what: str) -> _Seq | _Vec:
        """``x`` as features of ``width`` (the module input declared as such when ``x`` is it)."""
        if isinstance(x, _Seq) and (x.tokens or x.parts[0][0] == input_edge(0)):
            if x.tokens:
                raise _RefusalError("reads token ids: put an nn.Embedding in between")
            x = _Seq(((self.conv.input_value(False, width), width),), x.axes)
        if not isinstance(x, (_Seq, _Vec)):
            raise _RefusalError(f"reads {_describe(x)}; {what} reads features")
        return x

    def known(self, x: Any) -> Any:
        """``x`` with the module input's width filled in once a module has declared it (else as it is)."""
        spec = self.conv.input_spec
        if isinstance(x, _Seq) and x.parts[0][0] == input_edge(0) and spec is not None and not spec.tokens:
            return _Seq(((input_edge(0), spec.features),), x.axes)
        return x

    def channels_last(self, x: _Seq | _Vec, what: str) -> None:
        """Refuses a channels-first sequence for a module that acts on the last axis."""
        if isinstance(x, _Seq) and x.axes == "bf":  # the input's layouts (in, ni) are never channels-first
            raise _RefusalError(
                f"reads a channels-first (batch, channels, time) sequence: {what} would act on the time axis; "
                "transpose(1, 2) it back to (batch, time, channels) first"
            )

    def linear(self, node: Any, linear: Any, args: list[Any]) -> Any:
        if isinstance(args[0], _Flat):
            args = [self.flatten(node, args[0], linear.in_features)]
        x = self.features(args[0], linear.in_features, "an nn.Linear")
        self.channels_last(x, "nn.Linear")
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

    def activation(self, node: Any, name: str, args: list[Any], negative_slope: float | None = None) -> Any:
        """An elementwise activation: relu folded into the nn.Linear / nn.Conv1d right before it, else a node.

        ``negative_slope``: leaky_relu's slope (the spec's default when None).
        """
        x = self.known(args[0])
        if not isinstance(x, (_Seq, _Vec)) or (isinstance(x, _Seq) and x.tokens):
            raise _RefusalError(f"applies {name} to {_describe(x)}; tf_lrp applies activations to features")
        source: Any = node.args[0]
        if name == "relu" and len(x.parts) == 1 and isinstance(x.parts[0][0], int):
            edge = x.parts[0][0]
            spec = self.conv.specs[edge] if edge >= 0 else None
            if (
                isinstance(spec, (DenseSpec, ConvSpec))
                and spec.activation == "linear"
                and self.conv.producers.get(edge) is source
                and len(getattr(source, "users", ())) == 1
            ):
                self.conv.specs[edge] = dataclasses.replace(spec, activation="relu")
                return x
        spec = ActivationSpec(name, x.width, name=str(node.name))
        if negative_slope is not None:
            spec = dataclasses.replace(spec, negative_slope=negative_slope)
        edge = self.conv.add(spec, [self.conv.materialize(x, node.name)])
        return _like(x, edge, x.width)

    def flatten(self, node: Any, flat: _Flat, width: int) -> _Vec:
        """A flatten node for the ``nn.Linear`` of ``width`` in_features reading ``flat`` (steps = width / F)."""
        steps, rest = divmod(width, flat.seq.width)
        if rest or not steps:
            raise _RefusalError(
                f"in_features={width} is no multiple of the flattened sequence's {flat.seq.width} features"
            )
        spec = FlattenSpec(steps, flat.seq.width, name=f"{node.target}.flatten")
        edge = self.conv.add(spec, [self.conv.materialize(flat.seq, str(node.target))])
        return _Vec(((edge, width),))

    def conv1d(self, node: Any, conv: Any, args: list[Any]) -> Any:
        """``nn.Conv1d`` on a channels-first sequence -> a conv1d node (kernel (K, C_in / G, C_out))."""
        x = args[0]
        if not isinstance(x, _Seq) or x.tokens:
            raise _RefusalError(f"reads {_describe(x)}; an nn.Conv1d reads a (batch, channels, time) sequence")
        if x.axes in ("in", "ni") or self.conv.resolve(x.axes) != "bf":
            raise _RefusalError(
                "reads a tensor that is not channels-first; tf_lrp's input is (batch, time, features): "
                "call x.transpose(1, 2) (or x.permute(0, 2, 1)) before an nn.Conv1d"
            )
        x = self.features(x, conv.in_channels, "an nn.Conv1d")
        if x.width != conv.in_channels:
            raise _RefusalError(f"in_channels={conv.in_channels} but it reads {x.width} channels")
        if conv.padding_mode != "zeros":
            raise _RefusalError(f"padding_mode={conv.padding_mode!r} is not supported; use padding_mode='zeros'")
        size, stride, dilation = int(conv.kernel_size[0]), int(conv.stride[0]), int(conv.dilation[0])
        padding = _conv_padding(conv.padding, size, stride, dilation)
        arrays = [np.ascontiguousarray(_to_numpy(conv.weight, f"{node.target}.weight").transpose(2, 1, 0))]
        if conv.bias is not None:
            arrays.append(_to_numpy(conv.bias, f"{node.target}.bias"))
        spec = ConvSpec(
            conv.out_channels, conv.in_channels, size, stride, dilation, padding, int(conv.groups), "linear",
            conv.bias is not None, str(node.target),
        )  # fmt: skip
        edge = self.conv.add(spec, [self.conv.materialize(x, str(node.target))], arrays)
        self.conv.producers[edge] = node
        return _Seq(((edge, conv.out_channels),), "bf")

    def pool1d(self, node: Any, pool: Any, args: list[Any]) -> Any:
        """``nn.MaxPool1d`` / ``nn.AvgPool1d`` (no padding) on a channels-first sequence -> a pooling1d node."""
        x = args[0]
        if not isinstance(x, _Seq) or x.tokens or self.conv.resolve(x.axes) != "bf":
            raise _RefusalError(
                f"reads {_describe(x)} that is not channels-first; tf_lrp pools a (batch, channels, time) sequence"
            )
        size, stride, padding = (_single(pool, key) for key in ("kernel_size", "stride", "padding"))
        if padding != 0 or pool.ceil_mode or _single(pool, "dilation", 1) != 1 or getattr(pool, "return_indices", 0):
            raise _RefusalError(
                "padding, dilation, ceil_mode and return_indices are not supported; tf_lrp pools 'valid' windows "
                "(padding=0, dilation=1, ceil_mode=False)"
            )
        kind = "max_pooling1d" if type(pool).__name__ == "MaxPool1d" else "average_pooling1d"
        spec = Pooling1DSpec(kind, x.width, size, stride, "valid", name=str(node.target))
        edge = self.conv.add(spec, [self.conv.materialize(x, str(node.target))])
        return _Seq(((edge, x.width),), "bf")

    def layer_norm(self, node: Any, norm: Any, args: list[Any]) -> Any:
        """``nn.LayerNorm`` over the last (feature) axis -> a layer_normalization node."""
        shape = tuple(norm.normalized_shape)
        x = self.features(args[0], shape[-1], "an nn.LayerNorm")
        self.channels_last(x, "nn.LayerNorm")
        if shape != (x.width,):
            raise _RefusalError(
                f"normalized_shape={shape} but it reads {x.width} features; tf_lrp normalises the feature axis "
                f"only (normalized_shape={x.width})"
            )
        gamma, beta = norm.weight, norm.bias
        arrays = [_to_numpy(p, f"{node.target}.{k}") for k, p in (("weight", gamma), ("bias", beta)) if p is not None]
        spec = NormalizationSpec(
            "layer_normalization", x.width, float(norm.eps), beta is not None, gamma is not None, str(node.target)
        )
        edge = self.conv.add(spec, [self.conv.materialize(x, str(node.target))], arrays)
        return _like(x, edge, x.width)

    def batch_norm(self, node: Any, norm: Any, args: list[Any]) -> Any:
        """``nn.BatchNorm1d`` at eval (its running statistics) on (batch, F) or (batch, C, time) -> a node."""
        x = self.features(args[0], norm.num_features, "an nn.BatchNorm1d")
        if isinstance(x, _Seq) and self.conv.resolve(x.axes) != "bf":
            raise _RefusalError(
                "reads a (batch, time, features) sequence: nn.BatchNorm1d normalises axis 1 (here time); "
                "transpose(1, 2) to (batch, channels, time) first"
            )
        if x.width != norm.num_features:
            raise _RefusalError(f"num_features={norm.num_features} but it reads {x.width} features")
        if norm.running_mean is None or norm.running_var is None:
            raise _RefusalError(
                "track_running_stats=False normalises with the batch's own statistics; tf_lrp explains one sample at "
                "a time with fixed statistics (track_running_stats=True)"
            )
        gamma, beta = norm.weight, norm.bias
        arrays = [_to_numpy(p, f"{node.target}.{k}") for k, p in (("weight", gamma), ("bias", beta)) if p is not None]
        arrays += [_to_numpy(norm.running_mean, f"{node.target}.running_mean")]
        arrays += [_to_numpy(norm.running_var, f"{node.target}.running_var")]
        spec = NormalizationSpec(
            "batch_normalization", x.width, float(norm.eps), beta is not None, gamma is not None, str(node.target)
        )
        edge = self.conv.add(spec, [self.conv.materialize(x, str(node.target))], arrays)
        return _like(x, edge, x.width)

    def same_shape(self, a: Any, b: Any) -> bool:
        """Whether ``a`` and ``b`` are two vectors, or two (non-token) sequences in one layout, of one width."""
        if isinstance(a, _Seq) and isinstance(b, _Seq) and not (a.tokens or b.tokens):
            same = a.axes == b.axes or self.conv.resolve(a.axes) == self.conv.resolve(b.axes)
        else:
            same = isinstance(a, _Vec) and isinstance(b, _Vec)
        return same and a.width == b.width

    def merge(self, method: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        """``a + b`` / ``a - b`` of two tensors of one shape -> a merge node (add / subtract)."""
        operation = "add" if "add" in method else "subtract"
        alpha = kwargs.get("alpha", args[2] if len(args) > 2 else 1)
        other = kwargs.get("other", args[1] if len(args) > 1 else None)
        a, b = self.known(args[0]), self.known(other)
        if not self.same_shape(a, b) or alpha != 1:
            raise _RefusalError(
                f"{operation}s {_describe(a)} and {_describe(b)}{'' if alpha == 1 else f' with alpha={alpha!r}'}; "
                "tf_lrp adds or subtracts two tensors of one shape and layout (no constants, no broadcasting)"
            )
        edges = [self.conv.materialize(v, operation) for v in (a, b)]
        edge = self.conv.add(MergeSpec(operation, a.width, name=operation), edges)
        return _like(a, edge, a.width)

    def multiply(self, node: Any, a: Any, b: Any) -> Any:
        """``a * b`` of two tensors of one shape (a gate, e.g. ``torch.sigmoid(g) * h``) -> a multiply node."""
        edges = [self.conv.materialize(v, str(node.name)) for v in (a, b)]
        edge = self.conv.add(MultiplySpec(a.width, name=str(node.name)), edges)
        return _like(a, edge, a.width)

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

    def weigh(self, node: Any, method: str, args: list[Any]) -> Any:
        """``a * b`` of one shape, ``w * out`` (either order) and ``torch.bmm(w.transpose(1, 2), out)``.

        The last two are the products of attention pooling (``w`` a softmax over time, width 1).
        """
        first, second = args[0], args[1] if len(args) > 1 else None
        if method == "mul" and self.same_shape(first, second):
            return self.multiply(node, first, second)
        if method == "mul" and isinstance(first, _Seq) and isinstance(second, _Seq):
            weights, values = (first, second) if first.width == 1 else (second, first)
            same = self.conv.resolve(weights.axes) == self.conv.resolve(values.axes)
            if weights.width == 1 and same and not weights.tokens and not values.tokens and self.is_softmax(weights):
                return _Weighted(weights, values)
        row = method in ("bmm", "matmul") and isinstance(first, _WeightsRow)
        if row and isinstance(second, _Seq) and self.conv.resolve(second.axes) == "bt" and not second.tokens:
            return _Context(first.weights, second)
        raise _RefusalError(
            f"{method} of {_describe(first)} and {_describe(second)}; tf_lrp reads products of two tensors of one "
            "shape and layout (a multiply node), and attention pooling: (w * out).sum(dim=1) or "
            "torch.bmm(w.transpose(1, 2), out).squeeze(1), w = torch.softmax(scores, dim=1) of width 1"
        )

    def weighted_sum(self, name: str, weights: _Seq, values: _Seq) -> _Vec:
        """The weighted_sum node of ``Σ_t w_t out_t``."""
        reads = [self.conv.materialize(weights, name), self.conv.materialize(values, name)]
        return _Vec(((self.conv.add(WeightedSumSpec(values.width, name=name), reads), values.width),))

    def sum(self, node: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
        """``(w * out).sum(dim=time)`` -> a weighted_sum node; ``out.sum(dim=time)`` -> global_sum_pooling."""
        value = args[0]
        if not isinstance(value, _Weighted):
            return self.pool(node, "sum", args, kwargs)
        dim = kwargs.get("dim", args[1] if len(args) > 1 else None)
        keepdim = kwargs.get("keepdim", args[2] if len(args) > 2 else False)
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
            index = key if isinstance(key, int) and not isinstance(key, bool) else None
            return _Size(value.letters[index]) if value.letters and index is not None and -3 <= index < 3 else _Size()
        if isinstance(value, _Kept):
            items = _expand(list(key) if isinstance(key, tuple) else [key], 3)
            if items is not None and all(_full(i) for i in items[:2]) and items[2] in (0, -1) and value.axis == 2:
                return value.vec
            raise _RefusalError(f"indexes a pooled (batch, C, 1) tensor with {key!r}; tf_lrp reads [:, :, 0]")
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
        if axes == "bf":
            raise _RefusalError(
                f"indexes a channels-first (batch, channels, time) sequence with {key!r}; transpose(1, 2) it back "
                "to (batch, time, channels) first"
            )
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

    def letters(self, value: Any) -> str:
        """The axis letters of a sequence in a known layout ('' otherwise: nothing is fixed by asking)."""
        return _AXES[value.axes] if isinstance(value, _Seq) and not value.tokens and value.axes in _AXES else ""

    def size(self, value: Any, dim: Any) -> _Size:
        letters = self.letters(value)
        if dim is None:
            return _Size(letters=letters)
        index = _norm_dim(dim, 3)
        return _Size(letters[index]) if letters and index is not None and 0 <= index < 3 else _Size()

    def getattr(self, value: Any, name: Any) -> Any:
        if name == "shape":
            return _Size(letters=self.letters(value))
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
        if all(isinstance(v, _Seq) and not v.tokens for v in values):
            layouts = {self.conv.resolve(v.axes) for v in values}
            if len(layouts) == 1 and _norm_dim(dim, 3) == (1 if layouts == {"bf"} else 2):
                return _Seq(tuple(p for v in values for p in v.parts), values[0].axes)
        stacks = all(isinstance(v, _Stack) for v in values) and len({v.batch_first for v in values}) == 1
        if stacks and _norm_dim(dim, 3) == (1 if values[0].batch_first else 0):
            return _Stack(tuple(i for v in values for i in v.items), values[0].batch_first)
        raise _RefusalError(
            f"concatenates {', '.join(_describe(v) for v in values)} along dim={dim!r}; tf_lrp joins vectors or "
            "sequences (of one layout) on the feature axis (dim=-1; dim=1 channels-first)"
        )

    def transpose(self, value: Any, dims: Sequence[Any]) -> Any:
        if isinstance(value, _Seq) and not value.tokens and len(dims) == 2:
            order: list[int | None] = [0, 1, 2]
            first, second = (_norm_dim(d, 3) for d in dims)
            if first is not None and second is not None and min(first, second) >= 0 and max(first, second) <= 2:
                order[first], order[second] = order[second], order[first]
                return self.relayout(value, order, f"transposes it with dims {list(dims)}")
        if isinstance(value, _Seq) and sorted(_norm_dim(d, 3 if not value.tokens else 2) or 0 for d in dims) == [0, 1]:
            return _Seq(value.parts, _FLIP[value.axes], value.tokens)
        if isinstance(value, _Stack) and sorted(_norm_dim(d, 3) or 0 for d in dims) == [0, 1]:
            return _Stack(value.items, not value.batch_first)
        raise _RefusalError(
            f"transposes {_describe(value)} with dims {list(dims)}; tf_lrp swaps batch and time, or time and features "
            "(channels-first for nn.Conv1d)"
        )

    def permute(self, value: Any, dims: list[Any]) -> Any:
        ndim = 2 if isinstance(value, _Seq) and value.tokens else 3
        order = [_norm_dim(d, ndim) for d in dims]
        if isinstance(value, _Seq) and not value.tokens and len(order) == 3:
            return self.relayout(value, order, f"permutes it to {dims}")
        if isinstance(value, (_Seq, _Stack)) and order in ([0, 1, 2][:ndim], [1, 0, 2][:ndim]):
            return value if order[0] == 0 else self.transpose(value, [0, 1])
        raise _RefusalError(f"permutes {_describe(value)} to {dims}; tf_lrp swaps batch and time only")

    def relayout(self, value: _Seq, order: list[int | None], what: str) -> _Seq:
        """``value`` with its axes permuted by ``order``: a layout tf_lrp knows (bt, tb, bf), or a refusal."""
        if value.axes in ("in", "ni") and order == [1, 0, 2]:  # batch <-> time: the input's layout stays open
            return _Seq(value.parts, _FLIP[value.axes], value.tokens)
        if value.axes in ("in", "ni") and self.conv.input_layout is None:
            for candidate in ("bt", "tb"):  # the input layout for which the result is one tf_lrp knows
                if _permute_layout(candidate if value.axes == "in" else _FLIP[candidate], order) is not None:
                    self.conv.input_layout = candidate
                    break
        layout = _permute_layout(self.conv.resolve(value.axes), order)
        if layout is None:
            raise _RefusalError(
                f"{what} from {_AXES[self.conv.resolve(value.axes)]} (b: batch, t: time, f: features); tf_lrp reads "
                "(batch, time, features), (time, batch, features) and channels-first (batch, features, time)"
            )
        return _Seq(value.parts, layout, value.tokens)

    def pool(self, node: Any, method: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        value = args[0]
        dim = kwargs.get("dim", args[1] if len(args) > 1 else None)
        keepdim = kwargs.get("keepdim", args[2] if len(args) > 2 else False)
        if not isinstance(value, _Seq) or value.tokens or dim is None or isinstance(dim, (list, tuple)):
            raise _RefusalError(
                f"{method} of {_describe(value)} over dim={dim!r}; tf_lrp pools a sequence over its time axis "
                "(out.mean(dim=1) for batch_first)"
            )
        time = _AXES[self.conv.resolve(value.axes)].index("t")
        if _norm_dim(dim, 3) != time:
            raise _RefusalError(f"{method} over dim={dim} is not the time axis ({time}); tf_lrp pools over time only")
        pooled = self.global_pool(node, value, "max" if method in ("max", "amax") else method)
        kept = _Kept(pooled, time) if keepdim else pooled
        if method == "max":  # Tensor.max(dim) returns (values, indices)
            return (kept, _Opaque("the indices of a max (argmax)"))
        return kept

    def global_pool(self, node: Any, value: _Seq, how: str) -> _Vec:
        """``value`` pooled over time (a pooling node per part); ``how``: "mean", "max" or "sum"."""
        kind = {"mean": "global_average_pooling", "max": "global_max_pooling", "sum": "global_sum_pooling"}[how]
        parts = []
        for part in value.parts:
            source = self.conv.edge_of(part, str(node.name))
            parts.append((self.conv.add(PoolingSpec(kind, part[1], name=f"{node.name}"), [source]), part[1]))
        return _Vec(tuple(parts))

    def pool_function(self, node: Any, method: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        """``F.max/avg_pool1d`` and the adaptive ones (and their modules) on a channels-first sequence.

        A window over all of time (``F.max_pool1d(x, x.size(2))``, ``adaptive_*(x, 1)``) is a global pooling
        that keeps the time axis (size 1); an integer window is a pooling1d node.
        """
        x = args[0]
        if not isinstance(x, _Seq) or x.tokens or self.conv.resolve(x.axes) != "bf":
            raise _RefusalError(f"pools {_describe(x)}; tf_lrp pools a channels-first (batch, channels, time) sequence")
        how = "max" if "max" in method.lower() else "mean"
        window = kwargs.get("output_size", kwargs.get("kernel_size", args[1] if len(args) > 1 else None))
        if "adaptive" in method.lower():
            if _single_value(window) != 1:
                raise _RefusalError(f"output_size={window!r}; tf_lrp pools adaptively to one step (output_size=1)")
            return _Kept(self.global_pool(node, x, how), 2)
        names = ("stride", "padding", "dilation", "ceil_mode", "return_indices")
        options = dict(zip(names, args[2:], strict=False)) | {k: kwargs[k] for k in names if k in kwargs}
        stride = options.get("stride")
        if (
            _single_value(options.get("padding", 0)) != 0
            or _single_value(options.get("dilation", 1)) != 1
            or options.get("ceil_mode")
            or options.get("return_indices")
        ):
            raise _RefusalError("padding, dilation, ceil_mode and return_indices are not supported; use the defaults")
        if isinstance(window, _Size) and window.letter == "t" and (stride is None or stride == window):
            return _Kept(self.global_pool(node, x, how), 2)
        size = _single_value(window)
        step = size if stride is None or stride == [] else _single_value(stride)
        if size is None or step is None:
            raise _RefusalError(
                f"pools with kernel_size={window!r}; tf_lrp reads an integer window or one over all of time (x.size(2))"
            )
        kind = "max_pooling1d" if how == "max" else "average_pooling1d"
        edge = self.conv.add(
            Pooling1DSpec(kind, x.width, size, step, "valid", name=str(node.name)),
            [self.conv.materialize(x, str(node.name))],
        )
        return _Seq(((edge, x.width),), "bf")

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
        if isinstance(value, _Kept):
            dim = kwargs.get("dim", args[1] if len(args) > 1 else None)
            if method == "squeeze" and (dim is None or _norm_dim(dim, 3) == value.axis):
                return value.vec
            if _flattens(method, args[1:], kwargs, value.width):
                return value.vec
            raise _RefusalError(f"{method} of a pooled (batch, C, 1) tensor; tf_lrp reads .squeeze(-1) or .flatten(1)")
        if (
            isinstance(value, _Seq)
            and not value.tokens
            and _flattens(method, args[1:], kwargs, -1)
            and self.conv.resolve(value.axes) == "bt"
        ):
            return _Flat(value)
        if isinstance(value, _Seq) and not value.tokens and method in ("reshape", "view"):
            shape = args[1] if len(args) == 2 and isinstance(args[1], (list, tuple)) else args[1:]
            raw = value.parts[0][0] == input_edge(0)  # the module input: its width is not known yet
            if _keeps_layout(shape, 1 if value.axes == "bf" else 2, None if raw else value.width):
                return value
            raise _RefusalError(
                f"{method} of {_describe(value)} to {list(shape)}; tf_lrp keeps a sequence's layout: "
                "view(x.size(0), x.size(1), F) (F its width, -1 or sizes read off a tensor elsewhere) is the identity"
            )
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


def _single(module: Any, key: str, default: Any = None) -> int:
    """An ``nn.*1d`` option that may be an int or a 1-tuple (``stride=None``: the kernel size)."""
    value = getattr(module, key, default)
    if value is None and key == "stride":
        value = module.kernel_size
    return int(value[0] if isinstance(value, (list, tuple)) else value)


def _conv_padding(padding: Any, size: int, stride: int, dilation: int) -> str:
    """The conv1d node's padding ('valid' / 'same') of ``nn.Conv1d``'s; a refusal when it has none."""
    if padding in ("valid", "same"):
        return str(padding)  # torch allows 'same' at stride 1 only, padding the extra step at the end, as 'same'
    amount = int(padding[0] if isinstance(padding, (list, tuple)) else padding)
    if amount == 0:
        return "valid"
    if stride == 1 and 2 * amount == dilation * (size - 1):
        return "same"
    raise _RefusalError(
        f"padding={amount} with kernel_size={size}, dilation={dilation}, stride={stride} has no tf_lrp equivalent; "
        "tf_lrp pads 'valid' (padding=0) or 'same' (padding='same', or padding=dilation*(kernel_size-1)/2 at stride 1)"
    )


def _keeps_layout(shape: Sequence[Any], features: int, width: int | None) -> bool:
    """Whether a 3-d ``view`` / ``reshape`` to ``shape`` is the identity (``features``: the feature axis).

    ``width`` None: the module input, whose width the module states (any positive int there).
    """
    if len(shape) != 3:
        return False
    others = [shape[i] for i in range(3) if i != features]
    if not all(isinstance(o, _Size) or o == -1 for o in others) or sum(o == -1 for o in shape) > 1:
        return False
    given = shape[features]
    if given == -1:
        return all(isinstance(o, _Size) for o in others)
    if width is None:
        return isinstance(given, int) and not isinstance(given, bool) and given > 0
    return not isinstance(given, bool) and given == width


def _single_value(value: Any) -> int | None:
    """An int, or the one int of a 1-tuple / list (None otherwise)."""
    if isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    return int(value) if isinstance(value, int) and not isinstance(value, bool) else None


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
    """(4, 7) token ids within the vocabulary, or (4, 7, D) standard-normal features.

    Raises:
        ConversionError: the network flattens a sequence of fixed length (a probe of 7 steps cannot fit it).
    """
    flatten = [layer for layer in manifest["layers"] if layer["kind"] == "flatten"]
    if flatten:
        raise ConversionError(
            f"the module flattens a sequence of {flatten[0]['steps']} steps into an nn.Linear, so it reads inputs of "
            "one length only: pass sample= (a batch of that length) to check the conversion on"
        )
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
