"""The flatten node and the reshape handlers: Flatten / Reshape / Permute of Keras models."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from keras import ops

from tf_lrp import Explainer
from tf_lrp.errors import ConversionError
from tf_lrp.layout import FlattenSpec
from tf_lrp.nodes import NODES

L = keras.layers
STEPS, FEATURES = 5, 3


def test_flatten_forward_equals_keras_and_goes_back_to_each_step() -> None:
    spec, node = FlattenSpec(STEPS, FEATURES), NODES["flatten"]
    x = np.random.default_rng(0).normal(size=(4, STEPS, FEATURES))
    out, cache = node.forward(spec, (), [ops.convert_to_tensor(x.transpose(1, 0, 2))], None)
    np.testing.assert_array_equal(ops.convert_to_numpy(out), ops.convert_to_numpy(L.Flatten(dtype="float64")(x)))
    signal = np.random.default_rng(1).normal(size=(4, STEPS * FEATURES))
    (relevance,), leftover = node.relevance(spec, (), cache, ops.convert_to_tensor(signal), None)  # type: ignore[arg-type]
    (grad,) = node.gradient(spec, (), cache, ops.convert_to_tensor(signal), None)  # type: ignore[arg-type]
    assert leftover is None
    for back in (relevance, grad):
        back = ops.convert_to_numpy(back)  # (T, B, F)
        for b, t, f in np.ndindex(4, STEPS, FEATURES):  # entry t·F + f came from step t, feature f
            assert back[t, b, f] == signal[b, t * FEATURES + f]


def _model(*middle: keras.layers.Layer) -> keras.Model:
    inputs = keras.Input((STEPS, FEATURES), dtype="float64")
    h = L.LSTM(4, return_sequences=True, dtype="float64")(inputs)
    for layer in middle:
        h = layer(h)
    if len(h.shape) == 3:
        h = L.Flatten(dtype="float64")(h)
    return keras.Model(inputs, L.Dense(2, dtype="float64")(h))


@pytest.mark.parametrize(
    "middle",
    [
        (),
        (L.Reshape((STEPS * 4,), dtype="float64"),),
        (L.Reshape((-1,), dtype="float64"),),
        (L.Reshape((STEPS, 4), dtype="float64"),),
        (L.Permute((1, 2), dtype="float64"),),
    ],
    ids=["flatten", "reshape_flat", "reshape_minus_one", "reshape_same", "permute_identity"],
)
def test_flattened_models_convert_explain_and_conserve(middle) -> None:
    model = _model(*middle)
    x = np.random.default_rng(2).normal(size=(3, STEPS, FEATURES))
    explainer = Explainer.from_keras(model, sample=x, dtype="float64", tolerance=1e-9)
    assert "flatten" in {spec.kind for spec in explainer.layout.layers}
    result = explainer.explain(x, bias_factor=1.0, eps=1e-9)
    np.testing.assert_allclose(result.relevance_sum + result.initial_state_relevance, result.explained_score,
                               rtol=1e-9)  # fmt: skip
    import tensorflow as tf

    feed = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(feed)
        picked = tf.reduce_sum(model(feed) * tf.one_hot(result.target, 2, dtype=tf.float64))
    expected = tape.gradient(picked, feed).numpy() * x
    ours = explainer.explain(x, method="gradient_x_input").relevance
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        (L.Reshape((4, STEPS)), r"target_shape=\(4, 5\) mixes the time axis with the features"),
        (L.Permute((2, 1)), r"dims=\(2, 1\) swaps the time axis with the features"),
    ],
)
def test_reshapes_that_mix_time_and_features_are_refused(layer, message: str) -> None:
    with pytest.raises(ConversionError, match=message):
        Explainer.from_keras(_model(layer))
