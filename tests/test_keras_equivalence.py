"""Scores equal a Keras model built from the same weights; Gradient×Input and Sensitivity equal
``tf.GradientTape`` on that model. This checks gate order, bias layout and directions against
Keras itself, independently of the reference vectors."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from tf_lrp import Explainer

pytestmark = pytest.mark.slow

CONFIGS = [
    # (cell, bidirectional, depth, reset_after)
    ("lstm", False, 1, True),
    ("lstm", True, 1, True),
    ("lstm", True, 2, True),
    ("gru", False, 2, True),
    ("gru", True, 1, True),
    ("gru", True, 2, False),
    ("simple_rnn", False, 2, True),
    ("simple_rnn", True, 1, True),
    ("mixed", True, 3, True),  # LSTM -> SimpleRNN(relu) -> GRU, each bidirectional
]
MIXED = ("lstm", "simple_rnn", "gru")


def build_model(cell: str, bidirectional: bool, depth: int, reset_after: bool, features: int, units: int, classes: int):
    layers = [keras.Input((None, features), dtype="float64")]
    for index in range(depth):
        kwargs = {"return_sequences": index < depth - 1, "dtype": "float64"}
        kind = MIXED[index % 3] if cell == "mixed" else cell
        if kind == "gru":
            recurrent = keras.layers.GRU(units, reset_after=reset_after, **kwargs)
        elif kind == "simple_rnn":
            recurrent = keras.layers.SimpleRNN(units, activation="relu" if cell == "mixed" else "tanh", **kwargs)
        else:
            recurrent = keras.layers.LSTM(units, **kwargs)
        layers.append(keras.layers.Bidirectional(recurrent, dtype="float64") if bidirectional else recurrent)
    layers.append(keras.layers.Dense(classes, dtype="float64"))
    return keras.Sequential(layers)


@pytest.fixture(scope="module", params=CONFIGS, ids=lambda c: f"{c[0]}-{'bi' if c[1] else 'uni'}-L{c[2]}-ra{c[3]}")
def pair(request):
    cell, bidirectional, depth, reset_after = request.param
    rng = np.random.default_rng(7)
    model = build_model(cell, bidirectional, depth, reset_after, features=3, units=5, classes=4)
    # non-trivial weights, including biases (Keras initialises biases to zero)
    model.set_weights([rng.normal(scale=0.6, size=w.shape) for w in model.get_weights()])
    if cell == "mixed":  # several cell kinds: the weight list alone cannot say which; convert the model
        return model, Explainer.from_keras(model, dtype="float64", tolerance=1e-10)
    explainer = Explainer.from_weights(
        model.get_weights(), cell=cell, bidirectional=bidirectional, reset_after=reset_after, dtype="float64"
    )
    return model, explainer


def test_scores_equal_keras(pair, rng) -> None:
    model, explainer = pair
    for batch, steps in ((6, 9), (1, 1), (3, 4)):
        x = rng.normal(size=(batch, steps, 3))
        expected = model(x).numpy()
        np.testing.assert_allclose(explainer.score(x), expected, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(explainer.explain(x).scores, expected, rtol=1e-12, atol=1e-12)


def test_gradient_methods_equal_gradient_tape(pair, rng) -> None:
    model, explainer = pair
    x = rng.normal(size=(5, 7, 3))
    target = rng.integers(0, 4, size=5)
    inputs = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        scores = model(inputs)
        picked = tf.reduce_sum(tf.gather(scores, target, axis=1, batch_dims=1))
    gradient = tape.gradient(picked, inputs).numpy()
    gi = explainer.explain(x, target=target, method="gradient_x_input")
    np.testing.assert_allclose(gi.relevance, gradient * x, rtol=1e-10, atol=1e-12)
    sa = explainer.explain(x, target=target, method="sensitivity")
    np.testing.assert_allclose(sa.relevance, gradient**2, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(gi.initial_state_relevance, 0.0)


def test_float32_matches_float64(pair, rng) -> None:
    _, explainer64 = pair
    explainer32 = Explainer.from_manifest(explainer64.manifest, explainer64.weights, dtype="float32")
    x = rng.normal(size=(4, 6, 3))
    r64 = explainer64.explain(x, target=0)
    r32 = explainer32.explain(x, target=0)
    assert r32.relevance.dtype == np.float32
    np.testing.assert_allclose(r32.relevance, r64.relevance, rtol=0, atol=1e-4 * np.abs(r64.relevance).max())
