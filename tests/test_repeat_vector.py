"""RepeatVector (tf_lrp/nodes/repeat_vector.py): forward equals Keras, relevance and gradient are
the sums over the copies (oracle, autodiff), conserving; an encoder-decoder explains end to end."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tests.nodekit import node_context
from tf_lrp import Explainer
from tf_lrp.layout import RepeatVectorSpec
from tf_lrp.nodes import NODES

L = keras.layers


@pytest.mark.parametrize("n", [1, 4])
def test_forward_relevance_and_gradient(n: int) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 5))
    spec, node = RepeatVectorSpec(n, 5), NODES["repeat_vector"]
    out, cache = node.forward(spec, (), [keras.ops.convert_to_tensor(x)], None)
    theirs = keras.ops.convert_to_numpy(L.RepeatVector(n, dtype="float64")(x))  # (B, n, F)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(out), theirs.transpose(1, 0, 2))
    relevance = rng.normal(size=(n, 3, 5))
    (ours,), leftover = node.relevance(spec, (), cache, keras.ops.convert_to_tensor(relevance), node_context())
    assert leftover is None
    expected = np.zeros_like(x)
    for t in range(n):  # per connection: copy t of unit (b, j) came from (b, j)
        expected += relevance[t]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(ours), expected, rtol=0, atol=1e-14)
    (grad,) = node.gradient(spec, (), cache, keras.ops.convert_to_tensor(relevance), node_context())
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        feed = tf.Variable(x)
        with tf.GradientTape() as tape:
            total = tf.reduce_sum(L.RepeatVector(n, dtype="float64")(feed) * relevance.transpose(1, 0, 2))
        np.testing.assert_allclose(keras.ops.convert_to_numpy(grad), tape.gradient(total, feed).numpy(), atol=1e-14)
    assert node.output_mask(spec, None) is None


def test_encoder_repeat_decoder_per_step_conserves() -> None:
    f64 = {"dtype": "float64"}
    inputs = keras.Input((6, 2), dtype="float64")
    h = L.RepeatVector(3, **f64)(L.LSTM(4, **f64)(inputs))
    h = L.TimeDistributed(L.Dense(2, **f64), **f64)(L.LSTM(3, return_sequences=True, **f64)(h))
    model = keras.Model(inputs, h)
    rng = np.random.default_rng(1)
    model.set_weights([rng.normal(scale=0.6, size=w.shape) for w in model.get_weights()])
    x = rng.normal(size=(4, 6, 2))
    ex = Explainer.from_keras(model, sample=x, dtype="float64", tolerance=1e-10)
    assert ex.layout.per_step
    assert "repeat_vector" in {spec.kind for spec in ex.layout.layers}
    for step in (0, 2, None):
        result = ex.explain(x, step=step, bias_factor=1.0, eps=1e-3)
        np.testing.assert_allclose(result.relevance_sum + result.initial_state_relevance, result.explained_score,
                                   rtol=1e-9)  # fmt: skip
