"""The embedding node: token ids (B, T) -> vectors (T, B, E).

Relevance stops at the embedded vectors (the attribution point of a token input): the methods
report the relevance of the vectors, summed per token by ``Explanation.token_relevance``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from keras import ops

from .._typing import Tensor
from ..layout import EmbeddingSpec
from .base import NodeContext, NodeType


class EmbeddingNode(NodeType):
    """Keras ``Embedding``: a lookup; the ids take no relevance and no gradient."""

    kinds: ClassVar[tuple[str, ...]] = ("embedding",)

    def cache_floats(self, spec: EmbeddingSpec, steps: int) -> int:
        """The embedded vectors (T·E per sample)."""
        return steps * spec.output_dim

    def forward(
        self, spec: EmbeddingSpec, params: Any, inputs: Sequence[Tensor], mask: Tensor | None
    ) -> tuple[Tensor, Any]:
        """``embeddings[ids]``, ids (T, B) time-major -> (T, B, E)."""
        (embeddings,) = params
        return ops.take(embeddings, inputs[0], axis=0), None

    def relevance(
        self, spec: EmbeddingSpec, params: Any, cache: Any, relevance: Tensor, ctx: NodeContext
    ) -> tuple[tuple[Tensor | None, ...], Tensor | None]:
        """Token ids take no relevance (the network reports it at the vectors)."""
        return (None,), None

    def gradient(
        self, spec: EmbeddingSpec, params: Any, cache: Any, grad: Tensor, ctx: NodeContext
    ) -> tuple[Tensor | None, ...]:
        """Token ids are not differentiable."""
        return (None,)
