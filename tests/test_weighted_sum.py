"""The weighted_sum node (tf_lrp/nodes/weighted_sum.py) and the hand-built Keras attention pooling.

``Dense(1, tanh) -> Softmax(axis=1) -> Dot(axes=1)([weights, states]) -> Flatten``: the node's
forward equals Keras's ``Dot`` (float64, 1e-12); CP-LRP and AttnLRP against per-connection float64
numpy oracles (1e-10); the gradient against ``tf.GradientTape``; the whole converted model: forward
equals Keras, Gradient×Input equals ``tf.GradientTape``, LRP conserves at bias_factor = 1 (CP-LRP);
zero-weight (masked) steps get exactly zero relevance; the converter's refusals.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tests.nodekit import attention_rules, batch_major, node_context, time_major
from tf_lrp import ConversionError, Explainer, RuleSet
from tf_lrp.layout import LayoutError, Port, WeightedSumSpec
from tf_lrp.nodes import NODES

L = keras.layers
F64 = {"dtype": "float64"}
B, T, H = 3, 5, 4


def _oracle(w: np.ndarray, v: np.ndarray, r: np.ndarray, eps: float, bf: float) -> tuple[np.ndarray, np.ndarray]:
    """Per connection (t, j) -> j: the ε-rule's message ``(w_t v_tj + bf w_t ε_j) R_j / (o_j + ε_j)``.

    Returns the messages (B, T, H) (CP-LRP gives each to its value; AttnLRP half to the value, half
    to the weight) and the outputs.
    """
    messages, out = np.zeros_like(v), np.zeros((B, H))
    for b, j in np.ndindex(B, H):
        o = sum(w[b, t, 0] * v[b, t, j] for t in range(T))
        out[b, j] = o
        stab = eps if o >= 0 else -eps
        for t in range(T):
            messages[b, t, j] = (w[b, t, 0] * v[b, t, j] + bf * w[b, t, 0] * stab) * r[b, j] / (o + stab)
    return messages, out


@pytest.mark.parametrize(("eps", "bf"), [(1e-3, 0.0), (0.3, 1.0)])
def test_weighted_sum_forward_relevance_gradient(eps: float, bf: float) -> None:
    import tensorflow as tf

    rng = np.random.default_rng(5)
    scores = rng.normal(size=(B, T, 1))
    e = np.exp(scores)
    e[2, 3:] = 0.0  # weight 0 (masked steps of a masked softmax; the weights still sum to 1)
    w = e / e.sum(axis=1, keepdims=True)
    v = rng.normal(size=(B, T, H))
    layer = L.Dot(axes=1, **F64)
    theirs = keras.ops.convert_to_numpy(layer([w, v]))[:, 0, :]
    spec, node = WeightedSumSpec(H), NODES["weighted_sum"]
    out, cache = node.forward(spec, (), [time_major(w), time_major(v)], None)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(out), theirs, rtol=0, atol=1e-12)

    r = rng.normal(size=(B, H))
    messages, want_out = _oracle(w, v, r, eps, bf)
    np.testing.assert_allclose(theirs, want_out, rtol=0, atol=1e-12)
    (r_w, r_v), leftover = node.relevance(
        spec, (), cache, keras.ops.convert_to_tensor(r), node_context(eps, bf, attention_rules("cp_lrp"))
    )
    assert r_w is None
    assert leftover is None
    np.testing.assert_allclose(batch_major(r_v), messages, rtol=0, atol=1e-10)
    assert np.all(batch_major(r_v)[2, 3:] == 0.0)
    if bf == 1.0:
        np.testing.assert_allclose(batch_major(r_v).sum(axis=(1, 2)), r.sum(axis=1), rtol=1e-12)
    (r_w, r_v), _ = node.relevance(
        spec, (), cache, keras.ops.convert_to_tensor(r), node_context(eps, bf, attention_rules("attnlrp"))
    )
    np.testing.assert_allclose(batch_major(r_v), messages / 2, rtol=0, atol=1e-10)
    np.testing.assert_allclose(batch_major(r_w), messages.sum(axis=-1, keepdims=True) / 2, rtol=0, atol=1e-10)
    assert np.all(batch_major(r_w)[2, 3:] == 0.0)

    seed = rng.normal(size=(B, H))
    tensors = [tf.Variable(w), tf.Variable(v)]
    with tf.GradientTape() as tape:
        picked = tf.reduce_sum(layer(tensors)[:, 0, :] * seed)
    want = tape.gradient(picked, tensors)
    grads = node.gradient(spec, (), cache, keras.ops.convert_to_tensor(seed), node_context(eps, bf))
    for got, expected in zip(grads, want, strict=True):
        np.testing.assert_allclose(batch_major(got), expected.numpy(), rtol=0, atol=1e-12)


@pytest.mark.parametrize(("eps", "bf"), [(1e-3, 0.0), (0.3, 1.0)])
def test_per_step_products_forward_relevance_gradient(eps: float, bf: float) -> None:
    """``Multiply()([values, weights])``: each product ``w_t v_tj`` a one-term ε-node."""
    import tensorflow as tf

    rng = np.random.default_rng(6)
    w, v = rng.random(size=(B, T, 1)), rng.normal(size=(B, T, H))
    w[2, 3:] = 0.0
    layer = L.Multiply(**F64)
    theirs = keras.ops.convert_to_numpy(layer([v, w]))
    spec, node = WeightedSumSpec(H, per_step=True), NODES["weighted_sum"]
    out, cache = node.forward(spec, (), [time_major(w), time_major(v)], None)
    np.testing.assert_allclose(batch_major(out), theirs, rtol=0, atol=1e-12)
    r = rng.normal(size=(B, T, H))
    expected = np.zeros_like(v)
    for b, t, j in np.ndindex(B, T, H):
        z = w[b, t, 0] * v[b, t, j]
        stab = eps if z >= 0 else -eps
        expected[b, t, j] = (z + bf * stab) * r[b, t, j] / (z + stab)
    (r_w, r_v), _ = node.relevance(spec, (), cache, time_major(r), node_context(eps, bf, attention_rules("cp_lrp")))
    assert r_w is None
    np.testing.assert_allclose(batch_major(r_v), expected, rtol=0, atol=1e-10)
    if bf == 1.0:
        np.testing.assert_allclose(batch_major(r_v), r, rtol=1e-12)
    (r_w, r_v), _ = node.relevance(spec, (), cache, time_major(r), node_context(eps, bf, attention_rules("attnlrp")))
    np.testing.assert_allclose(batch_major(r_v), expected / 2, rtol=0, atol=1e-10)
    np.testing.assert_allclose(batch_major(r_w), expected.sum(axis=-1, keepdims=True) / 2, rtol=0, atol=1e-10)
    seed = rng.normal(size=(B, T, H))
    tensors = [tf.Variable(w), tf.Variable(v)]
    with tf.GradientTape() as tape:
        picked = tf.reduce_sum(layer([tensors[1], tensors[0]]) * seed)
    want = tape.gradient(picked, tensors)
    grads = node.gradient(spec, (), cache, time_major(seed), node_context(eps, bf))
    for got, expected_grad in zip(grads, want, strict=True):
        np.testing.assert_allclose(batch_major(got), expected_grad.numpy(), rtol=0, atol=1e-12)


def _pooling_model(rng: np.random.Generator, reshape: bool | None) -> keras.Model:
    """``reshape`` True: Dot + Reshape, False: Dot + Flatten, None: Multiply + keras.ops.sum(axis=1)."""
    inputs = keras.Input((T, 3), dtype="float64")
    states = L.Bidirectional(L.GRU(3, return_sequences=True, **F64), **F64)(inputs)
    weights = L.Softmax(axis=1, **F64)(L.Dense(1, activation="tanh", **F64)(states))
    if reshape is None:
        context = keras.ops.sum(L.Multiply(**F64)([states, weights]), axis=1)
    else:
        context = L.Dot(axes=1, **F64)([weights, states])
        context = L.Reshape((6,), **F64)(context) if reshape else L.Flatten(**F64)(context)
    model = keras.Model(inputs, L.Dense(2, activation="softmax", **F64)(context))
    model.set_weights([rng.normal(scale=0.7, size=w.shape) for w in model.get_weights()])
    return model


@pytest.mark.parametrize("reshape", [False, True, None])
def test_keras_attention_pooling_forward_gradient_conservation(reshape: bool | None) -> None:
    import tensorflow as tf

    from tf_lrp.convert.keras import score_model

    rng = np.random.default_rng(8)
    model = _pooling_model(rng, reshape)
    x = rng.normal(size=(B, T, 3))
    ex = Explainer.from_keras(model, sample=x, dtype="float64", tolerance=1e-12)
    kinds = [spec.kind for spec in ex.layout.layers]
    pooled = ["weighted_sum", "global_sum_pooling"] if reshape is None else ["weighted_sum", "repeat_vector", "flatten"]
    assert kinds == ["gru", "dense", "activation", "softmax", *pooled, "dense"]
    reference = score_model(model)
    np.testing.assert_allclose(ex.score(x), keras.ops.convert_to_numpy(reference(x)), rtol=0, atol=1e-12)

    target = np.array([0, 1, 1])
    feed = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(feed)
        picked = tf.reduce_sum(reference(feed) * tf.one_hot(target, 2, dtype="float64"))
    want = tape.gradient(picked, feed).numpy() * x
    got = ex.explain(x, target=target, method="gradient_x_input").relevance
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)

    for eps in (1e-3, 0.3):
        result = ex.explain(x, target=target, eps=eps, bias_factor=1.0)
        np.testing.assert_allclose(result.relevance_sum + result.initial_state_relevance, result.explained_score,
                                   rtol=1e-10, atol=1e-12)  # fmt: skip
    attn = Explainer.from_keras(model, sample=x, dtype="float64", rules=RuleSet(attention="attnlrp"))
    assert not np.allclose(attn.explain(x, target=target).relevance, ex.explain(x, target=target).relevance)


def test_converter_refusals() -> None:
    inputs = keras.Input((T, 3))
    states = L.LSTM(4, return_sequences=True)(inputs)
    scores = L.Dense(1)(states)

    def convert(output: object) -> None:
        Explainer.from_keras(keras.Model(inputs, L.Dense(2)(L.Flatten()(output))))

    with pytest.raises(ConversionError, match="axis=-1"):
        convert(L.Dot(axes=1)([L.Softmax(axis=-1)(scores), states]))
    with pytest.raises(ConversionError, match="weights first"):
        convert(L.Dot(axes=1)([states, L.Softmax(axis=1)(scores)]))
    with pytest.raises(ConversionError, match="axes=2"):
        convert(L.Dot(axes=2)([L.Softmax(axis=1)(scores), L.Softmax(axis=1)(scores)]))
    with pytest.raises(ConversionError, match="not a Softmax"):
        convert(L.Dot(axes=1)([scores, states]))
    with pytest.raises(ConversionError, match="normalize=True"):
        convert(L.Dot(axes=1, normalize=True)([L.Softmax(axis=1)(scores), states]))
    with pytest.raises(ConversionError, match="not a Softmax"):
        convert(L.Reshape((T, 4))(L.Multiply()([states, scores])))
    with pytest.raises(ConversionError, match=r"sums over axis=\[2\]"):
        Explainer.from_keras(keras.Model(inputs, L.Dense(2)(L.Flatten()(keras.ops.sum(states, axis=2)))))
    masked_in = keras.Input((T, 3))
    masked_states = L.LSTM(4, return_sequences=True)(L.Masking(0.0)(masked_in))
    weights = L.Softmax(axis=1)(L.Dense(1)(masked_states))
    masked = keras.Model(masked_in, L.Dense(2)(L.Flatten()(L.Dot(axes=1)([weights, masked_states]))))
    with pytest.raises(ConversionError, match="cannot apply to its"):
        Explainer.from_keras(masked)
    with pytest.raises(ConversionError, match=r"keras\.ops\.sum ignores the mask"):
        Explainer.from_keras(keras.Model(masked_in, L.Dense(2)(keras.ops.sum(masked_states, axis=1))))


def test_spec_reads_weights_and_values() -> None:
    spec = WeightedSumSpec(H, name="pool")
    assert spec.infer([Port(True, 1, False, "w"), Port(True, H, False, "v")], "pool", False) == Port(
        False, H, False, ""
    )
    assert WeightedSumSpec.from_entry(spec.to_entry()) == WeightedSumSpec(H)
    with pytest.raises(LayoutError, match="must be 1 wide"):
        spec.infer([Port(True, 2, False, "w"), Port(True, H, False, "v")], "pool", False)
    with pytest.raises(LayoutError, match="takes two"):
        spec.infer([Port(True, 1, False, "w")], "pool", False)
    with pytest.raises(LayoutError, match="one vector per sample"):
        spec.infer([Port(True, 1, False, "w"), Port(False, H, False, "v")], "pool", False)


def test_save_and_load_keep_the_pooling_nodes(tmp_path) -> None:
    rng = np.random.default_rng(9)
    model = _pooling_model(rng, reshape=False)
    x = rng.normal(size=(B, T, 3))
    ex = Explainer.from_keras(model, sample=x, dtype="float64")
    ex.save(tmp_path / "pooling.npz")
    again = Explainer.load(tmp_path / "pooling.npz", dtype="float64")
    assert [s.kind for s in again.layout.layers] == [s.kind for s in ex.layout.layers]
    np.testing.assert_array_equal(again.explain(x).relevance, ex.explain(x).relevance)
