"""Keras ``MultiHeadAttention`` over the time axis: (query, value[, key]) -> (Tq, B, out_size).

Per head h: ``Q = q Wq_h + bq_h``, ``K = k Wk_h + bk_h``, ``V = v Wv_h + bv_h``; scores
``Q Kᵀ / √key_dim``; the attention mask is the query's step mask × the value's (Keras's
``_compute_attention_mask``) × the causal mask with ``use_causal_mask``; masked pairs get the score
-1e9 before the softmax (as Keras's backends do); ``C_h = a_h V_h``; ``o = Σ_h C_h Wo_h + bo``.

**LRP: CP-LRP** (Ali et al. 2022): the attention weights are constants. The output's relevance
goes through three linear nodes by the ε-rule with bias share: the output projection (its
inputs: every head's context), the weighted sum per head (no bias; the stabiliser's share in
proportion to the weights, see :func:`~tf_lrp.nodes.attention.weighted_sum_relevance`) and the
value projection. bias_factor = 1 conserves; query and key get no relevance.

**Gradient**: the true gradient through the softmax into the query and key projections.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar, NamedTuple

import numpy as np
from keras import ops

from .._typing import Tensor
from ..layout import MultiHeadAttentionSpec
from ..rules import epsilon_node
from .attention import (
    MASKED_SCORE,
    allowed_keys,
    attnlrp_dot,
    attnlrp_softmax,
    attnlrp_weighted_sum,
    batch_major,
    softmax_gradient,
    swap,
    uses_cp_lrp,
    weighted_sum_relevance,
)
from .base import NodeContext, NodeType


class MhaParams(NamedTuple):
    """The four projections (zero biases when ``use_bias`` is off)."""

    query_kernel: Tensor  # (Dq, H, Kd)
    query_bias: Tensor  # (H, Kd)
    key_kernel: Tensor  # (Dk, H, Kd)
    key_bias: Tensor  # (H, Kd)
    value_kernel: Tensor  # (Dv, H, Vd)
    value_bias: Tensor  # (H, Vd)
    output_kernel: Tensor  # (H, Vd, O)
    output_bias: Tensor  # (O,)


class MhaCache(NamedTuple):
    """What the backward steps read (batch-major)."""

    query: Tensor  # (B, Tq, Dq)
    key: Tensor  # (B, Tk, Dk)
    value: Tensor  # (B, Tk, Dv)
    q_heads: Tensor  # (B, H, Tq, Kd) projected query (unscaled)
    k_heads: Tensor  # (B, H, Tk, Kd)
    v_heads: Tensor  # (B, H, Tk, Vd)
    raw: Tensor  # (B, H, Tq, Tk) the scaled scores before masking
    weights: Tensor  # (B, H, Tq, Tk)
    allowed: Tensor  # (B or 1, 1, Tq, Tk) 0 / 1: pairs that may attend
    context: Tensor  # (B, H, Tq, Vd)
    output: Tensor  # (B, Tq, O) the output (pre-activation: the layer has no activation)


def _scale(spec: MultiHeadAttentionSpec) -> float:
    """``1/√key_dim`` rounded to float32, as Keras's attention kernel applies it (also to float64 layers)."""
    return float(np.float32(1.0 / math.sqrt(float(spec.key_dim))))


def _project(x: Tensor, kernel: Tensor, bias: Tensor) -> Tensor:
    """(B, T, D) @ (D, H, K) + (H, K) -> (B, H, T, K)."""
    return ops.einsum("btd,dhk->bhtk", x, kernel) + ops.expand_dims(bias, 1)


def _project_back(grad: Tensor, kernel: Tensor) -> Tensor:
    """The gradient (B, H, T, K) at a projection's output -> (B, T, D) at its input."""
    return ops.einsum("bhtk,dhk->btd", grad, kernel)


def _flat_heads(x: Tensor) -> Tensor:
    """(B, H, T, K) -> (B, T, H·K)."""
    shape = ops.shape(x)
    return ops.reshape(ops.transpose(x, (0, 2, 1, 3)), (shape[0], shape[2], shape[1] * shape[3]))


def _split_heads(x: Tensor, heads: int) -> Tensor:
    """(B, T, H·K) -> (B, H, T, K)."""
    shape = ops.shape(x)
    return ops.transpose(ops.reshape(x, (shape[0], shape[1], heads, shape[2] // heads)), (0, 2, 1, 3))


def _projection_relevance(
    inputs: Tensor, heads: Tensor, kernel: Tensor, bias: Tensor, relevance: Tensor, ctx: NodeContext,
    sizes: tuple[int, int, int],
) -> Tensor:  # fmt: skip
    """The ε-rule with bias share of a projection ``heads = inputs @ kernel + bias``: (B, H, T, K) -> (B, T, D).

    ``sizes`` is the kernel's shape (D, H, K).
    """
    width, count, size = sizes
    flat_kernel = ops.reshape(kernel, (width, count * size))
    q, share = epsilon_node(
        _flat_heads(heads), _flat_heads(relevance), ops.reshape(bias, (count * size,)), ctx.eps, ctx.bias_factor, width
    )
    return inputs * ops.matmul(q, ops.transpose(flat_kernel)) + share


class MultiHeadAttentionNode(NodeType):
    """Keras ``MultiHeadAttention``: CP-LRP, true gradient (see the module)."""

    kinds: ClassVar[tuple[str, ...]] = ("multi_head_attention",)
    takes_masks: ClassVar[bool] = True

    def params(self, spec: MultiHeadAttentionSpec, arrays: Sequence[Tensor]) -> MhaParams:
        """Kernels and biases in Keras order (query, key, value, output)."""
        if spec.use_bias:
            return MhaParams(*arrays)
        qk, kk, vk, ok = arrays
        return MhaParams(
            qk, ops.zeros(ops.shape(qk)[1:], dtype=qk.dtype), kk, ops.zeros(ops.shape(kk)[1:], dtype=kk.dtype),
            vk, ops.zeros(ops.shape(vk)[1:], dtype=vk.dtype), ok, ops.zeros(ops.shape(ok)[-1:], dtype=ok.dtype),
        )  # fmt: skip

    def cache_floats(self, spec: MultiHeadAttentionSpec, steps: int) -> int:
        """Inputs, projections, context and output per step, and two (Tq, Tk) matrices per head."""
        heads = spec.num_heads
        per_step = spec.query_size + spec.key_size + spec.value_size + spec.out_size
        per_step += heads * (2 * spec.key_dim + 2 * spec.value_dim)
        return steps * per_step + (heads + 1) * steps * steps

    def forward(
        self, spec: MultiHeadAttentionSpec, params: MhaParams, inputs: Sequence[Tensor], mask: Any
    ) -> tuple[Tensor, MhaCache]:
        """The layer's output (Keras's masking; see the module)."""
        query, value = batch_major(inputs[0]), batch_major(inputs[1])
        key = batch_major(inputs[2]) if spec.has_key else value
        masks = tuple(mask) if mask is not None else (None,) * len(inputs)
        q_mask, v_mask = masks[0], masks[1]
        if spec.has_key and masks[2] is not None:  # Keras combines the key's mask with the value's
            v_mask = masks[2] if v_mask is None else ops.logical_and(v_mask, masks[2])
        q_heads = _project(query, params.query_kernel, params.query_bias)
        k_heads = _project(key, params.key_kernel, params.key_bias)
        v_heads = _project(value, params.value_kernel, params.value_bias)
        scale = _scale(spec)
        raw = ops.matmul(q_heads, swap(k_heads)) * scale
        shifted = raw
        allowed = allowed_keys(q_mask, v_mask, spec.causal, ops.shape(query)[1], ops.shape(key)[1], True)
        if allowed is None:
            allowed_f = ops.ones((1, 1, 1, 1), dtype=raw.dtype)
        else:
            allowed = ops.expand_dims(allowed, 1)
            allowed_f = ops.cast(allowed, raw.dtype)
            shifted = ops.where(allowed, raw, -MASKED_SCORE * ops.ones_like(raw))
        weights = ops.softmax(shifted, axis=-1)
        context = ops.matmul(weights, v_heads)
        output = ops.einsum("bhtv,hvo->bto", context, params.output_kernel) + params.output_bias
        cache = MhaCache(query, key, value, q_heads, k_heads, v_heads, raw, weights, allowed_f, context, output)
        return batch_major(output), cache

    def relevance(
        self, spec: MultiHeadAttentionSpec, params: MhaParams, cache: MhaCache, relevance: Tensor, ctx: NodeContext
    ) -> tuple[tuple[Tensor | None, ...], Tensor | None]:
        """CP-LRP: ε-rule (bias share) through the output projection, the weighted sum, the value projection."""
        heads = spec.num_heads
        r_out = batch_major(relevance)  # (B, Tq, O)
        out_kernel = ops.reshape(params.output_kernel, (heads * spec.value_dim, spec.out_size))
        width = heads * spec.value_dim
        q, share = epsilon_node(cache.output, r_out, params.output_bias, ctx.eps, ctx.bias_factor, width)
        r_context = _flat_heads(cache.context) * ops.matmul(q, ops.transpose(out_kernel)) + share
        r_context = _split_heads(r_context, heads)
        v_sizes = (spec.value_size, heads, spec.value_dim)
        if uses_cp_lrp(ctx):
            r_v_heads = weighted_sum_relevance(
                cache.weights, cache.v_heads, cache.context, r_context, ctx.eps, ctx.bias_factor
            )
            r_value = batch_major(_projection_relevance(cache.value, cache.v_heads, params.value_kernel,
                                                        params.value_bias, r_v_heads, ctx, v_sizes))  # fmt: skip
            return ((None, r_value, None) if spec.has_key else (None, r_value)), None
        r_v_heads, r_weights = attnlrp_weighted_sum(
            cache.weights, cache.v_heads, cache.context, r_context, ctx.eps, ctx.bias_factor
        )
        r_scores = attnlrp_softmax(cache.raw, cache.weights, r_weights) * cache.allowed
        r_q_heads, r_k_heads = attnlrp_dot(
            cache.q_heads, cache.k_heads, cache.raw, r_scores, _scale(spec), ctx.eps, ctx.bias_factor
        )
        q_sizes = (spec.query_size, heads, spec.key_dim)
        k_sizes = (spec.key_size, heads, spec.key_dim)
        r_value = _projection_relevance(cache.value, cache.v_heads, params.value_kernel, params.value_bias, r_v_heads,
                                        ctx, v_sizes)  # fmt: skip
        r_query = _projection_relevance(cache.query, cache.q_heads, params.query_kernel, params.query_bias, r_q_heads,
                                        ctx, q_sizes)  # fmt: skip
        r_key = _projection_relevance(cache.key, cache.k_heads, params.key_kernel, params.key_bias, r_k_heads,
                                      ctx, k_sizes)  # fmt: skip
        if spec.has_key:
            return (batch_major(r_query), batch_major(r_value), batch_major(r_key)), None
        return (batch_major(r_query), batch_major(r_value + r_key)), None

    def gradient(
        self, spec: MultiHeadAttentionSpec, params: MhaParams, cache: MhaCache, grad: Tensor, ctx: NodeContext
    ) -> tuple[Tensor | None, ...]:
        """Through the output projection, the weighted sum, the softmax and the three input projections."""
        g_context = ops.einsum("bto,hvo->bhtv", batch_major(grad), params.output_kernel)
        g_v_heads = ops.matmul(swap(cache.weights), g_context)
        g_weights = ops.matmul(g_context, swap(cache.v_heads))
        g_scores = softmax_gradient(cache.weights, g_weights) * cache.allowed
        scale = _scale(spec)
        g_q_heads = ops.matmul(g_scores, cache.k_heads) * scale
        g_k_heads = ops.matmul(swap(g_scores), cache.q_heads) * scale
        g_query = _project_back(g_q_heads, params.query_kernel)
        g_key = _project_back(g_k_heads, params.key_kernel)
        g_value = _project_back(g_v_heads, params.value_kernel)
        if spec.has_key:
            return batch_major(g_query), batch_major(g_value), batch_major(g_key)
        return batch_major(g_query), batch_major(g_value + g_key)
