"""The flatten node: a sequence of fixed length (T, B, F) -> one vector per sample (B, T·F).

Keras ``Flatten`` orders the flat vector step by step (``t·F + f``). Relevance and gradient are
reshaped back, so each lands on the step and feature it came from (conserving, no rule).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from keras import ops

from .._typing import Tensor
from ..layout import FlattenSpec
from .base import NodeContext, NodeType


def _unflatten(spec: FlattenSpec, signal: Tensor) -> Tensor:
    """(B, T·F) -> (T, B, F)."""
    return ops.transpose(ops.reshape(signal, (-1, spec.steps, spec.features)), (1, 0, 2))


class FlattenNode(NodeType):
    """Keras ``Flatten`` of a sequence."""

    kinds: ClassVar[tuple[str, ...]] = ("flatten",)

    def cache_floats(self, spec: FlattenSpec, steps: int) -> int:
        """Nothing is kept."""
        return 0

    def forward(
        self, spec: FlattenSpec, params: Any, inputs: Sequence[Tensor], mask: Tensor | None
    ) -> tuple[Tensor, Any]:
        """Steps side by side: ``out[b, t·F + f] = x[t, b, f]``."""
        return ops.reshape(ops.transpose(inputs[0], (1, 0, 2)), (-1, spec.steps * spec.features)), None

    def relevance(
        self, spec: FlattenSpec, params: Any, cache: Any, relevance: Tensor, ctx: NodeContext
    ) -> tuple[tuple[Tensor | None, ...], Tensor | None]:
        """Each entry's relevance back at its step and feature."""
        return (_unflatten(spec, relevance),), None

    def gradient(
        self, spec: FlattenSpec, params: Any, cache: Any, grad: Tensor, ctx: NodeContext
    ) -> tuple[Tensor | None, ...]:
        """Each entry's gradient back at its step and feature."""
        return (_unflatten(spec, grad),)
