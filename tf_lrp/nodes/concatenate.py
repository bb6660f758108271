"""The concatenate node: inputs side by side along the feature axis; relevance split by slice."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from keras import ops

from .._typing import Tensor
from ..layout import ConcatenateSpec
from .base import NodeContext, NodeType
from .merge import merged_mask


def _split(spec: ConcatenateSpec, signal: Tensor) -> tuple[Tensor, ...]:
    """Cut ``signal`` (..., Σ sizes) into one slice per input."""
    parts, start = [], 0
    for size in spec.input_sizes:
        parts.append(signal[..., start : start + size])
        start += size
    return tuple(parts)


class ConcatenateNode(NodeType):
    """Keras ``Concatenate(axis=-1)``: each input's features keep their own relevance (conserving)."""

    kinds: ClassVar[tuple[str, ...]] = ("concatenate",)

    def merge_masks(self, spec: ConcatenateSpec, masks: Sequence[Tensor | None]) -> Tensor | None:
        """Keras's ``Concatenate``: no mask if an input has none, else the OR of the inputs' masks."""
        return merged_mask(masks)

    def cache_floats(self, spec: ConcatenateSpec, steps: int) -> int:
        """Nothing is kept."""
        return 0

    def forward(
        self, spec: ConcatenateSpec, params: Any, inputs: Sequence[Tensor], mask: Tensor | None
    ) -> tuple[Tensor, Any]:
        """The inputs joined along the last axis."""
        return ops.concatenate(list(inputs), axis=-1), None

    def relevance(
        self, spec: ConcatenateSpec, params: Any, cache: Any, relevance: Tensor, ctx: NodeContext
    ) -> tuple[tuple[Tensor | None, ...], Tensor | None]:
        """Each input gets the relevance of its slice."""
        return _split(spec, relevance), None

    def gradient(
        self, spec: ConcatenateSpec, params: Any, cache: Any, grad: Tensor, ctx: NodeContext
    ) -> tuple[Tensor | None, ...]:
        """Each input gets the gradient of its slice."""
        return _split(spec, grad)
