"""Reading torch.fx nodes: their op names and source lines (for refusals), activations, the score node."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from ..errors import ConversionError
from .torch_fx_values import _RefusalError

OUTPUT_ACTIVATIONS = ("relu", "tanh", "sigmoid", "softmax", "log_softmax")
_CELLS = {"LSTM": "lstm", "GRU": "gru", "RNN": "simple_rnn"}
_ACTIVATION_MODULES = {
    "ReLU": "relu", "Tanh": "tanh", "Sigmoid": "sigmoid", "Softmax": "softmax", "LogSoftmax": "log_softmax"
}  # fmt: skip
_FRAME = re.compile(r'File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<func>\S+)\n\s*(?P<code>[^\n]*)')


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


#: torch activations (module class, function or method name) -> the activation node's (Keras) name
_HIDDEN_MODULES = {
    "ReLU": "relu", "Tanh": "tanh", "Sigmoid": "sigmoid", "GELU": "gelu", "ELU": "elu", "SELU": "selu",
    "CELU": "celu", "SiLU": "silu", "Mish": "mish", "Softplus": "softplus", "LeakyReLU": "leaky_relu",
    "ReLU6": "relu6", "Hardtanh": "hard_tanh", "Hardsigmoid": "hard_sigmoid", "Hardswish": "hard_silu",
    "Softsign": "softsign", "Tanhshrink": "tanh_shrink", "LogSigmoid": "log_sigmoid",
}  # fmt: skip
#: the functional forms (``F.gelu``, ``torch.tanh``, ``x.sigmoid()``): the module names in lower case
_HIDDEN_FUNCTIONS = {
    ("leaky_relu" if module == "LeakyReLU" else module.lower()): name for module, name in _HIDDEN_MODULES.items()
}
#: the parameters the activation node computes (Keras's defaults): name -> ((torch name, position, value), ...)
_FIXED: dict[str, tuple[tuple[str, int, Any], ...]] = {
    "elu": (("alpha", 1, 1.0),),
    "celu": (("alpha", 1, 1.0),),
    "softplus": (("beta", 1, 1.0), ("threshold", 2, 20.0)),
    "hard_tanh": (("min_val", 1, -1.0), ("max_val", 2, 1.0)),
}
#: torch's ``leaky_relu`` default slope (Keras's is 0.2: the spec records the slope either way)
_TORCH_LEAKY_SLOPE = 0.01


class Hidden(NamedTuple):
    """A hidden torch activation as the activation node computes it."""

    name: str  # the node's activation name
    negative_slope: float | None = None  # leaky_relu only: the module's slope


def _hidden_activation(node: Any, module: Any, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Hidden | None:
    """The activation node's activation for a hidden torch activation, or None when the node is no activation.

    Raises:
        _RefusalError: a known activation with parameters the node does not compute.
    """
    family, name = _kind(node, module)
    if family == "module":
        keras_name = _HIDDEN_MODULES.get(name)
    elif family in ("function", "method"):
        keras_name = _HIDDEN_FUNCTIONS.get(name.rstrip("_"))
    else:
        return None
    if keras_name is None:
        return None
    sub = module.get_submodule(node.target) if family == "module" else None

    def read(key: str, index: int, default: Any) -> Any:
        if sub is not None:
            return getattr(sub, key, default)
        return kwargs.get(key, args[index] if len(args) > index else default)

    if keras_name == "gelu":
        approximate = read("approximate", 1, "none")
        if approximate not in ("none", "tanh"):
            raise _RefusalError(f"approximate={approximate!r} is not supported; use 'none' or 'tanh'")
        return Hidden("gelu" if approximate == "none" else "gelu_approximate")
    if keras_name == "leaky_relu":
        slope = read("negative_slope", 1, _TORCH_LEAKY_SLOPE)
        if isinstance(slope, bool) or not isinstance(slope, (int, float)):
            raise _RefusalError(f"negative_slope={slope!r}: tf_lrp reads a number")
        return Hidden("leaky_relu", float(slope))
    for key, index, value in _FIXED.get(keras_name, ()):
        given = read(key, index, value)
        if isinstance(given, bool) or not isinstance(given, (int, float)) or float(given) != value:
            raise _RefusalError(
                f"{key}={given!r}: tf_lrp's {keras_name} node computes {key}={value} only (Keras's default); "
                f"build it with {key}={value}"
            )
    return Hidden(keras_name)


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
