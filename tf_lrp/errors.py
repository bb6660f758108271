"""The exception tree of tf_lrp.

Every error a user can cause is a :class:`TfLrpError`. Each concrete error is also a
:class:`ValueError`, so code that already catches ``ValueError`` keeps working. Messages name
the argument, layer or array at fault, what was expected, what was received, and the fix.
"""

from __future__ import annotations


class TfLrpError(Exception):
    """Base class of every error tf_lrp raises on purpose."""


class LayoutError(TfLrpError, ValueError):
    """A layout manifest or a weight list does not describe a network tf_lrp can build."""


class ConversionError(TfLrpError, ValueError):
    """A model or state_dict cannot be converted into a tf_lrp layout."""


class InputError(TfLrpError, ValueError):
    """An argument of ``explain`` (or of another public call) is not valid."""


class TfLrpWarning(UserWarning):
    """A result that is computed but numerically suspect (non-finite or not conserving the score)."""
