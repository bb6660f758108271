"""Attention nodes (tf_lrp/nodes/attention.py, multi_head_attention.py): forward equals the Keras layer
with its masks (float64), CP-LRP against a per-connection float64 numpy oracle, the gradient against
``tf.GradientTape`` on the Keras layer, conservation at bias_factor = 1, the converter's refusals,
and a toy task whose deciding token relevance must find."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tests.nodekit import attention_rules, batch_major, node_context, time_major
from tf_lrp import ConversionError, Explainer, InputError
from tf_lrp.layout import AttentionSpec, MultiHeadAttentionSpec
from tf_lrp.nodes import NODES
from tf_lrp.rules import RuleSet

L = keras.layers
F64 = {"dtype": "float64"}
B, TQ, TV, DQ, DV = 3, 4, 5, 3, 2
LENGTHS_Q, LENGTHS_V = np.array([4, 2, 3]), np.array([5, 3, 1])

ATTENTION_CASES = [
    ("dot", False, False, False),
    ("dot", True, True, False),
    ("concat", False, False, True),
    ("concat", True, True, True),
    ("additive", False, True, False),
    ("additive", True, False, True),
]


def _mask(lengths: np.ndarray, steps: int) -> np.ndarray:
    """(B, T) bool, True at the valid steps."""
    return np.arange(steps)[None, :] < lengths[:, None]


def _padded(rng: np.random.Generator, steps: int, width: int, lengths: np.ndarray) -> np.ndarray:
    x = rng.normal(size=(B, steps, width))
    x[~_mask(lengths, steps)] = 0.0  # Masking(0.0)
    return x


def _tm_mask(mask: np.ndarray) -> object:
    return keras.ops.convert_to_tensor(mask.T[..., None])


# -- Keras Attention / AdditiveAttention -------------------------------------------------------


def _keras_attention(mode: str, use_scale: bool, causal: bool, has_key: bool, rng: np.random.Generator):
    dv = DV if has_key else DQ  # without a key, the value is the key: as wide as the query
    q_in = keras.Input((TQ, DQ), dtype="float64")
    v_in = keras.Input((TV, dv), dtype="float64")
    k_in = keras.Input((TV, DQ), dtype="float64")
    parts = [L.Masking(0.0, **F64)(q_in), L.Masking(0.0, **F64)(v_in)]
    if has_key:
        parts.append(L.Masking(0.0, **F64)(k_in))
    if mode == "additive":
        layer = L.AdditiveAttention(use_scale=use_scale, **F64)
    else:
        layer = L.Attention(use_scale=use_scale, score_mode=mode, **F64)
    out = layer(parts, use_causal_mask=causal)
    model = keras.Model([q_in, v_in, k_in] if has_key else [q_in, v_in], out)
    model.set_weights([rng.normal(scale=0.8, size=w.shape) + 0.5 for w in model.get_weights()])
    spec = AttentionSpec(DQ, dv, mode, use_scale, causal, has_key)
    return model, layer, spec


def _numpy_scores(spec: AttentionSpec, arrays, q, k) -> tuple[np.ndarray, np.ndarray]:
    """(B, Tq, Tv) raw scores and (B, Tq, Tv, D) their terms over d (the dot's products q_td k_sd · c)."""
    arrays = list(arrays)
    scale = arrays.pop(0) if spec.use_scale else 1.0
    weight = arrays.pop(0) if spec.score_mode == "concat" else 1.0
    pairs = q[:, :, None, :] + k[:, None, :, :]
    if spec.score_mode == "dot":
        terms = scale * q[:, :, None, :] * k[:, None, :, :]
    elif spec.score_mode == "concat":
        terms = weight * np.tanh(scale * pairs)
    else:
        terms = scale * np.tanh(pairs)
    return terms.sum(-1), terms


def _attnlrp_oracle(spec, arrays, q, k, v, weights, relevance, eps, bf):
    """AttnLRP per connection: products (uniform split), softmax rule, score terms, q + k sums."""
    raw, terms = _numpy_scores(spec, arrays, q, k)
    r_v, r_a = np.zeros_like(v), np.zeros_like(weights)
    for b, t, j in np.ndindex(B, TQ, v.shape[2]):
        o = sum(weights[b, t, s] * v[b, s, j] for s in range(v.shape[1]))
        stab = eps if o >= 0 else -eps
        for s in range(v.shape[1]):
            r = (weights[b, t, s] * v[b, s, j] + bf * weights[b, t, s] * stab) * relevance[b, t, j] / (o + stab)
            r_v[b, s, j] += r / 2
            r_a[b, t, s] += r / 2
    r_s = raw * (r_a - weights * r_a.sum(-1, keepdims=True))
    r_q, r_k = np.zeros_like(q), np.zeros_like(k)
    width = q.shape[2]
    for b, t, s in np.ndindex(raw.shape):
        stab = eps if raw[b, t, s] >= 0 else -eps
        for d in range(width):
            r = (terms[b, t, s, d] + bf * stab / width) * r_s[b, t, s] / (raw[b, t, s] + stab)
            if spec.score_mode == "dot":
                r_q[b, t, d] += r / 2
                r_k[b, s, d] += r / 2
                continue
            x = q[b, t, d] + k[b, s, d]
            stab_x = eps if x >= 0 else -eps
            r_q[b, t, d] += (q[b, t, d] + bf * stab_x / 2) * r / (x + stab_x)
            r_k[b, s, d] += (k[b, s, d] + bf * stab_x / 2) * r / (x + stab_x)
    return r_q, r_v, r_k


def _numpy_weights(spec: AttentionSpec, arrays, q, k, q_valid, v_valid) -> np.ndarray:
    """(B, Tq, Tv) the effective attention weights, from the formulas (independent of the node)."""
    arrays = list(arrays)
    scale = arrays.pop(0) if spec.use_scale else 1.0
    weight = arrays.pop(0) if spec.score_mode == "concat" else 1.0
    pairs = q[:, :, None, :] + k[:, None, :, :]
    if spec.score_mode == "dot":
        scores = np.einsum("btd,bsd->bts", q, k) * scale
    elif spec.score_mode == "concat":
        scores = weight * np.tanh(scale * pairs).sum(-1)
    else:
        scores = (scale * np.tanh(pairs)).sum(-1)
    allowed = np.broadcast_to(v_valid[:, None, :], scores.shape).copy()
    if spec.causal:
        allowed &= np.arange(TQ)[:, None] >= np.arange(TV)[None, :]
    scores = np.where(allowed, scores, scores - 1e9)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    return weights * q_valid[:, :, None]


def _attention_oracle(weights: np.ndarray, v: np.ndarray, relevance: np.ndarray, eps: float, bf: float) -> np.ndarray:
    """Per connection (b, t, s, j): z = a_ts v_sj; R_sj += (z + bf · a_ts ε_tj) R_tj / (o_tj + ε_tj)."""
    out = np.zeros_like(v)
    for b in range(B):
        for t in range(weights.shape[1]):
            for j in range(v.shape[2]):
                o = sum(weights[b, t, s] * v[b, s, j] for s in range(v.shape[1]))
                stab = eps if o >= 0 else -eps
                for s in range(v.shape[1]):
                    z = weights[b, t, s] * v[b, s, j]
                    out[b, s, j] += (z + bf * weights[b, t, s] * stab) * relevance[b, t, j] / (o + stab)
    return out


@pytest.mark.parametrize(("mode", "use_scale", "causal", "has_key"), ATTENTION_CASES)
@pytest.mark.parametrize(("eps", "bf"), [(1e-3, 0.0), (0.3, 1.0)])
def test_attention_forward_relevance_gradient(mode: str, use_scale: bool, causal: bool, has_key: bool,
                                              eps: float, bf: float) -> None:  # fmt: skip
    import tensorflow as tf

    rng = np.random.default_rng(11)
    model, layer, spec = _keras_attention(mode, use_scale, causal, has_key, rng)
    q, v = _padded(rng, TQ, DQ, LENGTHS_Q), _padded(rng, TV, spec.value_size, LENGTHS_V)
    k = _padded(rng, TV, DQ, LENGTHS_V)
    feeds = [q, v, k] if has_key else [q, v]
    q_valid, v_valid = _mask(LENGTHS_Q, TQ), _mask(LENGTHS_V, TV)
    node = NODES["attention"]
    params = node.params(spec, [keras.ops.convert_to_tensor(w) for w in layer.get_weights()])
    masks = (_tm_mask(q_valid), _tm_mask(v_valid)) + ((_tm_mask(v_valid),) if has_key else ())
    out, cache = node.forward(spec, params, [time_major(x) for x in feeds], masks)
    theirs = keras.ops.convert_to_numpy(model(feeds))
    np.testing.assert_allclose(batch_major(out), theirs, rtol=0, atol=1e-12)

    weights = _numpy_weights(spec, layer.get_weights(), q, k if has_key else v, q_valid, v_valid)
    np.testing.assert_allclose(np.einsum("bts,bsj->btj", weights, v), theirs, rtol=0, atol=1e-12)
    relevance = rng.normal(size=(B, TQ, spec.value_size)) * q_valid[..., None]  # none reaches a masked query step
    messages, leftover = node.relevance(spec, params, cache, time_major(relevance), node_context(eps, bf))
    assert leftover is None
    assert messages[0] is None
    assert not has_key or messages[2] is None
    ours = batch_major(messages[1])
    np.testing.assert_allclose(ours, _attention_oracle(weights, v, relevance, eps, bf), rtol=0, atol=1e-10)
    assert np.all(ours[~v_valid] == 0.0)
    if bf == 1.0:
        np.testing.assert_allclose(ours.sum(axis=(1, 2)), relevance.sum(axis=(1, 2)), rtol=1e-12)

    attn = node_context(eps, bf, attention_rules("attnlrp"))
    messages, _ = node.relevance(spec, params, cache, time_major(relevance), attn)
    r_q, r_v, r_k = _attnlrp_oracle(spec, layer.get_weights(), q, k if has_key else v, v, weights, relevance, eps, bf)
    if not has_key:
        r_v = r_v + r_k
    np.testing.assert_allclose(batch_major(messages[0]), r_q, rtol=0, atol=1e-10)
    np.testing.assert_allclose(batch_major(messages[1]), r_v, rtol=0, atol=1e-10)
    if has_key:
        np.testing.assert_allclose(batch_major(messages[2]), r_k, rtol=0, atol=1e-10)
    for message, valid in zip(messages, (q_valid, v_valid, v_valid), strict=False):
        assert np.all(batch_major(message)[~valid] == 0.0)

    seed = rng.normal(size=(B, TQ, spec.value_size))
    tensors = [tf.Variable(x) for x in feeds]
    with tf.GradientTape() as tape:
        picked = tf.reduce_sum(model(tensors) * seed)
    expected = tape.gradient(picked, tensors)
    grads = node.gradient(spec, params, cache, time_major(seed), node_context(eps, bf))
    for got, want in zip(grads, expected, strict=True):
        np.testing.assert_allclose(batch_major(got), want.numpy(), rtol=0, atol=1e-12)


# -- MultiHeadAttention -----------------------------------------------------------------------


def _projection_oracle(x, kernel, bias, pre, relevance, eps, bf):
    """ε-rule with bias share of ``pre[b,h,t,j] = Σ_d x[b,t,d] kernel[d,h,j] + bias[h,j]``, per connection."""
    out = np.zeros_like(x)
    for b, h, t, j in np.ndindex(pre.shape):
        stab = eps if pre[b, h, t, j] >= 0 else -eps
        for d in range(x.shape[2]):
            z = x[b, t, d] * kernel[d, h, j] + bf * (bias[h, j] + stab) / x.shape[2]
            out[b, t, d] += z * relevance[b, h, t, j] / (pre[b, h, t, j] + stab)
    return out


def _mha_oracle(arrays, q, v, k, allowed, relevance, eps, bf, rule="cp_lrp"):
    """Per connection through output projection, weighted sum (per head) and value projection.

    With ``rule="attnlrp"`` also the products split half and half, the softmax rule, the score's
    products q·k half and half, and the query and key projections; returns (out, (R_q, R_v, R_k)).
    """
    wq, bq, wk, bk, wv, bv, wo, bo = arrays
    heads, vd = wv.shape[1], wv.shape[2]
    qh = np.einsum("btd,dhk->bhtk", q, wq) + bq[None, :, None]
    kh = np.einsum("btd,dhk->bhtk", k, wk) + bk[None, :, None]
    vh = np.einsum("btd,dhk->bhtk", v, wv) + bv[None, :, None]
    scores = np.einsum("bhtk,bhsk->bhts", qh, kh) * np.float32(1 / np.sqrt(wq.shape[2]))
    shifted = np.where(allowed[:, None], scores, -1e9)
    a = np.exp(shifted - shifted.max(-1, keepdims=True))
    a /= a.sum(-1, keepdims=True)
    ctx = np.einsum("bhts,bhsv->bhtv", a, vh)
    out = np.einsum("bhtv,hvo->bto", ctx, wo) + bo
    r_ctx = np.zeros_like(ctx)
    n_out = heads * vd
    for b, t, o in np.ndindex(out.shape):
        stab = eps if out[b, t, o] >= 0 else -eps
        for h, j in np.ndindex(heads, vd):
            z = ctx[b, h, t, j] * wo[h, j, o] + bf * (bo[o] + stab) / n_out
            r_ctx[b, h, t, j] += z * relevance[b, t, o] / (out[b, t, o] + stab)
    r_vh, r_a = np.zeros_like(vh), np.zeros_like(a)
    share = 0.5 if rule == "attnlrp" else 1.0
    for b, h, t, j in np.ndindex(ctx.shape):
        stab = eps if ctx[b, h, t, j] >= 0 else -eps
        for s in range(vh.shape[2]):
            z = a[b, h, t, s] * vh[b, h, s, j] + bf * a[b, h, t, s] * stab
            r = z * r_ctx[b, h, t, j] / (ctx[b, h, t, j] + stab)
            r_vh[b, h, s, j] += share * r
            r_a[b, h, t, s] += share * r
    r_v = _projection_oracle(v, wv, bv, vh, r_vh, eps, bf)
    if rule == "cp_lrp":
        return out, r_v
    r_s = scores * (r_a - a * r_a.sum(-1, keepdims=True)) * allowed[:, None]
    c = np.float32(1 / np.sqrt(wq.shape[2]))
    r_qh, r_kh = np.zeros_like(qh), np.zeros_like(kh)
    for b, h, t, s in np.ndindex(r_s.shape):
        raw = c * qh[b, h, t] @ kh[b, h, s]
        stab = eps if raw >= 0 else -eps
        for d in range(qh.shape[3]):
            r = (c * qh[b, h, t, d] * kh[b, h, s, d] + bf * stab / qh.shape[3]) * r_s[b, h, t, s] / (raw + stab)
            r_qh[b, h, t, d] += r / 2
            r_kh[b, h, s, d] += r / 2
    r_q = _projection_oracle(q, wq, bq, qh, r_qh, eps, bf)
    r_k = _projection_oracle(k, wk, bk, kh, r_kh, eps, bf)
    return out, (r_q, r_v, r_k)


@pytest.mark.parametrize(("causal", "has_key", "use_bias", "cross"),
                         [(False, False, True, False), (True, False, True, True), (False, True, False, True),
                          (True, True, True, False)])  # fmt: skip
@pytest.mark.parametrize(("eps", "bf"), [(1e-3, 0.0), (0.3, 1.0)])
def test_multi_head_attention(causal: bool, has_key: bool, use_bias: bool, cross: bool, eps: float, bf: float) -> None:
    import tensorflow as tf

    rng = np.random.default_rng(5)
    tv = TV if cross else TQ
    lengths_v = LENGTHS_V if cross else LENGTHS_Q
    q_in, v_in, k_in = (keras.Input((steps, DQ), dtype="float64") for steps in (TQ, tv, tv))
    q_m, v_m, k_m = (L.Masking(0.0, **F64)(x) for x in (q_in, v_in, k_in))
    layer = L.MultiHeadAttention(num_heads=2, key_dim=3, value_dim=2, use_bias=use_bias, output_shape=4, **F64)
    out = layer(q_m, v_m, key=k_m, use_causal_mask=causal) if has_key else layer(q_m, v_m, use_causal_mask=causal)
    model = keras.Model([q_in, v_in, k_in] if has_key else [q_in, v_in], out)
    model.set_weights([rng.normal(scale=0.6, size=w.shape) for w in model.get_weights()])
    q, v, k = _padded(rng, TQ, DQ, LENGTHS_Q), _padded(rng, tv, DQ, lengths_v), _padded(rng, tv, DQ, lengths_v)
    feeds = [q, v, k] if has_key else [q, v]
    q_valid, v_valid = _mask(LENGTHS_Q, TQ), _mask(lengths_v, tv)
    spec = MultiHeadAttentionSpec(2, 3, 2, DQ, DQ, DQ, 4, use_bias, causal, has_key)
    node = NODES["multi_head_attention"]
    arrays = [w.numpy() if hasattr(w, "numpy") else w for w in layer.get_weights()]
    params = node.params(spec, [keras.ops.convert_to_tensor(w) for w in arrays])
    masks = (_tm_mask(q_valid), _tm_mask(v_valid)) + ((_tm_mask(v_valid),) if has_key else ())
    ours, cache = node.forward(spec, params, [time_major(x) for x in feeds], masks)
    theirs = keras.ops.convert_to_numpy(model(feeds))
    np.testing.assert_allclose(batch_major(ours), theirs, rtol=0, atol=1e-12)

    if not use_bias:
        arrays = [arrays[0], np.zeros(arrays[0].shape[1:]), arrays[1], np.zeros(arrays[1].shape[1:]),
                  arrays[2], np.zeros(arrays[2].shape[1:]), arrays[3], np.zeros(arrays[3].shape[-1:])]  # fmt: skip
    allowed = q_valid[:, :, None] & v_valid[:, None, :]
    if causal:
        allowed = allowed & (np.arange(TQ)[:, None] >= np.arange(tv)[None, :])
    relevance = rng.normal(size=(B, TQ, 4)) * q_valid[..., None]
    out, expected = _mha_oracle(arrays, q, v, k if has_key else v, allowed, relevance, eps, bf)
    np.testing.assert_allclose(out, theirs, rtol=0, atol=1e-12)
    messages, leftover = node.relevance(spec, params, cache, time_major(relevance), node_context(eps, bf))
    assert leftover is None
    assert messages[0] is None
    got = batch_major(messages[1])
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10)
    assert np.all(got[~v_valid] == 0.0)
    if bf == 1.0:
        np.testing.assert_allclose(got.sum(axis=(1, 2)), relevance.sum(axis=(1, 2)), rtol=1e-10)

    _, (r_q, r_v, r_k) = _mha_oracle(arrays, q, v, k if has_key else v, allowed, relevance, eps, bf, "attnlrp")
    attn = node_context(eps, bf, attention_rules("attnlrp"))
    messages, _ = node.relevance(spec, params, cache, time_major(relevance), attn)
    np.testing.assert_allclose(batch_major(messages[0]), r_q, rtol=0, atol=1e-10)
    np.testing.assert_allclose(batch_major(messages[1]), r_v if has_key else r_v + r_k, rtol=0, atol=1e-10)
    if has_key:
        np.testing.assert_allclose(batch_major(messages[2]), r_k, rtol=0, atol=1e-10)
    for message, valid in zip(messages, (q_valid, v_valid, v_valid), strict=False):
        assert np.all(batch_major(message)[~valid] == 0.0)

    seed = rng.normal(size=(B, TQ, 4)) * q_valid[..., None]
    tensors = [tf.Variable(x) for x in feeds]
    with tf.GradientTape() as tape:
        picked = tf.reduce_sum(model(tensors) * seed)
    wanted = tape.gradient(picked, tensors)
    grads = node.gradient(spec, params, cache, time_major(seed), node_context(eps, bf))
    for mine, want in zip(grads, wanted, strict=True):
        np.testing.assert_allclose(batch_major(mine), want.numpy(), rtol=0, atol=1e-12)


# -- converter ---------------------------------------------------------------------------------


def _refused(build) -> str:
    inputs = keras.Input((TQ, DQ))
    h = L.LSTM(3, return_sequences=True)(inputs)
    model = keras.Model(inputs, L.Dense(2)(L.GlobalAveragePooling1D()(build(h))))
    with pytest.raises(ConversionError) as info:
        Explainer.from_keras(model)
    return str(info.value)


def test_converter_refusals() -> None:
    assert "attention_mask" in _refused(
        lambda h: L.MultiHeadAttention(2, 3)(h, h, attention_mask=keras.ops.ones((1, TQ, TQ), dtype="bool"))
    )
    assert "score_mode" not in _refused(lambda h: L.Attention()([h, L.GlobalAveragePooling1D()(h)]))
    assert "return_attention_scores" in _refused(lambda h: L.Attention()([h, h], return_attention_scores=True)[0])


def test_cp_lrp_gives_query_and_key_nothing() -> None:
    rng = np.random.default_rng(2)
    query, value = keras.Input((TQ, 2)), keras.Input((TV, 3))
    hq, hv = L.LSTM(3, return_sequences=True)(query), L.LSTM(3, return_sequences=True)(value)
    model = keras.Model([query, value], L.Dense(2)(L.GlobalAveragePooling1D()(L.Attention()([hq, hv]))))
    x = [rng.normal(size=(2, TQ, 2)), rng.normal(size=(2, TV, 3))]
    ex = Explainer.from_keras(model, sample=x, dtype="float64")
    result = ex.explain(x, bias_factor=1.0)
    assert np.all(result.relevance[0] == 0.0)
    assert np.abs(result.relevance[1]).sum() > 0
    gradient = ex.explain(x, method="gradient_x_input")
    assert np.abs(gradient.relevance[0]).sum() > 0  # the gradient does flow through the scores
    attn = Explainer.from_keras(model, sample=x, dtype="float64", rules=RuleSet(attention="attnlrp"))
    relevant = attn.explain(x, bias_factor=1.0)
    assert np.abs(relevant.relevance[0]).sum() > 0  # AttnLRP: the query is credited too
    np.testing.assert_allclose(relevant.explained_score, result.explained_score)


def test_attention_rule_is_chosen_by_ruleset_attention() -> None:
    with pytest.raises(InputError, match="attention"):
        RuleSet(attention="softmax")
    inputs = keras.Input((TQ, 2))
    h = L.LSTM(3, return_sequences=True)(inputs)
    model = keras.Model(inputs, L.Dense(2)(L.GlobalAveragePooling1D()(L.Attention(name="att")([h, h]))))
    with pytest.raises(InputError, match=r"RuleSet\(attention="):
        Explainer.from_keras(model, rules=RuleSet(layers={"att": "zplus"}))


# -- a toy task with known ground truth ----------------------------------------------------------


def _marked_task(rng: np.random.Generator, n: int, steps: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Filler tokens 3..11; one marker (1: class 0, 2: class 1) at a random position decides the label."""
    ids = rng.integers(3, 12, size=(n, steps))
    lengths = rng.integers(5, steps + 1, size=n)
    where = (rng.random(n) * lengths).astype(int)
    labels = rng.integers(0, 2, size=n)
    ids[np.arange(n), where] = labels + 1
    ids[np.arange(steps)[None, :] >= lengths[:, None]] = 0
    return ids.astype("int32"), labels, where


def _attention_layer_head(ids: object) -> object:
    h = L.Embedding(12, 8, mask_zero=True)(ids)
    h = L.Bidirectional(L.LSTM(8, return_sequences=True))(h)
    return L.GlobalAveragePooling1D()(L.Attention(use_scale=True)([h, h]))


def _hand_built_pooling_head(ids: object) -> object:
    """Dense(1, tanh) scores -> Softmax over time -> Dot(axes=1) (no mask_zero: Keras's Softmax cannot take it)."""
    h = L.Bidirectional(L.LSTM(8, return_sequences=True))(L.Embedding(12, 8)(ids))
    weights = L.Softmax(axis=1)(L.Dense(1, activation="tanh")(h))
    return L.Flatten()(L.Dot(axes=1)([weights, h]))


@pytest.mark.parametrize("head", [_attention_layer_head, _hand_built_pooling_head])
def test_toy_task_relevance_finds_the_deciding_token(head) -> None:
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    ids, labels, _ = _marked_task(rng, 2000)
    inputs = keras.Input((None,), dtype="int32")
    model = keras.Model(inputs, L.Dense(2)(head(inputs)))
    model.compile(optimizer=keras.optimizers.Adam(0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])  # fmt: skip
    model.fit(ids, labels, batch_size=64, epochs=6, verbose=0)
    test_ids, test_labels, where = _marked_task(np.random.default_rng(1), 200)
    assert model.evaluate(test_ids, test_labels, verbose=0)[1] > 0.95
    ex = Explainer.from_keras(model, dtype="float64")
    result = ex.explain(test_ids, target=test_labels, bias_factor=1.0)
    per_token = result.relevance.sum(axis=-1)
    top = np.argmax(np.where(test_ids > 0, per_token, -np.inf), axis=1)
    assert np.mean(top == where) > 0.9  # the marker is the most relevant token (1.0 when written)
    np.testing.assert_allclose(result.relevance_sum + result.initial_state_relevance, result.explained_score,
                               rtol=1e-9, atol=1e-12)  # fmt: skip


def test_save_and_load_keep_the_attention_nodes(tmp_path) -> None:
    inputs = keras.Input((TQ, 2))
    h = L.LSTM(3, return_sequences=True)(L.Masking(0.0)(inputs))
    h = L.Attention(use_scale=True, score_mode="concat")([h, h])
    h = L.MultiHeadAttention(2, 3)(h, h)
    model = keras.Model(inputs, L.Dense(2)(L.GlobalAveragePooling1D()(h)))
    x = np.random.default_rng(3).normal(size=(3, TQ, 2))
    x[1, 2:] = 0.0
    ex = Explainer.from_keras(model, sample=x, dtype="float64")
    ex.save(tmp_path / "attention.npz")
    again = Explainer.load(tmp_path / "attention.npz")
    np.testing.assert_array_equal(again.explain(x).relevance, ex.explain(x).relevance)
