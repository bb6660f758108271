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


def __getattr__(name: str) -> Any:
    # lazy: tf_lrp.convert.torch is imported on first use of from_torch / load_state_dict
    if name in ("from_torch", "from_torch_seq2seq", "load_state_dict"):
        from . import torch as _torch

        return getattr(_torch, name)
    if name == "from_keras":
        from .keras import from_keras

        return from_keras
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Converted", "from_keras", "from_torch", "from_torch_seq2seq", "load_state_dict"]
