"""The activation node (tf_lrp/nodes/activation.py): every elementwise activation against Keras
(forward) and autodiff (derivative), the identity rule, the hidden-Dense split and the refusals."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest

from tests.nodekit import keras_gradient_x_input
from tf_lrp import ConversionError, Explainer
from tf_lrp.convert.keras import from_keras
from tf_lrp.convert.keras_core import KERAS_ELEMENTWISE
from tf_lrp.layout import ELEMENTWISE_ACTIVATIONS, ActivationSpec, load_schema
from tf_lrp.nodes import NODES, NodeContext
from tf_lrp.nodes.activation import ELEMENTWISE

L = keras.layers
#: points away from every kink (0, ±0.5, ±1, ±3, 6), both signs, small and large
X = np.concatenate([np.linspace(-7.3, 7.1, 97) + 0.0123, [-2.9, -0.97, -0.45, 0.13, 0.55, 2.95, 5.9, 6.3]])
#: Keras activations that are not elementwise, or need arguments
NOT_ELEMENTWISE = {"softmax", "log_softmax", "sparsemax", "glu", "threshold"}


def _keras(name: str):
    if name == "gelu_approximate":
        return lambda x: keras.activations.gelu(x, approximate=True)
    return keras.activations.get(name)


def test_tables_agree() -> None:
    assert set(ELEMENTWISE) == set(ELEMENTWISE_ACTIVATIONS)
    schema = load_schema()["$defs"]["activation_layer"]["properties"]["activation"]["enum"]
    assert tuple(schema) == ELEMENTWISE_ACTIVATIONS
    import keras.src.activations as activations

    every = set(activations.ALL_OBJECTS_DICT) - NOT_ELEMENTWISE
    named = {keras.activations.get(name).__name__ for name in every}  # swish -> silu, hard_swish -> hard_silu
    assert named <= set(KERAS_ELEMENTWISE), sorted(named - set(KERAS_ELEMENTWISE))


@pytest.mark.parametrize("name", ELEMENTWISE_ACTIVATIONS)
def test_forward_equals_keras_and_derivative_equals_autodiff(name: str) -> None:
    import tensorflow as tf

    function, derivative = ELEMENTWISE[name]
    x = tf.constant(X)
    with tf.GradientTape() as tape:
        tape.watch(x)
        theirs = _keras(name)(x)
    grad = tape.gradient(theirs, x).numpy()
    # TensorFlow's float64 GELU kernel is accurate to ~5e-9; tf_lrp computes GELU from its formula
    tolerance = 1e-8 if name.startswith("gelu") else 1e-14
    np.testing.assert_allclose(keras.ops.convert_to_numpy(function(x)), theirs.numpy(), rtol=0, atol=tolerance)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(derivative(x)), grad, rtol=0, atol=tolerance)
    with tf.GradientTape() as tape:  # the derivative is that of tf_lrp's own forward, to rounding
        tape.watch(x)
        ours = function(x)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(derivative(x)), tape.gradient(ours, x).numpy(), rtol=0, atol=1e-13
    )


def test_gelu_is_exact() -> None:
    function, derivative = ELEMENTWISE["gelu"]
    exact = np.array([0.5 * v * math.erfc(-v / math.sqrt(2.0)) for v in X])
    density = np.array([math.exp(-v * v / 2) / math.sqrt(2 * math.pi) for v in X])
    slope = np.array([0.5 * math.erfc(-v / math.sqrt(2.0)) for v in X]) + X * density
    x = keras.ops.convert_to_tensor(X)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(function(x)), exact, rtol=0, atol=1e-14)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(derivative(x)), slope, rtol=0, atol=1e-14)


def test_relevance_passes_unchanged_and_gradient_is_the_derivative() -> None:
    rng = np.random.default_rng(0)
    node, spec = NODES["activation"], ActivationSpec("tanh", 4)
    x = rng.normal(size=(3, 2, 4))
    out, cache = node.forward(spec, (), [keras.ops.convert_to_tensor(x)], None)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(out), np.tanh(x), rtol=0, atol=1e-15)
    relevance = rng.normal(size=x.shape)
    number = keras.ops.convert_to_tensor
    ctx = NodeContext(number(0.1, "float64"), number(1.0, "float64"), None, False)
    (r,), leftover = node.relevance(spec, (), cache, number(relevance), ctx)
    assert leftover is None
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(r), relevance)  # per connection: R_j -> x_j
    (g,) = node.gradient(spec, (), cache, number(relevance), ctx)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(g), relevance * (1 - np.tanh(x) ** 2), rtol=0, atol=1e-15)


def _model(*layers, features: int = 2) -> keras.Model:
    f64 = {"dtype": "float64"}
    inputs = keras.Input((5, features), dtype="float64")
    tensor = L.LSTM(3, **f64)(inputs)
    for layer in layers:
        tensor = layer(tensor)
    model = keras.Model(inputs, tensor)
    rng = np.random.default_rng(1)
    model.set_weights([rng.normal(scale=0.6, size=w.shape) for w in model.get_weights()])
    return model


@pytest.mark.parametrize("name", ["tanh", "gelu", "silu", "elu", "selu", "softplus", "mish", "sigmoid"])
def test_hidden_dense_with_an_elementwise_activation_is_dense_then_activation(name: str) -> None:
    f64 = {"dtype": "float64"}
    model = _model(L.Dense(4, activation=name, **f64), L.Dense(2, **f64))
    converted = from_keras(model)
    kinds = [(entry["kind"], entry.get("activation")) for entry in converted.manifest["layers"]]
    assert kinds == [("lstm", "tanh"), ("dense", "linear"), ("activation", name), ("dense", "linear")]
    x = np.random.default_rng(2).normal(size=(4, 5, 2))
    tolerance = 1e-7 if name == "gelu" else 1e-10
    ex = Explainer.from_keras(model, sample=x, dtype="float64", tolerance=tolerance)
    result = ex.explain(x, bias_factor=1.0, eps=1e-3)
    np.testing.assert_allclose(result.relevance_sum + result.initial_state_relevance, result.explained_score,
                               rtol=1e-10, atol=1e-12)  # fmt: skip


def test_relu_and_linear_hidden_dense_keep_their_chain_manifest() -> None:
    f64 = {"dtype": "float64"}
    manifest = from_keras(_model(L.Dense(4, activation="relu", **f64), L.Dense(2, **f64))).manifest
    assert manifest["version"] == 1
    assert [entry["kind"] for entry in manifest["layers"]] == ["lstm", "dense", "dense"]


@pytest.mark.parametrize(
    ("layer", "expected"),
    [
        (L.Activation("swish", dtype="float64"), "silu"),
        (L.ReLU(max_value=6.0, dtype="float64"), "relu6"),
        (L.ReLU(dtype="float64"), "relu"),
        (L.ELU(dtype="float64"), "elu"),
    ],
)
def test_activation_layers(layer, expected: str) -> None:
    model = _model(layer, L.Dense(2, dtype="float64"))
    entry = from_keras(model).manifest["layers"][1]
    assert {key: entry[key] for key in ("kind", "activation", "features", "name")} == {
        "kind": "activation", "activation": expected, "features": 3, "name": layer.name
    }  # fmt: skip
    x = np.random.default_rng(3).normal(size=(3, 5, 2))
    Explainer.from_keras(model, sample=x, dtype="float64", tolerance=1e-12)


@pytest.mark.parametrize(
    ("layers", "match"),
    [
        ([L.Activation("softmax"), L.Dense(2)], "'softmax' is not elementwise"),
        ([L.Dense(3, activation="softmax"), L.Dense(2)], "relevance passes through elementwise activations only"),
        ([L.Activation(lambda x: x * 2), L.Dense(2)], "not a Keras elementwise activation"),
        ([L.ReLU(negative_slope=0.1), L.Dense(2)], "negative_slope"),
        ([L.ReLU(max_value=3.0), L.Dense(2)], "max_value=3.0"),
        ([L.ELU(alpha=0.5), L.Dense(2)], "alpha=0.5"),
    ],
)
def test_refusals(layers, match: str) -> None:
    with pytest.raises(ConversionError, match=match):
        from_keras(_model(*layers))


@pytest.mark.parametrize("slope", [0.3, 0.01, 0.0, 1.7])
def test_leaky_relu_with_its_slope_equals_keras_and_autodiff(slope: float) -> None:
    import tensorflow as tf

    layer = L.LeakyReLU(negative_slope=slope, dtype="float64")
    node, spec = NODES["activation"], ActivationSpec("leaky_relu", len(X), negative_slope=slope)
    x = tf.constant(X[None, :])
    upstream = np.random.default_rng(4).normal(size=x.shape)
    with tf.GradientTape() as tape:
        tape.watch(x)
        theirs = layer(x)
        total = tf.reduce_sum(theirs * upstream)
    ours, cache = node.forward(spec, (), [x], None)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(ours), theirs.numpy(), rtol=0, atol=1e-14)
    ctx = NodeContext(keras.ops.convert_to_tensor(0.1, "float64"), keras.ops.convert_to_tensor(1.0, "float64"), None,
                      False)  # fmt: skip
    (grad,) = node.gradient(spec, (), cache, tf.constant(upstream), ctx)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(grad), tape.gradient(total, x).numpy(), rtol=0, atol=1e-14)
    (r,), leftover = node.relevance(spec, (), cache, tf.constant(upstream), ctx)
    assert leftover is None
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(r), upstream)


def test_leaky_relu_slope_in_the_manifest() -> None:
    from tf_lrp import LayoutError

    spec = ActivationSpec("leaky_relu", 3, negative_slope=0.3)
    assert spec.to_entry()["negative_slope"] == 0.3
    assert ActivationSpec.from_entry(spec.to_entry()) == spec
    assert "negative_slope" not in ActivationSpec("leaky_relu", 3).to_entry()  # Keras's default 0.2: not written
    from tf_lrp.layout import Port

    port = Port(True, 3, False, "input")
    with pytest.raises(LayoutError, match="negative_slope is read by activation leaky_relu only"):
        ActivationSpec("relu", 3, negative_slope=0.3).infer([port], "layer 1 (activation)", False)


@pytest.mark.parametrize(("shape", "shared_axes"), [((4, 6, 5), [1]), ((4, 5), None), ((4, 6, 5), [1, 2])])
def test_prelu_node_equals_keras_and_autodiff_and_passes_relevance(shape, shared_axes) -> None:
    import tensorflow as tf

    from tf_lrp.convert.keras_layers import prelu_layer
    from tf_lrp.convert.keras_nodes import Call, Incoming
    from tf_lrp.layout import Port, PReLUSpec

    rng = np.random.default_rng(5)
    layer = L.PReLU(shared_axes=shared_axes, dtype="float64")
    layer.build((None, *shape[1:]))
    layer.set_weights([rng.normal(size=tuple(layer.alpha.shape))])
    port = Port(len(shape) == 3, shape[-1], False, "input")
    call = Call(layer, (Incoming(port, False, None),), (None,), (), {}, False)
    emitted = prelu_layer(call)
    assert emitted.specs == (PReLUSpec(shape[-1], name=layer.name),)
    node, spec = NODES["prelu"], emitted.specs[0]
    params = node.params(spec, [keras.ops.convert_to_tensor(a) for a in emitted.arrays])
    x = tf.constant(rng.normal(size=shape) * 2.0)
    upstream = rng.normal(size=shape)
    with tf.GradientTape() as tape:
        tape.watch(x)
        theirs = layer(x)
        total = tf.reduce_sum(theirs * upstream)
    ours, cache = node.forward(spec, params, [x], None)  # elementwise: batch- or time-major alike
    np.testing.assert_allclose(keras.ops.convert_to_numpy(ours), theirs.numpy(), rtol=0, atol=1e-15)
    ctx = NodeContext(keras.ops.convert_to_tensor(0.1, "float64"), keras.ops.convert_to_tensor(1.0, "float64"), None,
                      False)  # fmt: skip
    (grad,) = node.gradient(spec, params, cache, tf.constant(upstream), ctx)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(grad), tape.gradient(total, x).numpy(), rtol=0, atol=1e-15)
    (r,), leftover = node.relevance(spec, params, cache, tf.constant(upstream), ctx)
    assert leftover is None
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(r), upstream)


def _leaky_prelu_model() -> keras.Model:
    f64 = {"dtype": "float64"}
    inputs = keras.Input((None, 2), dtype="float64")
    h = L.LSTM(4, return_sequences=True, **f64)(inputs)
    h = L.Conv1D(3, 2, padding="causal", activation="leaky_relu", name="conv", **f64)(h)
    h = L.PReLU(shared_axes=[1], name="prelu", **f64)(h)
    h = L.LeakyReLU(negative_slope=0.1, name="leaky", **f64)(L.Dense(4, **f64)(L.GRU(3, **f64)(h)))
    h = L.Dense(3, activation="leaky_relu", name="hidden", **f64)(h)
    model = keras.Model(inputs, L.Dense(2, **f64)(h))
    rng = np.random.default_rng(6)
    model.set_weights([rng.normal(scale=0.7, size=w.shape) for w in model.get_weights()])
    return model


def test_leaky_relu_and_prelu_layers_convert_and_explain() -> None:
    model = _leaky_prelu_model()
    manifest = from_keras(model).manifest
    layers = [(e["kind"], e.get("activation"), e.get("negative_slope")) for e in manifest["layers"]]
    assert layers == [
        ("lstm", "tanh", None), ("conv1d", "linear", None), ("activation", "leaky_relu", None), ("prelu", None, None),
        ("gru", "tanh", None), ("dense", "linear", None), ("activation", "leaky_relu", 0.1), ("dense", "linear", None),
        ("activation", "leaky_relu", None), ("dense", "linear", None),
    ]  # fmt: skip
    x = np.random.default_rng(7).normal(size=(4, 6, 2))
    ex = Explainer.from_keras(model, sample=x, dtype="float64", tolerance=1e-12)
    result = ex.explain(x, bias_factor=1.0, eps=1e-3)
    np.testing.assert_allclose(result.relevance_sum + result.initial_state_relevance, result.explained_score,
                               rtol=1e-10, atol=1e-12)  # fmt: skip
    target = np.array([0, 1, 1, 0])
    expected = keras_gradient_x_input(model, x, target)
    gxi = ex.explain(x, target=target, method="gradient_x_input").relevance
    np.testing.assert_allclose(gxi, expected, rtol=0, atol=1e-11)


def test_prelu_with_a_slope_per_time_step_is_refused() -> None:
    f64 = {"dtype": "float64"}
    inputs = keras.Input((5, 2), dtype="float64")
    h = L.PReLU(name="per_step", **f64)(L.LSTM(3, return_sequences=True, **f64)(inputs))
    model = keras.Model(inputs, L.Dense(2, **f64)(L.GRU(2, **f64)(h)))
    with pytest.raises(ConversionError, match=r"'per_step' \(PReLU\): has alpha of shape \(5, 3\).*shared_axes=\[1\]"):
        from_keras(model)
