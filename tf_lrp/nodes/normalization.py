"""Normalisation over the feature axis: ``LayerNormalization`` and ``BatchNormalization`` (inference).

Both act on the last axis of vectors (B, F) or of every step of a sequence (T, B, F).

* **Layer normalisation** ``y_j = (x_j - μ) / σ · γ_j + β_j`` with ``μ``, ``σ² = var + epsilon``
  over the F features of one sample (and step). LRP (CP-LRP, Ali et al. 2022, "XAI for
  Transformers: better explanations through conservative propagation"): the scale ``1/σ`` is
  treated as a constant, so ``y_j = Σ_i (δ_ij - 1/F) x_i γ_j / σ + β_j`` is a linear map of ``x``
  and the ε-rule with bias share applies: with ``q_j = R_j / (y_j + ε_j)`` (``ε_j = ε·sign(y_j)``),
  ``R_i = x_i (γ_i q_i - mean_j γ_j q_j) / σ + bias_factor · Σ_j (β_j + ε_j) q_j / F`` (two
  reductions, no (F, F) matrix); bias_factor = 1 conserves. Gradient: the true gradient (σ and μ
  depend on ``x``), so Gradient×Input equals autodiff:
  ``dx = (g̃ - mean(g̃) - x̂ · mean(g̃ x̂)) / σ`` with ``g̃ = g γ`` and ``x̂ = (x - μ) / σ``.
* **Batch normalisation** at inference uses the moving statistics: ``y = a x + b`` elementwise
  with ``a = γ / sqrt(moving_variance + epsilon)``, ``b = β - moving_mean · a``; the ε-rule per
  unit: ``R_x = (a x + bias_factor · (b + ε)) · R / (y + ε)``; conserving at bias_factor = 1. The
  Keras converter folds it into a neighbouring Dense / Conv1D where that is exact
  (:mod:`tf_lrp.convert.keras_fold`); this node is the one that remains elsewhere.

Neither reads the mask (like Keras at inference); a masked step's relevance is zero already.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, NamedTuple

from keras import ops

from .._typing import Tensor
from ..layout import NormalizationSpec
from ..rules import signed_eps
from .base import NodeContext, NodeType


class NormParams(NamedTuple):
    """The layer's arrays; None where the option is off (γ = 1, β = 0)."""

    gamma: Tensor | None  # (F,)
    beta: Tensor | None  # (F,)
    moving_mean: Tensor | None  # (F,) batch normalisation only
    moving_variance: Tensor | None  # (F,) batch normalisation only


class NormCache(NamedTuple):
    """What the backward steps read."""

    inputs: Tensor  # (..., F) x
    outputs: Tensor  # (..., F) y
    scale: Tensor  # layer: (..., 1) 1/σ; batch: (F,) a
    shift: Tensor  # (F,) β (layer) or b (batch)


def _vector(value: Tensor | None, x: Tensor, fill: float) -> Tensor:
    """``value`` (F,), or ``fill`` (a 0-d tensor in x's dtype, broadcast like an (F,) vector)."""
    if value is not None:
        return value
    return ops.convert_to_tensor(fill, dtype=x.dtype)


class NormalizationNode(NodeType):
    """Keras ``LayerNormalization`` (last axis) and ``BatchNormalization`` (inference); see the module."""

    kinds: ClassVar[tuple[str, ...]] = ("layer_normalization", "batch_normalization")

    def params(self, spec: NormalizationSpec, arrays: Sequence[Tensor]) -> NormParams:
        """``[gamma], [beta], [moving_mean, moving_variance]`` (Keras order) -> :class:`NormParams`."""
        rest = list(arrays)
        gamma = rest.pop(0) if spec.scale else None
        beta = rest.pop(0) if spec.center else None
        if spec.kind == "batch_normalization":
            return NormParams(gamma, beta, rest[0], rest[1])
        return NormParams(gamma, beta, None, None)

    def cache_floats(self, spec: NormalizationSpec, steps: int) -> int:
        """Input, output and 1/σ per step read."""
        return steps * (2 * spec.features + 1)

    def forward(
        self, spec: NormalizationSpec, params: NormParams, inputs: Sequence[Tensor], mask: Tensor | None
    ) -> tuple[Tensor, NormCache]:
        """Keras's own arithmetic: ``x · inv + (β - μ · inv)`` with ``inv = γ / sqrt(var + epsilon)``."""
        x = inputs[0]
        gamma, beta = _vector(params.gamma, x, 1.0), _vector(params.beta, x, 0.0)
        epsilon = ops.convert_to_tensor(spec.epsilon, dtype=x.dtype)
        if spec.kind == "batch_normalization":
            a = gamma * ops.rsqrt(params.moving_variance + epsilon)
            b = beta - params.moving_mean * a
            y = x * a + b
            return y, NormCache(x, y, a, b)
        mean, variance = ops.moments(x, axes=[-1], keepdims=True)
        inv_sigma = ops.rsqrt(variance + epsilon)
        inv = inv_sigma * gamma
        y = x * inv + (beta - mean * inv)
        return y, NormCache(x, y, inv_sigma, beta)

    def relevance(
        self, spec: NormalizationSpec, params: NormParams, cache: NormCache, relevance: Tensor, ctx: NodeContext
    ) -> tuple[tuple[Tensor | None, ...], Tensor | None]:
        """The ε-rule with bias share on the (frozen-σ) linear map; see the module."""
        stabiliser = signed_eps(cache.outputs, ctx.eps)
        q = relevance / (cache.outputs + stabiliser)
        x = cache.inputs
        if spec.kind == "batch_normalization":
            return ((cache.scale * x + ctx.bias_factor * (cache.shift + stabiliser)) * q,), None
        gq = _vector(params.gamma, x, 1.0) * q
        through = x * (gq - ops.mean(gq, axis=-1, keepdims=True)) * cache.scale
        share = ctx.bias_factor * ops.mean((cache.shift + stabiliser) * q, axis=-1, keepdims=True)
        return (through + share,), None

    def gradient(
        self, spec: NormalizationSpec, params: NormParams, cache: NormCache, grad: Tensor, ctx: NodeContext
    ) -> tuple[Tensor | None, ...]:
        """Batch: ``a · g``; layer: the true gradient (σ and μ depend on x)."""
        if spec.kind == "batch_normalization":
            return (cache.scale * grad,)
        x = cache.inputs
        g = grad * _vector(params.gamma, x, 1.0)
        centred = x - ops.mean(x, axis=-1, keepdims=True)
        normalised = centred * cache.scale
        mean_g = ops.mean(g, axis=-1, keepdims=True)
        mean_gx = ops.mean(g * normalised, axis=-1, keepdims=True)
        return ((g - mean_g - normalised * mean_gx) * cache.scale,)
