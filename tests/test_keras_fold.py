"""Folding BatchNormalization into the neighbouring Dense / Conv1D (tf_lrp/convert/keras_fold.py).

The folded network against the Keras model (forward, Gradient×Input by tf.GradientTape), its LRP
against a per-connection float64 numpy oracle of the ε-rule on weights folded here by hand, the
conservation at bias_factor=1, and the cases that do not fold (they keep the node).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

import tf_lrp.convert.keras as keras_convert
from tests.nodekit import keras_gradient_x_input
from tf_lrp import Explainer

L = keras.layers
F64 = {"dtype": "float64"}
D, H, C = 4, 5, 3


def _randomise(model: keras.Model, seed: int) -> None:
    """Random weights; BatchNormalization's moving variances positive, its γ away from zero."""
    rng = np.random.default_rng(seed)
    weights = []
    for variable in model.weights:
        shape = tuple(variable.shape)
        if "variance" in variable.path:
            weights.append(rng.uniform(0.3, 2.0, size=shape))
        elif "gamma" in variable.path:
            weights.append(rng.normal(size=shape) + 1.5)
        else:
            weights.append(rng.normal(size=shape))
    model.set_weights(weights)


def _bn(layer: keras.layers.Layer) -> tuple[np.ndarray, np.ndarray]:
    """(s, c) of a Keras BatchNormalization: y = s x + c."""
    gamma, beta, mean, variance = (np.asarray(w, dtype=np.float64) for w in layer.get_weights())
    s = gamma / np.sqrt(variance + layer.epsilon)
    return s, beta - mean * s


def _eps_oracle(x, kernel, bias, relevance, eps, bf):
    """Per connection: z_j = Σ_i x_i w_ij + b_j; R_i = Σ_j (x_i w_ij + bf (b_j + ε_j) / D) R_j / (z_j + ε_j)."""
    out = np.zeros_like(x)
    z = x @ kernel + bias
    for b in range(x.shape[0]):
        for j in range(kernel.shape[1]):
            stab = eps if z[b, j] >= 0 else -eps
            for i in range(kernel.shape[0]):
                message = x[b, i] * kernel[i, j] + bf * (bias[j] + stab) / kernel.shape[0]
                out[b, i] += message * relevance[b, j] / (z[b, j] + stab)
    return z, out


def _dense_bn_model(after: bool) -> keras.Model:
    """Vectors (B, D): Dense(H) -> BN -> ReLU -> Dense(C) (after=True) or BN -> Dense(H, relu) -> Dense(C)."""
    inputs = keras.Input((D,), dtype="float64")
    if after:
        h = L.Activation("relu", **F64)(L.BatchNormalization(**F64)(L.Dense(H, name="hidden", **F64)(inputs)))
    else:
        h = L.Dense(H, activation="relu", name="hidden", **F64)(L.BatchNormalization(**F64)(inputs))
    model = keras.Model(inputs, L.Dense(C, name="head", **F64)(h))
    _randomise(model, 3)
    return model


def _lrp_oracle(model: keras.Model, after: bool, x: np.ndarray, target: np.ndarray, eps: float, bf: float):
    """The ε-rule on the folded map (folded here from the Keras weights), ReLU passing, then the head."""
    hidden, head = model.get_layer("hidden"), model.get_layer("head")
    bn = next(layer for layer in model.layers if isinstance(layer, L.BatchNormalization))
    s, c = _bn(bn)
    kernel, bias = (np.asarray(w, dtype=np.float64) for w in hidden.get_weights())
    if after:
        kernel, bias = kernel * s, bias * s + c
    else:
        kernel, bias = kernel * s[:, None], bias + c @ kernel
    a = np.maximum(x @ kernel + bias, 0.0)
    w2, b2 = (np.asarray(w, dtype=np.float64) for w in head.get_weights())
    z2 = a @ w2 + b2
    seed = np.zeros_like(z2)
    seed[np.arange(len(x)), target] = z2[np.arange(len(x)), target]
    _, r_hidden = _eps_oracle(a, w2, b2, seed, eps, bf)
    _, r_input = _eps_oracle(x, kernel, bias, r_hidden, eps, bf)
    return r_input


@pytest.mark.parametrize("after", [True, False], ids=["bn_after_dense", "bn_before_dense"])
@pytest.mark.parametrize(("eps", "bf"), [(1e-3, 0.0), (0.2, 1.0), (0.05, 0.5)])
def test_folded_dense_matches_keras_and_the_per_connection_oracle(after: bool, eps: float, bf: float) -> None:
    model = _dense_bn_model(after)
    x = np.random.default_rng(4).normal(size=(6, D)) * 2.0
    ex = Explainer.from_keras(model, sample=x, dtype="float64", tolerance=1e-10)
    # after: Dense -> BN -> ReLU is one Dense(relu) (the relu moves onto the folded layer)
    assert [(spec.kind, spec.activation) for spec in ex.layout.layers] == [("dense", "relu"), ("dense", "linear")]
    np.testing.assert_allclose(ex.score(x), keras_convert.keras_scores(model, x), rtol=0, atol=1e-10)
    target = np.array([0, 1, 2, 0, 1, 2])
    result = ex.explain(x, target=target, eps=eps, bias_factor=bf)
    expected = _lrp_oracle(model, after, x, target, eps, bf)
    np.testing.assert_allclose(result.relevance, expected, rtol=0, atol=1e-10 * max(1.0, np.abs(expected).max()))
    if bf == 1.0:
        np.testing.assert_allclose(result.relevance_sum, result.explained_score, rtol=1e-10, atol=1e-12)
    gxi = ex.explain(x, target=target, method="gradient_x_input").relevance
    np.testing.assert_allclose(gxi, keras_gradient_x_input(model, x, target), rtol=0, atol=1e-10)


def _conv_model(center: bool, scale: bool, use_bias: bool) -> keras.Model:
    """Conv1D -> BN -> ReLU -> LSTM -> Dense: the BN folds into the convolution (per output channel)."""
    inputs = keras.Input((None, 3), dtype="float64")
    h = L.Conv1D(4, 3, padding="causal", use_bias=use_bias, **F64)(inputs)
    h = L.ReLU(**F64)(L.BatchNormalization(center=center, scale=scale, epsilon=0.01, **F64)(h))
    model = keras.Model(inputs, L.Dense(2, **F64)(L.LSTM(5, **F64)(h)))
    _randomise(model, 5)
    return model


@pytest.mark.parametrize(
    ("center", "scale", "use_bias"), [(True, True, True), (False, True, False), (True, False, False)]
)
def test_folded_conv1d_matches_keras_gradient_and_conserves(center: bool, scale: bool, use_bias: bool) -> None:
    model = _conv_model(center, scale, use_bias)
    x = np.random.default_rng(6).normal(size=(4, 7, 3))
    ex = Explainer.from_keras(model, sample=x, dtype="float64", tolerance=1e-10)
    assert [spec.kind for spec in ex.layout.layers] == ["conv1d", "lstm", "dense"]
    assert ex.layout.layers[0].activation == "relu"  # the ReLU layer after the BN moved onto the convolution
    assert ex.layout.layers[0].use_bias  # the fold gives the convolution a bias
    np.testing.assert_allclose(ex.score(x), keras_convert.keras_scores(model, x), rtol=0, atol=1e-10)
    target = np.array([0, 1, 1, 0])
    result = ex.explain(x, target=target, eps=1e-3, bias_factor=1.0)
    total = result.relevance_sum + result.initial_state_relevance
    np.testing.assert_allclose(total, result.explained_score, rtol=1e-9, atol=1e-12)
    gxi = ex.explain(x, target=target, method="gradient_x_input").relevance
    np.testing.assert_allclose(gxi, keras_gradient_x_input(model, x, target), rtol=0, atol=1e-10)


def test_float32_model_folds_within_the_default_tolerance() -> None:
    inputs = keras.Input((None, 3))
    h = L.BatchNormalization()(L.Conv1D(4, 2, padding="same")(inputs))
    model = keras.Model(inputs, L.Dense(2)(L.GRU(3)(L.Activation("relu")(h))))
    _randomise(model, 8)
    x = np.random.default_rng(9).normal(size=(4, 6, 3)).astype("float32")
    ex = Explainer.from_keras(model, sample=x)
    assert "batch_normalization" not in [spec.kind for spec in ex.layout.layers]
    np.testing.assert_allclose(ex.score(x), keras_convert.keras_scores(model, x), rtol=0, atol=1e-5)


def _kinds(model: keras.Model, **options) -> list[str]:
    return [layer["kind"] for layer in keras_convert.from_keras(model, **options).manifest["layers"]]


def test_unfoldable_batch_norms_keep_the_node() -> None:
    inputs = keras.Input((None, 3), dtype="float64")
    relu_dense = L.Dense(4, activation="relu", **F64)(inputs)  # not linear: BN after it does not fold
    shared = L.Dense(4, **F64)(inputs)  # read by the BN and by the Add: no fold
    h = L.Add(**F64)([L.BatchNormalization(**F64)(relu_dense), L.BatchNormalization(**F64)(shared), shared])
    h = L.BatchNormalization(**F64)(L.LSTM(4, return_sequences=True, **F64)(h))  # after an LSTM, read by a Conv1D
    h = L.Conv1D(3, 2, **F64)(h)
    model = keras.Model(inputs, L.Dense(2, **F64)(L.GlobalAveragePooling1D(**F64)(h)))
    _randomise(model, 10)
    assert _kinds(model).count("batch_normalization") == 3
    x = np.random.default_rng(11).normal(size=(3, 5, 3))
    ex = Explainer.from_keras(model, sample=x, dtype="float64", tolerance=1e-10)
    result = ex.explain(x, bias_factor=1.0)
    np.testing.assert_allclose(result.relevance_sum + result.initial_state_relevance, result.explained_score,
                               rtol=1e-9, atol=1e-12)  # fmt: skip


def test_fold_batch_norm_false_keeps_every_node() -> None:
    model = _dense_bn_model(after=True)
    assert _kinds(model) == ["dense", "dense"]
    assert _kinds(model, fold_batch_norm=False) == ["dense", "batch_normalization", "activation", "dense"]
    x = np.random.default_rng(12).normal(size=(4, D))
    ex = Explainer.from_keras(model, sample=x, dtype="float64", tolerance=1e-10, fold_batch_norm=False)
    assert [spec.kind for spec in ex.layout.layers] == ["dense", "batch_normalization", "activation", "dense"]


def test_two_batch_norms_in_a_row_fold_one_after_the_other() -> None:
    inputs = keras.Input((D,), dtype="float64")
    h = L.BatchNormalization(**F64)(L.BatchNormalization(**F64)(L.Dense(H, **F64)(inputs)))
    model = keras.Model(inputs, L.Dense(C, **F64)(L.BatchNormalization(**F64)(h)))
    _randomise(model, 13)
    x = np.random.default_rng(14).normal(size=(4, D))
    ex = Explainer.from_keras(model, sample=x, dtype="float64", tolerance=1e-10)
    assert [spec.kind for spec in ex.layout.layers] == ["dense", "dense"]
    np.testing.assert_allclose(ex.score(x), keras_convert.keras_scores(model, x), rtol=0, atol=1e-10)


def test_only_a_relu_moves_onto_the_folded_layer() -> None:
    from tests.test_keras_zoo import conv_batch_norm_lstm

    model, _ = conv_batch_norm_lstm()  # Conv1D -> BN -> ReLU -> LSTM -> Dense -> BN -> LeakyReLU -> Dense
    layers = keras_convert.from_keras(model).manifest["layers"]
    assert [(e["kind"], e.get("activation")) for e in layers] == [
        ("conv1d", "relu"), ("lstm", "tanh"), ("dense", "linear"), ("activation", "leaky_relu"), ("dense", "linear")
    ]  # fmt: skip
    inputs = keras.Input((D,), dtype="float64")
    hidden = L.Dense(H, **F64)(inputs)
    h = L.Activation("relu", **F64)(L.BatchNormalization(**F64)(hidden))
    shared = keras.Model(inputs, L.Dense(C, **F64)(L.Concatenate(**F64)([h, hidden])))  # the Dense has two readers
    assert _kinds(shared) == ["dense", "batch_normalization", "activation", "concatenate", "dense"]
