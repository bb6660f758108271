"""The repeat_vector node: Keras ``RepeatVector(n)``, one vector (B, F) -> the sequence (n, B, F).

Each output step is a copy of the input: relevance and gradient at the input are the sums over
the n copies (conserving). The output carries no mask (Keras's RepeatVector has none).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from keras import ops

from .._typing import Tensor
from ..layout import RepeatVectorSpec
from .base import NodeContext, NodeType


class RepeatVectorNode(NodeType):
    """Keras ``RepeatVector``."""

    kinds: ClassVar[tuple[str, ...]] = ("repeat_vector",)

    def cache_floats(self, spec: RepeatVectorSpec, steps: int) -> int:
        """Nothing: the backward steps only sum."""
        return 0

    def output_mask(self, spec: RepeatVectorSpec, mask: Tensor | None) -> Tensor | None:
        """None: the repeated sequence has no mask."""
        return None

    def forward(
        self, spec: RepeatVectorSpec, params: Any, inputs: Sequence[Tensor], mask: Tensor | None
    ) -> tuple[Tensor, None]:
        """(B, F) -> (n, B, F)."""
        x = inputs[0]
        return ops.broadcast_to(ops.expand_dims(x, 0), (spec.n, *ops.shape(x))), None

    def relevance(
        self, spec: RepeatVectorSpec, params: Any, cache: None, relevance: Tensor, ctx: NodeContext
    ) -> tuple[tuple[Tensor | None, ...], Tensor | None]:
        """The sum over the copies."""
        return (ops.sum(relevance, axis=0),), None

    def gradient(
        self, spec: RepeatVectorSpec, params: Any, cache: None, grad: Tensor, ctx: NodeContext
    ) -> tuple[Tensor | None, ...]:
        """The sum over the copies."""
        return (ops.sum(grad, axis=0),)
