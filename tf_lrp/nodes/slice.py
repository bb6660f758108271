"""The slice node: features ``start:stop`` of a vector (B, F) or a sequence (T, B, F).

Relevance (conserving, no rule) and gradient go back to the slice; the other features get zero.
The Keras walker emits it for ``return_state=True``: ``h`` and ``c`` out of the final states.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from keras import ops

from .._typing import Tensor
from ..layout import SliceSpec
from .base import NodeContext, NodeType


def _place(spec: SliceSpec, signal: Tensor) -> Tensor:
    """``signal`` (..., stop - start) at its features of the input (..., input_size), zeros elsewhere."""
    widths = [(0, 0)] * (len(signal.shape) - 1) + [(spec.start, spec.input_size - spec.stop)]
    return ops.pad(signal, widths)


class SliceNode(NodeType):
    """Features ``start:stop`` of its input."""

    kinds: ClassVar[tuple[str, ...]] = ("slice",)

    def cache_floats(self, spec: SliceSpec, steps: int) -> int:
        """Nothing is kept."""
        return 0

    def forward(
        self, spec: SliceSpec, params: Any, inputs: Sequence[Tensor], mask: Tensor | None
    ) -> tuple[Tensor, Any]:
        """The slice."""
        return inputs[0][..., spec.start : spec.stop], None

    def relevance(
        self, spec: SliceSpec, params: Any, cache: Any, relevance: Tensor, ctx: NodeContext
    ) -> tuple[tuple[Tensor | None, ...], Tensor | None]:
        """The slice's relevance back at its features."""
        return (_place(spec, relevance),), None

    def gradient(
        self, spec: SliceSpec, params: Any, cache: Any, grad: Tensor, ctx: NodeContext
    ) -> tuple[Tensor | None, ...]:
        """The slice's gradient back at its features."""
        return (_place(spec, grad),)
