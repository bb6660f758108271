"""Converters from other frameworks to tf_lrp layouts (the canonizers of tf_lrp).

Every converter returns a :class:`Converted`: a layout manifest (validated against
``weights_schema.json``) and the weight arrays in Keras ``get_weights()`` order, ready for
``Explainer.from_manifest(*converted)``. Gate reordering, bias merging and transposes happen
here, once, before the numeric core sees the weights.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np


class Converted(NamedTuple):
    """A converted network: ``manifest`` (dict) and ``weights`` (Keras-ordered numpy arrays)."""

    manifest: dict[str, Any]
    weights: list[np.ndarray]


__all__ = ["Converted"]
