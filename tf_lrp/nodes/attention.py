"""Attention over a sequence: Keras ``Attention`` (dot / concat scores) and ``AdditiveAttention``.

Inputs (query, value[, key]) are time-major sequences (Tq, B, Dq), (Tv, B, Dv), (Tv, B, Dq); the
key is the value when absent. With ``s_ts`` the score of query step t and key step s:

* dot: ``s_ts = c · q_t · k_s`` (``c`` the learned scalar ``scale`` with ``use_scale``, else 1);
* concat: ``s_ts = w · Σ_d tanh(c (q_td + k_sd))`` (``w`` the ``concat_score_weight``);
* additive: ``s_ts = Σ_d σ_d tanh(q_td + k_sd)`` (``σ`` the ``scale`` vector with ``use_scale``, else 1).

Masked keys (the value's step mask, and ``s > t`` with ``use_causal_mask``) are shifted by -1e9
before the softmax over s, exactly as Keras does (their weight is exactly 0); ``a = softmax(s)``;
the output is ``o_tj = m_t Σ_s a_ts v_sj`` with ``m_t`` the query's step mask (Keras zeroes
masked query steps). We write ``â_ts = m_t a_ts`` (the effective weights).

**LRP: CP-LRP** (Ali et al. 2022, "XAI for Transformers: better explanations through conservative
propagation"): the attention weights are constants, like the gates of an LSTM under
signal-take-all. ``o = â v`` is then a linear node without bias in the values; its ε-rule gives
``R_sj = Σ_t â_ts (v_sj + bias_factor · ε_tj) · R_tj / (o_tj + ε_tj)`` with ``ε_tj = ε·sign(o_tj)``
(the stabiliser's share of output t spread over the values in proportion to the weights), so
bias_factor = 1 conserves exactly; query and key receive no relevance.

**LRP: AttnLRP** (Achtibat et al. 2024; ``RuleSet(attention="attnlrp")``): the same ε-rule over
the products ``â_ts v_sj``, each split half and half between value and weight (the uniform rule);
the softmax passes ``R_s = s ⊙ (R_a − a Σ_s R_a)`` to its input scores (the rest is absorbed, as
by a bias); a dot score ``c Σ_d q_td k_sd`` is an ε-node over its D products, each split half and
half between query and key; a concat / additive score ``Σ_d w_d tanh(c (q_td + k_sd))`` is an
ε-node over d, relevance passes tanh unchanged (identity rule) and each ``q_td + k_sd`` splits by
the ε-rule of a sum. The stabiliser shares (times bias_factor) are spread as in the ε-rule.

**Gradient**: the true gradient, through the softmax into the scores and from them into query
and key (Gradient×Input equals autodiff).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, NamedTuple

from keras import ops

from .._typing import Tensor
from ..layout import AttentionSpec
from ..rules import signed_eps
from .base import NodeContext, NodeType

#: the shift Keras gives masked scores before the softmax
MASKED_SCORE = 1.0e9


def uses_cp_lrp(ctx: NodeContext) -> bool:
    """Whether an attention node runs CP-LRP: the rule map's attention rule, the default without resolved rules."""
    return ctx.rules is None or ctx.rules.attention == "cp_lrp"


def batch_major(x: Tensor) -> Tensor:
    """(T, B, F) <-> (B, T, F)."""
    return ops.transpose(x, (1, 0, 2))


def swap(x: Tensor) -> Tensor:
    """Swap the last two axes."""
    return ops.swapaxes(x, -1, -2)


def causal_mask(q_steps: Any, v_steps: Any) -> Tensor:
    """(1, Tq, Tv) bool: query step t sees value steps s <= t (Keras's ``use_causal_mask``)."""
    rows = ops.expand_dims(ops.arange(q_steps), 1)
    cols = ops.expand_dims(ops.arange(v_steps), 0)
    return ops.expand_dims(rows >= cols, 0)


def allowed_keys(
    q_mask: Tensor | None, v_mask: Tensor | None, causal: bool, q_steps: Any, v_steps: Any, with_query: bool
) -> Tensor | None:
    """(B or 1, Tq, Tv) bool: which (query, key) pairs may attend, or None when all may.

    Args:
        q_mask: (Tq, B, 1) query step mask or None (only read when ``with_query``).
        v_mask: (Tv, B, 1) value (key) step mask or None.
        causal: whether ``use_causal_mask`` is on.
        q_steps: Tq.
        v_steps: Tv.
        with_query: whether masked query rows are masked too (MultiHeadAttention) or not (Attention).
    """
    allowed = None
    if with_query and q_mask is not None:
        allowed = ops.transpose(q_mask, (1, 0, 2))  # (B, Tq, 1)
    if v_mask is not None:
        keys = ops.transpose(v_mask, (1, 2, 0))  # (B, 1, Tv)
        allowed = keys if allowed is None else ops.logical_and(allowed, keys)
    if causal:
        tri = causal_mask(q_steps, v_steps)
        allowed = tri if allowed is None else ops.logical_and(allowed, tri)
    return allowed


def softmax_gradient(weights: Tensor, grad: Tensor) -> Tensor:
    """The gradient at the scores of ``weights = softmax(scores, axis=-1)`` given the gradient at the weights."""
    return weights * (grad - ops.sum(weights * grad, axis=-1, keepdims=True))


def weighted_sum_relevance(
    weights: Tensor, values: Tensor, out: Tensor, relevance: Tensor, eps: Tensor, bias_factor: Tensor
) -> Tensor:
    """The ε-rule of ``out = weights @ values`` with constant weights (CP-LRP); conserving at bias_factor = 1.

    ``R_sj = Σ_t w_ts (v_sj + bias_factor · ε_tj) R_tj / (o_tj + ε_tj)``, ``ε_tj = ε·sign(o_tj)``.

    Args:
        weights: (..., Tq, Tv) the attention weights.
        values: (..., Tv, F).
        out: (..., Tq, F) ``weights @ values``.
        relevance: (..., Tq, F) at ``out``.
        eps: 0-d stabiliser.
        bias_factor: 0-d share factor of the stabiliser.

    Returns:
        (..., Tv, F) relevance of the values.
    """
    stabiliser = signed_eps(out, eps)
    q = relevance / (out + stabiliser)
    back = swap(weights)
    return values * ops.matmul(back, q) + bias_factor * ops.matmul(back, stabiliser * q)


def attnlrp_weighted_sum(
    weights: Tensor, values: Tensor, out: Tensor, relevance: Tensor, eps: Tensor, bias_factor: Tensor
) -> tuple[Tensor, Tensor]:
    """AttnLRP on ``out = weights @ values``: the ε-rule over the products, each split half and half.

    ``R_(ts j) = (w_ts v_sj + bias_factor · w_ts ε_tj) R_tj / (o_tj + ε_tj)``; the uniform rule
    gives half of each to ``v_sj`` and half to ``w_ts`` (conserving at bias_factor = 1).

    Args:
        weights: (..., Tq, Tv).
        values: (..., Tv, F).
        out: (..., Tq, F).
        relevance: (..., Tq, F) at ``out``.
        eps: 0-d stabiliser.
        bias_factor: 0-d share factor.

    Returns:
        The relevance of the values (..., Tv, F) and of the weights (..., Tq, Tv).
    """
    stabiliser = signed_eps(out, eps)
    q = relevance / (out + stabiliser)
    back = swap(weights)
    r_values = (values * ops.matmul(back, q) + bias_factor * ops.matmul(back, stabiliser * q)) / 2
    per_row = bias_factor * ops.sum(stabiliser * q, axis=-1, keepdims=True)
    r_weights = weights * (ops.matmul(q, swap(values)) + per_row) / 2
    return r_values, r_weights


def attnlrp_softmax(raw: Tensor, weights: Tensor, relevance: Tensor) -> Tensor:
    """AttnLRP's softmax rule (Achtibat et al. 2024, Prop. 3.1): ``R_s = s ⊙ (R_a − a Σ R_a)`` over the last axis."""
    return raw * (relevance - weights * ops.sum(relevance, axis=-1, keepdims=True))


def attnlrp_dot(
    query: Tensor, key: Tensor, scores: Tensor, relevance: Tensor, scale: Any, eps: Tensor, bias_factor: Tensor
) -> tuple[Tensor, Tensor]:
    """AttnLRP on ``s_ts = c Σ_d q_td k_sd``: the ε-rule over d, each product split half and half.

    The stabiliser's share (times bias_factor) is spread evenly over the D products.

    Returns:
        The relevance of the query (..., Tq, D) and of the key (..., Tv, D).
    """
    stabiliser = signed_eps(scores, eps)
    q = relevance / (scores + stabiliser)
    width = ops.cast(ops.shape(query)[-1], scores.dtype)
    share = bias_factor * stabiliser * q / width  # (..., Tq, Tv) per product
    r_query = (scale * query * ops.matmul(q, key) + ops.sum(share, axis=-1, keepdims=True)) / 2
    r_key = (scale * key * ops.matmul(swap(q), query) + ops.expand_dims(ops.sum(share, axis=-2), -1)) / 2
    return r_query, r_key


def _attnlrp_tanh_scores(
    spec: AttentionSpec, params: AttentionParams, query: Tensor, key: Tensor, scores: Tensor, relevance: Tensor,
    eps: Tensor, bias_factor: Tensor,
) -> tuple[Tensor, Tensor]:  # fmt: skip
    """AttnLRP on ``s = Σ_d w_d tanh(c (q_td + k_sd))``: ε over d, identity through tanh, ε on the sum q + k."""
    pairs = _pairs(query, key)  # (B, Tq, Tv, D)
    if spec.score_mode == "concat":
        c = params.scale if spec.use_scale else ops.ones((), dtype=query.dtype)
        terms = params.concat_weight * ops.tanh(c * pairs)
    else:
        terms = ops.tanh(pairs)
        terms = params.scale * terms if spec.use_scale else terms
    stabiliser = signed_eps(scores, eps)
    q = ops.expand_dims(relevance / (scores + stabiliser), -1)
    width = ops.cast(ops.shape(query)[-1], scores.dtype)
    r_terms = (terms + bias_factor * ops.expand_dims(stabiliser, -1) / width) * q  # identity through tanh
    pair_stabiliser = signed_eps(pairs, eps)
    qp = r_terms / (pairs + pair_stabiliser)
    half = bias_factor * pair_stabiliser * qp / 2
    r_query = ops.sum(ops.expand_dims(query, 2) * qp + half, axis=2)
    r_key = ops.sum(ops.expand_dims(key, 1) * qp + half, axis=1)
    return r_query, r_key


class AttentionCache(NamedTuple):
    """What the backward steps read (batch-major)."""

    query: Tensor  # (B, Tq, Dq)
    key: Tensor  # (B, Tv, Dq)
    value: Tensor  # (B, Tv, Dv)
    raw: Tensor  # (B, Tq, Tv) the scores before masking
    weights: Tensor  # (B, Tq, Tv) softmax of the scores
    effective: Tensor  # (B, Tq, Tv) the weights times the query mask
    rows: Tensor  # (B, Tq, 1) the query mask as 0 / 1
    output: Tensor  # (B, Tq, Dv)


class AttentionParams(NamedTuple):
    """The learned scalars (or the additive scale vector); ones where the layer has none."""

    scale: Tensor  # (1,) dot / concat, (Dq,) additive
    concat_weight: Tensor  # (1,) concat, else 1


def _pairs(query: Tensor, key: Tensor) -> Tensor:
    """(B, Tq, Tv, D) ``q_td + k_sd``."""
    return ops.expand_dims(query, 2) + ops.expand_dims(key, 1)


def scores(spec: AttentionSpec, params: AttentionParams, query: Tensor, key: Tensor) -> Tensor:
    """(B, Tq, Tv) the raw scores of the spec's score mode (Keras's ``_calculate_scores``)."""
    if spec.score_mode == "dot":
        raw = ops.matmul(query, swap(key))
        return raw * params.scale if spec.use_scale else raw
    pairs = _pairs(query, key)
    if spec.score_mode == "concat":
        inner = params.scale * pairs if spec.use_scale else pairs
        return params.concat_weight * ops.sum(ops.tanh(inner), axis=-1)
    activated = ops.tanh(pairs)
    return ops.sum(params.scale * activated if spec.use_scale else activated, axis=-1)


def score_gradient(
    spec: AttentionSpec, params: AttentionParams, query: Tensor, key: Tensor, grad: Tensor
) -> tuple[Tensor, Tensor]:
    """The gradient at the query (B, Tq, Dq) and the key (B, Tv, Dq) given the gradient (B, Tq, Tv) at the scores."""
    if spec.score_mode == "dot":
        c = params.scale if spec.use_scale else ops.ones((), dtype=query.dtype)
        return c * ops.matmul(grad, key), c * ops.matmul(swap(grad), query)
    pairs = _pairs(query, key)
    if spec.score_mode == "concat":
        c = params.scale if spec.use_scale else ops.ones((), dtype=query.dtype)
        u = ops.tanh(c * pairs)
        slope = params.concat_weight * c * (1 - u * u)
    else:
        u = ops.tanh(pairs)
        slope = params.scale * (1 - u * u) if spec.use_scale else 1 - u * u
    per_pair = ops.expand_dims(grad, -1) * slope  # (B, Tq, Tv, D)
    return ops.sum(per_pair, axis=2), ops.sum(per_pair, axis=1)


class AttentionNode(NodeType):
    """Keras ``Attention`` / ``AdditiveAttention``: CP-LRP, true gradient (see the module)."""

    kinds: ClassVar[tuple[str, ...]] = ("attention",)
    takes_masks: ClassVar[bool] = True

    def params(self, spec: AttentionSpec, arrays: Sequence[Tensor]) -> AttentionParams:
        """``[scale] [concat_score_weight]`` in Keras order; ones for the absent ones."""
        rest = list(arrays)
        dtype = rest[0].dtype if rest else "float32"
        one = ops.ones((), dtype=dtype)
        scale = rest.pop(0) if spec.use_scale else one
        weight = rest.pop(0) if spec.score_mode == "concat" else one
        return AttentionParams(scale, weight)

    def cache_floats(self, spec: AttentionSpec, steps: int) -> int:
        """Query, key, value, output per step and three (Tq, Tv) matrices (scores, weights, effective weights)."""
        return steps * (2 * spec.query_size + 2 * spec.value_size) + 3 * steps * steps

    def forward(
        self, spec: AttentionSpec, params: AttentionParams, inputs: Sequence[Tensor], mask: Any
    ) -> tuple[Tensor, AttentionCache]:
        """``o_t = m_t Σ_s softmax_s(scores)_ts v_s`` (Keras's masking; see the module)."""
        query, value = batch_major(inputs[0]), batch_major(inputs[1])
        key = batch_major(inputs[2]) if spec.has_key else value
        masks = tuple(mask) if mask is not None else (None,) * len(inputs)
        q_mask, v_mask = masks[0], masks[1]
        raw = scores(spec, params, query, key)
        shifted = raw
        allowed = allowed_keys(q_mask, v_mask, spec.causal, ops.shape(query)[1], ops.shape(key)[1], False)
        if allowed is not None:
            shifted = ops.where(allowed, raw, raw - MASKED_SCORE)
        weights = ops.softmax(shifted, axis=-1)
        rows = ops.ones_like(weights[..., :1]) if q_mask is None else ops.cast(batch_major(q_mask), weights.dtype)
        effective = weights * rows
        output = ops.matmul(effective, value)
        return batch_major(output), AttentionCache(query, key, value, raw, weights, effective, rows, output)

    def relevance(
        self, spec: AttentionSpec, params: AttentionParams, cache: AttentionCache, relevance: Tensor, ctx: NodeContext
    ) -> tuple[tuple[Tensor | None, ...], Tensor | None]:
        """CP-LRP (all relevance to the values; query and key get none) or AttnLRP (see the module)."""
        r_out = batch_major(relevance)
        if uses_cp_lrp(ctx):
            r_value = weighted_sum_relevance(
                cache.effective, cache.value, cache.output, r_out, ctx.eps, ctx.bias_factor
            )
            return ((None, batch_major(r_value), None) if spec.has_key else (None, batch_major(r_value))), None
        r_value, r_weights = attnlrp_weighted_sum(
            cache.effective, cache.value, cache.output, r_out, ctx.eps, ctx.bias_factor
        )
        r_scores = attnlrp_softmax(cache.raw, cache.weights, r_weights)
        if spec.score_mode == "dot":
            scale = params.scale if spec.use_scale else ops.ones((), dtype=r_out.dtype)
            r_query, r_key = attnlrp_dot(cache.query, cache.key, cache.raw, r_scores, scale, ctx.eps, ctx.bias_factor)
        else:
            r_query, r_key = _attnlrp_tanh_scores(
                spec, params, cache.query, cache.key, cache.raw, r_scores, ctx.eps, ctx.bias_factor
            )
        if spec.has_key:
            return (batch_major(r_query), batch_major(r_value), batch_major(r_key)), None
        return (batch_major(r_query), batch_major(r_value + r_key)), None

    def gradient(
        self, spec: AttentionSpec, params: AttentionParams, cache: AttentionCache, grad: Tensor, ctx: NodeContext
    ) -> tuple[Tensor | None, ...]:
        """Through the weighted sum, the softmax and the scores into query, key and value."""
        g = batch_major(grad)
        g_value = ops.matmul(swap(cache.effective), g)
        g_effective = ops.matmul(g, swap(cache.value))
        g_scores = softmax_gradient(cache.weights, g_effective * cache.rows)
        g_query, g_key = score_gradient(spec, params, cache.query, cache.key, g_scores)
        if spec.has_key:
            return batch_major(g_query), batch_major(g_value), batch_major(g_key)
        return batch_major(g_query), batch_major(g_value + g_key)
