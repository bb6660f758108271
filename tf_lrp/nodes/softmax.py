"""A softmax over the time axis of a sequence: the attention weights of an attention pooling.

``a_tf = exp(x_tf) / Σ_s exp(x_sf)`` over the steps t of each sample and feature f (Keras
``Softmax(axis=1)``, PyTorch ``torch.softmax(scores, dim=1)``). Masked steps are set to -1e9
before the softmax and their weight to 0 after it, as Keras's ``Softmax`` does with a mask.

**LRP: CP-LRP** (Ali et al. 2022; the default): the attention weights are constants, like the
gates of an LSTM; the ``weighted_sum`` that reads them passes them no relevance, so none arrives
here, and whatever does is absorbed (none passes to the scores). **AttnLRP** (Achtibat et al.
2024; ``RuleSet(attention="attnlrp")``): ``R_x = x ⊙ (R_a − a Σ_t R_a)`` (the rule of
:func:`~tf_lrp.nodes.attention.attnlrp_softmax`, over the time axis); masked steps get exactly 0.

**Gradient**: the true gradient of the softmax (0 at masked steps).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, NamedTuple

from keras import ops

from .._typing import Tensor
from ..layout import SoftmaxSpec
from .attention import MASKED_SCORE, attnlrp_softmax, softmax_gradient, uses_cp_lrp
from .base import NodeContext, NodeType


def _time_last(x: Tensor) -> Tensor:
    """(T, B, F) -> (B, F, T)."""
    return ops.transpose(x, (1, 2, 0))


def _time_first(x: Tensor) -> Tensor:
    """(B, F, T) -> (T, B, F)."""
    return ops.transpose(x, (2, 0, 1))


def masked_softmax(x: Tensor, mask: Tensor | None) -> Tensor:
    """(T, B, F) softmax over the time axis; masked steps (mask (T, B, 1) False) get the weight 0 (Keras's rule)."""
    if mask is None:
        return ops.softmax(x, axis=0)
    shifted = ops.where(mask, x, -MASKED_SCORE * ops.ones_like(x))
    return ops.where(mask, ops.softmax(shifted, axis=0), ops.zeros_like(x))


class SoftmaxCache(NamedTuple):
    """The scores and the weights, (T, B, F)."""

    scores: Tensor
    weights: Tensor


class SoftmaxNode(NodeType):
    """Softmax over time: CP-LRP passes no relevance, AttnLRP its softmax rule; the true gradient."""

    kinds: ClassVar[tuple[str, ...]] = ("softmax",)
    takes_mask: ClassVar[bool] = True

    def cache_floats(self, spec: SoftmaxSpec, steps: int) -> int:
        """The weights per step (the scores are their producer's)."""
        return steps * spec.features

    def forward(
        self, spec: SoftmaxSpec, params: Any, inputs: Sequence[Tensor], mask: Tensor | None
    ) -> tuple[Tensor, SoftmaxCache]:
        """``softmax`` over the time axis (masked steps 0)."""
        weights = masked_softmax(inputs[0], mask)
        return weights, SoftmaxCache(inputs[0], weights)

    def relevance(
        self, spec: SoftmaxSpec, params: Any, cache: SoftmaxCache, relevance: Tensor, ctx: NodeContext
    ) -> tuple[tuple[Tensor | None, ...], Tensor | None]:
        """CP-LRP: none passes; AttnLRP: ``x ⊙ (R − a Σ_t R)``."""
        if uses_cp_lrp(ctx):
            return (None,), None
        r_scores = attnlrp_softmax(_time_last(cache.scores), _time_last(cache.weights), _time_last(relevance))
        return (_time_first(r_scores),), None

    def gradient(
        self, spec: SoftmaxSpec, params: Any, cache: SoftmaxCache, grad: Tensor, ctx: NodeContext
    ) -> tuple[Tensor | None, ...]:
        """``a ⊙ (g − Σ_t a g)``."""
        return (_time_first(softmax_gradient(_time_last(cache.weights), _time_last(grad))),)
