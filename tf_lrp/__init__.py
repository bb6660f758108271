"""tf_lrp: Layer-wise Relevance Propagation for LSTM and GRU networks, batched and compiled.

>>> from tf_lrp import Explainer
>>> ex = Explainer.from_weights(model.get_weights(), cell="lstm", bidirectional=True)  # doctest: +SKIP
>>> res = ex.explain(x, method="lrp", eps=1e-3, bias_factor=0.0)  # doctest: +SKIP
"""

from __future__ import annotations

from ._version import __version__
from .errors import ConversionError, InputError, LayoutError, TfLrpError
from .explainer import Explainer, Explanation
from .forecast import ForecastExplanation, Seq2SeqExplainer
from .rules import RuleSet

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
