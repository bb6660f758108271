"""tf_lrp: Layer-wise Relevance Propagation for LSTM and GRU networks, batched and compiled.

>>> from tf_lrp import Explainer
>>> ex = Explainer.from_weights(model.get_weights(), cell="lstm", bidirectional=True)  # doctest: +SKIP
>>> res = ex.explain(x, method="lrp", eps=1e-3, bias_factor=0.0)  # doctest: +SKIP

``import tf_lrp`` is cheap: the names that need Keras (and with it TensorFlow, JAX or PyTorch)
are imported on first use (PEP 562), so ``tf-lrp --help`` and the error classes never load a
framework.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import ConversionError, InputError, LayoutError, TfLrpError

if TYPE_CHECKING:  # the lazy names below, for type checkers and IDEs
    from .explainer import Explainer, Explanation
    from .forecast import ForecastExplanation, Seq2SeqExplainer
    from .rules import RuleSet

#: public name -> the submodule that defines it (imported on first access).
_LAZY = {
    "Explainer": "explainer",
    "Explanation": "explainer",
    "ForecastExplanation": "forecast",
    "Seq2SeqExplainer": "forecast",
    "RuleSet": "rules",
}

__all__ = [
    "ConversionError",
    "Explainer",
    "Explanation",
    "ForecastExplanation",
    "InputError",
    "LayoutError",
    "RuleSet",
    "Seq2SeqExplainer",
    "TfLrpError",
    "__version__",
]


def __getattr__(name: str) -> Any:
    """Import a lazily exported name (``Explainer``, ...) from its submodule on first access."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'tf_lrp' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later accesses skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
