"""Add / Subtract / Average (merge) and Multiply (tf_lrp/nodes/merge.py): per-connection float64
oracles, forward and gradient against the Keras layers, the rule map's product rule, the converter."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import pytest

from tests.nodekit import keras_gradient_x_input, node_context
from tf_lrp import ConversionError, Explainer, InputError
from tf_lrp.layout import MergeSpec, MultiplySpec
from tf_lrp.nodes import NODES
from tf_lrp.nodes.merge import coefficients
from tf_lrp.rules import Absolute, Half, NodeRules, Proportional, RuleSet, SignalTakesAll, ZPlus

L = keras.layers
T, B, F = 4, 3, 5
KERAS_MERGES = {"add": L.Add, "subtract": L.Subtract, "average": L.Average}


def _merge_oracle(operation, xs, relevance, eps, bf):
    """Per connection: R_kj = (c_k x_kj + bf ε_j / K) R_j / (z_j + ε_j)."""
    c = coefficients(operation, len(xs))
    out = [np.zeros_like(x) for x in xs]
    for index in np.ndindex(*relevance.shape):
        z = sum(c[k] * xs[k][index] for k in range(len(xs)))
        stab = eps if z >= 0 else -eps
        for k in range(len(xs)):
            out[k][index] = (c[k] * xs[k][index] + bf * stab / len(xs)) * relevance[index] / (z + stab)
    return out


@pytest.mark.parametrize(("operation", "count"), [("add", 2), ("add", 3), ("subtract", 2), ("average", 2),
                                                  ("average", 3)])  # fmt: skip
@pytest.mark.parametrize(("eps", "bf"), [(1e-3, 0.0), (0.3, 1.0), (0.05, 0.5)])
def test_merge_matches_the_per_connection_oracle(operation: str, count: int, eps: float, bf: float) -> None:
    rng = np.random.default_rng(8)
    xs = [rng.normal(size=(T, B, F)) for _ in range(count)]
    spec, node = MergeSpec(operation, F), NODES["merge"]
    _, cache = node.forward(spec, (), [keras.ops.convert_to_tensor(x) for x in xs], None)
    relevance = rng.normal(size=(T, B, F))
    ours, leftover = node.relevance(spec, (), cache, keras.ops.convert_to_tensor(relevance), node_context(eps, bf))
    assert leftover is None
    ours = [keras.ops.convert_to_numpy(r) for r in ours]
    for mine, expected in zip(ours, _merge_oracle(operation, xs, relevance, eps, bf), strict=True):
        np.testing.assert_allclose(mine, expected, rtol=0, atol=1e-10 * max(1.0, np.abs(expected).max()))
    if bf == 1.0:
        np.testing.assert_allclose(sum(ours), relevance, rtol=1e-10, atol=1e-12)


def _product_oracle(rule, x0, x1, relevance, eps, bf):
    """Per connection, for z = x0 ⊙ x1 with the gate x1 (SignalTakesAll(gate=0): x0)."""
    r0, r1 = np.zeros_like(x0), np.zeros_like(x1)
    for index in np.ndindex(*relevance.shape):
        a, b, r = x0[index], x1[index], relevance[index]
        if isinstance(rule, SignalTakesAll):
            r0[index], r1[index] = (r, 0.0) if rule.gate == 1 else (0.0, r)
            continue
        if isinstance(rule, Half):
            r0[index] = r1[index] = r / 2
            continue
        w0, w1 = (a, b) if isinstance(rule, Proportional) else (abs(a), abs(b))
        stab = eps if w0 + w1 >= 0 else -eps
        r0[index] = (w0 + bf * stab / 2) * r / (w0 + w1 + stab)
        r1[index] = (w1 + bf * stab / 2) * r / (w0 + w1 + stab)
    return r0, r1


@pytest.mark.parametrize(
    "rule", [Half(), Proportional(), Absolute(), SignalTakesAll(), SignalTakesAll(gate=0)], ids=repr
)
@pytest.mark.parametrize(("eps", "bf"), [(1e-3, 0.0), (0.3, 1.0)])
def test_multiply_matches_the_per_connection_oracle(rule, eps: float, bf: float) -> None:
    rng = np.random.default_rng(9)
    x0, x1 = rng.normal(size=(B, F)), rng.normal(size=(B, F))
    spec, node = MultiplySpec(F), NODES["multiply"]
    out, cache = node.forward(spec, (), [keras.ops.convert_to_tensor(x0), keras.ops.convert_to_tensor(x1)], None)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(out), x0 * x1)
    relevance = rng.normal(size=(B, F))
    rules = NodeRules(rule, "all", RuleSet().head)
    ours, _ = node.relevance(spec, (), cache, keras.ops.convert_to_tensor(relevance), node_context(eps, bf, rules))
    ours = [keras.ops.convert_to_numpy(r) for r in ours]
    for mine, expected in zip(ours, _product_oracle(rule, x0, x1, relevance, eps, bf), strict=True):
        np.testing.assert_allclose(mine, expected, rtol=0, atol=1e-10 * max(1.0, np.abs(expected).max()))
    if bf == 1.0:
        np.testing.assert_allclose(ours[0] + ours[1], relevance, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("operation", ["add", "subtract", "average", "multiply"])
def test_forward_equals_keras_and_gradient_equals_autodiff(operation: str) -> None:
    import tensorflow as tf

    rng = np.random.default_rng(10)
    count = 2 if operation in ("subtract", "multiply") else 3
    xs = [tf.constant(rng.normal(size=(T, B, F))) for _ in range(count)]
    layer = (L.Multiply if operation == "multiply" else KERAS_MERGES[operation])(dtype="float64")
    upstream = rng.normal(size=(T, B, F))
    with tf.GradientTape() as tape:
        tape.watch(xs)
        theirs = layer(xs)
        total = tf.reduce_sum(theirs * upstream)
    spec = MultiplySpec(F) if operation == "multiply" else MergeSpec(operation, F)
    node = NODES[spec.kind]
    ours, cache = node.forward(spec, (), xs, None)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(ours), theirs.numpy(), rtol=0, atol=1e-15)
    grads = node.gradient(spec, (), cache, tf.constant(upstream), node_context(0.0, 1.0))
    for mine, expected in zip(grads, tape.gradient(total, xs), strict=True):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(mine), expected.numpy(), rtol=0, atol=1e-15)


def _gated_model() -> tuple[keras.Model, np.ndarray]:
    f64 = {"dtype": "float64"}
    inputs = keras.Input((T, 2), dtype="float64")
    masked = L.Masking(0.0, **f64)(inputs)
    states = L.LSTM(3, return_sequences=True, **f64)(masked)
    gate = L.Dense(3, activation="sigmoid", **f64)(L.GRU(3, return_sequences=True, **f64)(masked))
    tensor = L.Multiply(name="gating", **f64)([states, gate])
    tensor = L.Add(**f64)([tensor, states])
    model = keras.Model(inputs, L.Dense(2, **f64)(L.LSTM(2, **f64)(tensor)))
    rng = np.random.default_rng(11)
    model.set_weights([rng.normal(scale=0.7, size=w.shape) for w in model.get_weights()])
    x = rng.normal(size=(4, T, 2))
    x[2, 2:] = 0.0
    return model, x


def test_rule_map_gives_multiply_a_product_rule() -> None:
    model, x = _gated_model()
    layout = Explainer.from_keras(model, sample=x, dtype="float64", tolerance=1e-10).layout
    index = next(i for i, spec in enumerate(layout.layers) if spec.kind == "multiply")

    def product(rules: RuleSet):
        return rules.resolve_nodes(layout)[index].product

    assert product(RuleSet()) == Half()
    assert product(RuleSet(product="proportional")) == Half()  # the cells' gates only
    assert product(RuleSet(kinds={"multiply": "proportional"})) == Proportional()
    assert product(RuleSet(layers={"gating": SignalTakesAll(gate=0)})) == SignalTakesAll(gate=0)
    with pytest.raises(InputError, match="product node"):
        RuleSet(kinds={"multiply": ZPlus()}).check(layout)
    with pytest.raises(InputError, match="gate input"):
        SignalTakesAll(gate=2)


@pytest.mark.parametrize(
    "rules",
    [None, RuleSet(kinds={"multiply": "proportional"}), RuleSet(layers={"gating": SignalTakesAll(gate=0)}),
     RuleSet(kinds={"multiply": "abs"}, product="half")],
)  # fmt: skip
def test_gated_network_conserves_and_masks(rules) -> None:
    model, x = _gated_model()
    ex = Explainer.from_keras(model, sample=x, dtype="float64", tolerance=1e-10, rules=rules)
    result = ex.explain(x, bias_factor=1.0, eps=1e-3)
    total = result.relevance_sum + result.initial_state_relevance
    np.testing.assert_allclose(total, result.explained_score, rtol=1e-9, atol=1e-12)
    assert np.all(result.relevance[2, 2:] == 0.0)


def _add_then_multiply(left: Any, right: Any) -> Any:
    f64 = {"dtype": "float64"}
    return L.Multiply(**f64)([L.Add(**f64)([left, right]), right])


def _concatenate(left: Any, right: Any) -> Any:
    return L.Concatenate(dtype="float64")([left, right])


@pytest.mark.parametrize("join", [_add_then_multiply, _concatenate], ids=["add_multiply", "concatenate"])
@pytest.mark.parametrize("masked_b", [False, True])
def test_merged_masks_follow_keras(masked_b: bool, join: Any) -> None:
    """Keras 3 merges (Concatenate too): no mask if an input has none, else the OR of the masks (here they
    differ); the LSTM after the merge reads it."""
    f64 = {"dtype": "float64"}
    a, b = keras.Input((T, 2), dtype="float64", name="a"), keras.Input((T, 2), dtype="float64", name="b")
    left = L.LSTM(3, return_sequences=True, **f64)(L.Masking(0.0, **f64)(a))
    right = L.GRU(3, return_sequences=True, **f64)(L.Masking(0.0, **f64)(b) if masked_b else b)
    model = keras.Model([a, b], L.Dense(2, **f64)(L.LSTM(2, **f64)(join(left, right))))
    rng = np.random.default_rng(12)
    model.set_weights([rng.normal(scale=0.7, size=w.shape) for w in model.get_weights()])
    xa, xb = rng.normal(size=(4, T, 2)), rng.normal(size=(4, T, 2))
    xa[1, 2:] = 0.0  # a: sample 1 padded from step 2
    xb[1, 3:] = 0.0  # b: sample 1 padded from step 3 (the OR keeps step 2)
    xa[2, 1:] = 0.0
    ex = Explainer.from_keras(model, sample=[xa, xb], dtype="float64", tolerance=1e-10)  # forward = Keras
    np.testing.assert_allclose(ex.score([xa, xb]), keras.ops.convert_to_numpy(model([xa, xb])), rtol=0, atol=1e-10)
    result = ex.explain([xa, xb], bias_factor=1.0, eps=1e-3)
    total = sum(part.sum(axis=(1, 2)) for part in result.relevance) + result.initial_state_relevance
    np.testing.assert_allclose(total, result.explained_score, rtol=1e-9, atol=1e-12)
    assert np.all(result.relevance[0][1, 2:] == 0.0)
    assert np.all(result.relevance[0][2, 1:] == 0.0)


def test_converter_refusals() -> None:
    f64 = {"dtype": "float64"}
    a, b = keras.Input((T, 2), dtype="float64"), keras.Input((T, 2), dtype="float64")
    left = L.LSTM(3, return_sequences=True, **f64)(L.Masking(0.0, **f64)(a))
    vector = L.LSTM(3, **f64)(b)
    broadcast = keras.Model([a, b], L.Dense(2, **f64)(L.GlobalAveragePooling1D(**f64)(L.Add(**f64)([left, vector]))))
    with pytest.raises(ConversionError, match="same shape"):
        Explainer.from_keras(broadcast)


def test_saved_and_loaded(tmp_path) -> None:
    model, x = _gated_model()
    ex = Explainer.from_keras(model, sample=x, dtype="float64", tolerance=1e-10)
    ex.save(tmp_path / "gated.npz")
    loaded = Explainer.load(tmp_path / "gated.npz", dtype="float64")
    assert loaded.layout.manifest == ex.layout.manifest
    np.testing.assert_array_equal(loaded.explain(x).relevance, ex.explain(x).relevance)


def _many_oracle(rule, xs, relevance, eps, bf):
    """Per connection, for z = Π_k x_k (n inputs): half R/n; proportional / abs in proportion to x_k / |x_k|."""
    out = [np.zeros_like(x) for x in xs]
    for index in np.ndindex(*relevance.shape):
        values, r = [x[index] for x in xs], relevance[index]
        if isinstance(rule, Half):
            for k in range(len(xs)):
                out[k][index] = r / len(xs)
            continue
        weights = values if isinstance(rule, Proportional) else [abs(v) for v in values]
        total = sum(weights)
        stab = eps if total >= 0 else -eps
        for k, w in enumerate(weights):
            out[k][index] = (w + bf * stab / len(xs)) * r / (total + stab)
    return out


@pytest.mark.parametrize("count", [3, 4])
@pytest.mark.parametrize("rule", [Half(), Proportional(), Absolute()], ids=repr)
@pytest.mark.parametrize(("eps", "bf"), [(1e-3, 0.0), (0.3, 1.0), (0.05, 0.5)])
def test_multiply_of_many_matches_the_per_connection_oracle(count: int, rule, eps: float, bf: float) -> None:
    rng = np.random.default_rng(12)
    xs = [rng.normal(size=(T, B, F)) for _ in range(count)]
    spec, node = MultiplySpec(F), NODES["multiply"]
    out, cache = node.forward(spec, (), [keras.ops.convert_to_tensor(x) for x in xs], None)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(out), np.prod(xs, axis=0), rtol=1e-14, atol=0)
    relevance = rng.normal(size=(T, B, F))
    rules = NodeRules(rule, "all", RuleSet().head)
    ours, leftover = node.relevance(
        spec, (), cache, keras.ops.convert_to_tensor(relevance), node_context(eps, bf, rules)
    )
    assert leftover is None
    ours = [keras.ops.convert_to_numpy(r) for r in ours]
    for mine, expected in zip(ours, _many_oracle(rule, xs, relevance, eps, bf), strict=True):
        np.testing.assert_allclose(mine, expected, rtol=0, atol=1e-10 * max(1.0, np.abs(expected).max()))
    if bf == 1.0:
        np.testing.assert_allclose(sum(ours), relevance, rtol=1e-10, atol=1e-12)


def test_multiply_of_three_equals_keras_and_autodiff() -> None:
    import tensorflow as tf

    rng = np.random.default_rng(13)
    xs = [tf.constant(rng.normal(size=(T, B, F))) for _ in range(3)]
    upstream = rng.normal(size=(T, B, F))
    with tf.GradientTape() as tape:
        tape.watch(xs)
        theirs = L.Multiply(dtype="float64")(xs)
        total = tf.reduce_sum(theirs * upstream)
    spec, node = MultiplySpec(F), NODES["multiply"]
    ours, cache = node.forward(spec, (), xs, None)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(ours), theirs.numpy())
    grads = node.gradient(spec, (), cache, tf.constant(upstream), node_context(0.0, 1.0))
    for mine, expected in zip(grads, tape.gradient(total, xs), strict=True):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(mine), expected.numpy(), rtol=0, atol=1e-14)


def _three_way_model() -> tuple[keras.Model, np.ndarray]:
    f64 = {"dtype": "float64"}
    inputs = keras.Input((T, 2), dtype="float64")
    masked = L.Masking(0.0, **f64)(inputs)
    states = L.LSTM(3, return_sequences=True, **f64)(masked)
    gate = L.Dense(3, activation="sigmoid", **f64)(states)
    other = L.GRU(3, return_sequences=True, **f64)(masked)
    tensor = L.Multiply(name="three_way", **f64)([states, gate, other])
    model = keras.Model(inputs, L.Dense(2, **f64)(L.LSTM(2, **f64)(tensor)))
    rng = np.random.default_rng(14)
    model.set_weights([rng.normal(scale=0.7, size=w.shape) for w in model.get_weights()])
    x = rng.normal(size=(4, T, 2))
    x[2, 2:] = 0.0
    return model, x


@pytest.mark.parametrize("product", ["half", "proportional", "abs"])
def test_multiply_of_three_converts_conserves_and_matches_autodiff(product: str) -> None:
    model, x = _three_way_model()
    rules = RuleSet(kinds={"multiply": product})
    ex = Explainer.from_keras(model, sample=x, dtype="float64", tolerance=1e-10, rules=rules)
    index = next(i for i, spec in enumerate(ex.layout.layers) if spec.kind == "multiply")
    assert len(ex.layout.edges[index]) == 3
    result = ex.explain(x, bias_factor=1.0, eps=1e-3)
    np.testing.assert_allclose(result.relevance_sum + result.initial_state_relevance, result.explained_score,
                               rtol=1e-9, atol=1e-12)  # fmt: skip
    assert np.all(result.relevance[2, 2:] == 0.0)
    target = np.array([0, 1, 1, 0])
    expected = keras_gradient_x_input(model, x, target)
    np.testing.assert_allclose(ex.explain(x, target=target, method="gradient_x_input").relevance, expected,
                               rtol=0, atol=1e-11)  # fmt: skip


def test_signal_takes_all_on_a_multiply_of_three_is_refused() -> None:
    model, x = _three_way_model()
    with pytest.raises(InputError, match=r"multiply 'three_way' at index \d+ multiplies 3 inputs.*'half'"):
        Explainer.from_keras(model, sample=x, dtype="float64", rules=RuleSet(kinds={"multiply": SignalTakesAll()}))
