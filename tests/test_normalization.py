"""LayerNormalization and BatchNormalization (tf_lrp/nodes/normalization.py): the ε-rule against a
per-connection float64 oracle, forward and gradient against the Keras layers, the converter."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tests.nodekit import node_context
from tf_lrp import ConversionError, Explainer
from tf_lrp.layout import NormalizationSpec
from tf_lrp.nodes import NODES

L = keras.layers
T, B, F = 4, 3, 5
KINDS = ("layer_normalization", "batch_normalization")
OPTIONS = [(True, True), (False, True), (True, False), (False, False)]  # (center, scale)


def _arrays(kind: str, center: bool, scale: bool, rng: np.random.Generator) -> list[np.ndarray]:
    arrays = ([rng.normal(size=F) + 1.0] if scale else []) + ([rng.normal(size=F)] if center else [])
    if kind == "batch_normalization":
        arrays += [rng.normal(size=F), rng.uniform(0.3, 2.0, size=F)]
    return arrays


def _named(kind: str, center: bool, scale: bool, arrays: list[np.ndarray]) -> dict[str, np.ndarray]:
    names = (["gamma"] if scale else []) + (["beta"] if center else [])
    names += ["moving_mean", "moving_variance"] if kind == "batch_normalization" else []
    return dict(zip(names, arrays, strict=True))


def _oracle(kind, x, named, epsilon, relevance, eps, bf):
    """Per connection: the linear map y = x W + β (σ frozen for layer normalisation), ε-rule with bias share."""
    gamma, beta = named.get("gamma", np.ones(F)), named.get("beta", np.zeros(F))
    out = np.zeros_like(x)
    for index in np.ndindex(*x.shape[:-1]):
        row = x[index]
        if kind == "layer_normalization":
            sigma = np.sqrt(row.var() + epsilon)
            weights = (np.eye(F) - 1.0 / F) * gamma[None, :] / sigma  # W_ij = (δ_ij - 1/F) γ_j / σ
            bias = beta
        else:
            a = gamma / np.sqrt(named["moving_variance"] + epsilon)
            weights = np.diag(a)
            bias = beta - named["moving_mean"] * a
        z = row @ weights + bias
        for j in range(F):
            stab = eps if z[j] >= 0 else -eps
            inputs = range(F) if kind == "layer_normalization" else (j,)  # BN: unit j reads x_j only
            for i in inputs:
                message = row[i] * weights[i, j] + bf * (bias[j] + stab) / len(inputs)
                out[(*index, i)] += message * relevance[(*index, j)] / (z[j] + stab)
    return out


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("center", "scale"), OPTIONS)
@pytest.mark.parametrize(("eps", "bf"), [(1e-3, 0.0), (0.3, 1.0), (0.05, 0.5)])
def test_relevance_matches_the_per_connection_oracle(kind, center, scale, eps, bf) -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(T, B, F))
    arrays = _arrays(kind, center, scale, rng)
    spec, node = NormalizationSpec(kind, F, 1e-3, center, scale), NODES[kind]
    params = node.params(spec, [keras.ops.convert_to_tensor(a) for a in arrays])
    _, cache = node.forward(spec, params, [keras.ops.convert_to_tensor(x)], None)
    relevance = rng.normal(size=x.shape)
    (ours,), leftover = node.relevance(
        spec, params, cache, keras.ops.convert_to_tensor(relevance), node_context(eps, bf)
    )
    assert leftover is None
    ours = keras.ops.convert_to_numpy(ours)
    expected = _oracle(kind, x, _named(kind, center, scale, arrays), 1e-3, relevance, eps, bf)
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-10 * max(1.0, np.abs(expected).max()))
    if bf == 1.0:  # conserving
        np.testing.assert_allclose(ours.sum(axis=-1), relevance.sum(axis=-1), rtol=1e-10, atol=1e-12)


def _keras_layer(kind: str, center: bool, scale: bool, arrays: list[np.ndarray], epsilon: float, rank: int):
    cls = L.LayerNormalization if kind == "layer_normalization" else L.BatchNormalization
    layer = cls(epsilon=epsilon, center=center, scale=scale, dtype="float64")
    layer.build((None,) * (rank - 1) + (F,))
    layer.set_weights(arrays)
    return layer


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("center", "scale"), OPTIONS)
def test_forward_equals_keras_and_gradient_equals_autodiff(kind, center, scale) -> None:
    import tensorflow as tf

    rng = np.random.default_rng(6)
    arrays = _arrays(kind, center, scale, rng)
    spec, node = NormalizationSpec(kind, F, 0.01, center, scale), NODES[kind]
    params = node.params(spec, [keras.ops.convert_to_tensor(a) for a in arrays])
    for shape in ((B, F), (T, B, F)):
        layer = _keras_layer(kind, center, scale, arrays, 0.01, len(shape))
        x = tf.constant(rng.normal(size=shape) * 2.0 + 0.5)
        upstream = rng.normal(size=shape)
        with tf.GradientTape() as tape:
            tape.watch(x)
            theirs = layer(x, training=False)
            total = tf.reduce_sum(theirs * upstream)
        ours, cache = node.forward(spec, params, [x], None)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(ours), theirs.numpy(), rtol=0, atol=1e-13)
        (grad,) = node.gradient(spec, params, cache, tf.constant(upstream), node_context(0.0, 1.0))
        np.testing.assert_allclose(keras.ops.convert_to_numpy(grad), tape.gradient(total, x).numpy(),
                                   rtol=0, atol=1e-12)  # fmt: skip


@pytest.mark.parametrize(("center", "scale"), OPTIONS)
def test_converted_with_every_option_and_conserving(center: bool, scale: bool) -> None:
    f64 = {"dtype": "float64"}
    inputs = keras.Input((T, 2), dtype="float64")
    tensor = L.Masking(0.0, **f64)(inputs)
    tensor = L.LayerNormalization(center=center, scale=scale, epsilon=0.01, **f64)(
        L.GRU(F, return_sequences=True, **f64)(tensor)
    )
    tensor = L.BatchNormalization(center=center, scale=scale, **f64)(L.LSTM(3, **f64)(tensor))
    model = keras.Model(inputs, L.Dense(2, **f64)(tensor))
    rng = np.random.default_rng(7)
    model.set_weights([np.abs(rng.normal(size=w.shape)) + 0.5 if "variance" in v.path else rng.normal(size=w.shape)
                       for w, v in zip(model.get_weights(), model.weights, strict=True)])  # fmt: skip
    x = rng.normal(size=(4, T, 2))
    x[1, 2:] = 0.0
    # the BatchNormalization before the Dense would fold into it (tests/test_keras_fold.py); keep it a node here
    ex = Explainer.from_keras(model, sample=x, dtype="float64", tolerance=1e-10, fold_batch_norm=False)
    assert [spec.kind for spec in ex.layout.layers] == ["gru", "layer_normalization", "lstm", "batch_normalization",
                                                        "dense"]  # fmt: skip
    result = ex.explain(x, bias_factor=1.0, eps=1e-3)
    total = result.relevance_sum + result.initial_state_relevance
    np.testing.assert_allclose(total, result.explained_score, rtol=1e-9, atol=1e-12)
    assert np.all(result.relevance[1, 2:] == 0.0)


@pytest.mark.parametrize(
    ("layer", "match"),
    [
        (L.LayerNormalization(axis=1), r"axis=\[1\] is not supported"),
        (L.LayerNormalization(rms_scaling=True), "rms_scaling=True"),
        (L.BatchNormalization(axis=1), "axis=1 is not supported"),
    ],
)
def test_refusals(layer, match: str) -> None:
    inputs = keras.Input((T, 2))
    model = keras.Model(inputs, L.Dense(2)(L.LSTM(3)(layer(L.GRU(3, return_sequences=True)(inputs)))))
    with pytest.raises(ConversionError, match=match):
        Explainer.from_keras(model)
