"""The conv1d node (tf_lrp/nodes/conv.py): forward equals Keras's Conv1D (float64), each rule
matches a per-connection float64 numpy oracle, the gradient equals autodiff, ε with bias share
conserves at bias_factor=1, and the converter's refusals."""

from __future__ import annotations

import itertools

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tf_lrp import ConversionError, Explainer
from tf_lrp.layout import ConvSpec
from tf_lrp.nodes import NODES, NodeContext
from tf_lrp.rules import Epsilon, Gamma, NodeRules, RuleSet, ZPlus

L = keras.layers
B, C_IN = 2, 4
#: (kernel_size, strides, dilation_rate, padding, groups)
GEOMETRIES = [
    (k, s, d, p, g)
    for k, s, d, p, g in itertools.product((1, 2, 3), (1, 2, 3), (1, 2), ("valid", "same", "causal"), (1, 2))
    if not (s > 1 and d > 1)  # Keras refuses strides > 1 with dilation_rate > 1
]


def _number(value: float):
    return keras.ops.convert_to_tensor(value, "float64")


def _ctx(rule, eps: float, bf: float) -> NodeContext:
    base = RuleSet()
    return NodeContext(_number(eps), _number(bf), NodeRules(base.product, base.sum_spread, rule), False)


def _padding(steps: int, outputs: int, k: int, s: int, d: int, padding: str) -> int:
    """Left zero padding of Keras's Conv1D (TensorFlow SAME puts the extra step on the right)."""
    if padding == "valid":
        return 0
    if padding == "causal":
        return d * (k - 1)
    return max((outputs - 1) * s + d * (k - 1) + 1 - steps, 0) // 2


def _oracle(x, kernel, bias, spec: ConvSpec, relevance, rule, eps: float, bf: float):
    """Per connection, by loops over every (b, t', j, k, i): the pre-activation and the input relevance.

    x (T, B, C_in); kernel (K, C_in/G, C_out); relevance (T', B, C_out). A padded position holds no input:
    it neither contributes nor receives, and the share of output (t', j) is spread over its real inputs.
    """
    steps, outputs = x.shape[0], relevance.shape[0]
    k_size, s, d = spec.kernel_size, spec.strides, spec.dilation_rate
    left = _padding(steps, outputs, k_size, s, d, spec.padding)
    per_in, per_out = spec.input_size // spec.groups, spec.filters // spec.groups
    z = np.zeros(relevance.shape)
    out = np.zeros(x.shape)
    for b, t, j in itertools.product(range(x.shape[1]), range(outputs), range(spec.filters)):
        g = j // per_out
        links = []  # (position, input channel, contribution x_i w_ij)
        for k in range(k_size):
            pos = t * s + k * d - left
            if not 0 <= pos < steps:
                continue
            for i_local in range(per_in):
                i = g * per_in + i_local
                links.append((pos, i, x[pos, b, i] * kernel[k, i_local, j]))
        z[t, b, j] = sum(c for _, _, c in links) + bias[j]
        if isinstance(rule, ZPlus):
            positive = sum(max(c, 0.0) for _, _, c in links)
            for pos, i, c in links:
                out[pos, b, i] += max(c, 0.0) / (positive + rule.stabilizer) * relevance[t, b, j]
            continue
        stab = eps if z[t, b, j] >= 0 else -eps
        for pos, i, c in links:
            out[pos, b, i] += (c + bf * (bias[j] + stab) / len(links)) / (z[t, b, j] + stab) * relevance[t, b, j]
    return z, out


def _layer(spec: ConvSpec) -> keras.layers.Layer:
    return L.Conv1D(
        spec.filters, spec.kernel_size, strides=spec.strides, dilation_rate=spec.dilation_rate, padding=spec.padding,
        groups=spec.groups, activation=spec.activation, use_bias=spec.use_bias, dtype="float64",
    )  # fmt: skip


def _setup(spec: ConvSpec, steps: int, seed: int):
    rng = np.random.default_rng(seed)
    layer = _layer(spec)
    x = rng.normal(size=(B, steps, spec.input_size))
    keras_out = keras.ops.convert_to_numpy(layer(x))
    layer.set_weights([rng.normal(scale=0.7, size=w.shape) for w in layer.get_weights()])
    keras_out = keras.ops.convert_to_numpy(layer(x))
    arrays = [keras.ops.convert_to_tensor(w) for w in layer.get_weights()]
    node = NODES["conv1d"]
    params = node.params(spec, arrays)
    out, cache = node.forward(spec, params, [keras.ops.convert_to_tensor(x.transpose(1, 0, 2))], None)
    return rng, layer, x, keras_out, node, params, keras.ops.convert_to_numpy(out).transpose(1, 0, 2), cache


def _spec(geometry, activation: str = "relu", use_bias: bool = True) -> ConvSpec:
    k, s, d, p, g = geometry
    return ConvSpec(6, C_IN, k, s, d, p, g, activation, use_bias)


@pytest.mark.parametrize("geometry", GEOMETRIES, ids=str)
def test_forward_equals_keras_conv1d(geometry) -> None:
    spec = _spec(geometry)
    for steps in (7, 8):
        *_, keras_out, _, _, ours, _ = _setup(spec, steps, 0)
        assert ours.shape == keras_out.shape
        np.testing.assert_allclose(ours, keras_out, rtol=0, atol=1e-12)


RULES = {"eps-bf1": (Epsilon(), 1.0), "eps-bf0": (Epsilon(), 0.0), "eps0.5-bf0.5": (Epsilon(0.5), 0.5),
         "zplus": (ZPlus(), 0.0), "gamma-bf1": (Gamma(0.5), 1.0)}  # fmt: skip
#: every geometry with the conserving ε-rule, and with one of the other rules in turn
OTHER_RULES = ["eps-bf0", "eps0.5-bf0.5", "zplus", "gamma-bf1"]
ORACLE_CASES = [(g, "eps-bf1") for g in GEOMETRIES] + [
    (g, name) for g, name in zip(GEOMETRIES, itertools.cycle(OTHER_RULES), strict=False)
]


@pytest.mark.parametrize(("geometry", "rule_name"), ORACLE_CASES, ids=str)
def test_relevance_matches_the_per_connection_oracle(geometry, rule_name: str) -> None:
    rule, bf = RULES[rule_name]
    spec = _spec(geometry, use_bias=geometry[0] != 2)
    rng, layer, x, _, node, params, _, cache = _setup(spec, 8, 1)
    weights = layer.get_weights()
    bias = weights[1] if spec.use_bias else np.zeros(spec.filters)
    relevance = rng.normal(size=keras.ops.shape(cache.pre_activation))
    eps = 0.1
    (ours,), leftover = node.relevance(spec, params, cache, keras.ops.convert_to_tensor(relevance), _ctx(rule, eps, bf))
    assert leftover is None
    fixed = rule.eps if isinstance(rule, Epsilon) and rule.eps is not None else eps
    kernel = weights[0]
    if isinstance(rule, Gamma):  # the ε-rule's oracle on the γ-modified weights
        kernel, bias = kernel + rule.gamma * np.maximum(kernel, 0), bias + rule.gamma * np.maximum(bias, 0)
        rule = Epsilon()
    z, expected = _oracle(x.transpose(1, 0, 2), kernel, bias, spec, relevance, rule, fixed, bf)
    if rule_name != "gamma-bf1":
        np.testing.assert_allclose(keras.ops.convert_to_numpy(cache.pre_activation), z, rtol=0, atol=1e-12)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(ours), expected, rtol=0, atol=1e-10)


@given(
    geometry=st.sampled_from(GEOMETRIES),
    steps=st.integers(5, 12),
    seed=st.integers(0, 2**16),
    use_bias=st.booleans(),
)
def test_epsilon_with_bias_share_conserves_at_bias_factor_one(geometry, steps: int, seed: int, use_bias: bool) -> None:
    spec = _spec(geometry, use_bias=use_bias)
    rng, _, _, _, node, params, _, cache = _setup(spec, steps, seed)
    relevance = rng.normal(size=keras.ops.shape(cache.pre_activation))
    (ours,), _ = node.relevance(spec, params, cache, keras.ops.convert_to_tensor(relevance), _ctx(Epsilon(), 0.3, 1.0))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(ours).sum(axis=(0, 2)), relevance.sum(axis=(0, 2)),
                               rtol=1e-10, atol=1e-12)  # fmt: skip


@pytest.mark.parametrize("geometry", GEOMETRIES[::3], ids=str)
@pytest.mark.parametrize("activation", ["relu", "linear"])
def test_gradient_equals_autodiff(geometry, activation: str) -> None:
    if keras.backend.backend() != "tensorflow":
        pytest.skip("tf.GradientTape")
    import tensorflow as tf

    spec = _spec(geometry, activation)
    rng, layer, x, _, node, params, ours_out, cache = _setup(spec, 9, 2)
    seed = rng.normal(size=ours_out.shape)
    feed = tf.Variable(x)
    with tf.GradientTape() as tape:
        total = tf.reduce_sum(layer(feed) * seed)
    expected = tape.gradient(total, feed).numpy()
    grad_out = keras.ops.convert_to_tensor(seed.transpose(1, 0, 2))
    (ours,) = node.gradient(spec, params, cache, grad_out, _ctx(Epsilon(), 0.1, 0.0))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(ours).transpose(1, 0, 2), expected, rtol=0, atol=1e-12)


def test_keras_drops_the_mask_and_so_does_the_node() -> None:
    spec = _spec((3, 1, 1, "same", 1))
    mask = keras.ops.ones((8, B, 1), dtype="bool")
    assert NODES["conv1d"].output_mask(spec, mask) is None
    assert not L.Conv1D(2, 3).supports_masking


def test_a_model_explains_end_to_end_with_the_rule_map() -> None:
    f64 = {"dtype": "float64"}
    inputs = keras.Input((9, 3), dtype="float64")
    h = L.Conv1D(4, 3, padding="causal", dilation_rate=2, activation="relu", name="conv", **f64)(inputs)
    h = L.Conv1D(4, 2, strides=2, groups=2, padding="same", name="grouped", **f64)(h)
    model = keras.Model(inputs, L.Dense(2, **f64)(L.GRU(3, **f64)(h)))
    rng = np.random.default_rng(5)
    model.set_weights([rng.normal(scale=0.6, size=w.shape) for w in model.get_weights()])
    x = rng.normal(size=(3, 9, 3))
    ex = Explainer.from_keras(model, sample=x, dtype="float64", tolerance=1e-10)
    assert [spec.kind for spec in ex.layout.layers] == ["conv1d", "conv1d", "gru", "dense"]
    result = ex.explain(x, bias_factor=1.0, eps=1e-3)
    np.testing.assert_allclose(result.relevance_sum + result.initial_state_relevance, result.explained_score,
                               rtol=1e-9)  # fmt: skip
    rules = RuleSet(kinds={"conv1d": ZPlus()})
    other = Explainer.from_manifest(ex.layout.manifest, ex.weights, dtype="float64", rules=rules)
    zplus = other.explain(x)
    assert not np.allclose(zplus.relevance, result.relevance)


@pytest.mark.parametrize(
    ("layers", "shape", "match"),
    [
        ([L.Embedding(9, 3, mask_zero=True), L.Conv1D(2, 2)], (6,), r"'conv.*\(Conv1D\): reads padded steps as data"),
        ([L.Masking(0.0), L.Conv1D(2, 2)], (6, 3), r"\(Conv1D\): reads padded steps as data"),
        ([L.Conv1D(2, 2, activation="softmax", name="soft")], (6, 3), r"'soft' \(Conv1D\): activation 'softmax'"),
        ([L.Conv1D(2, 2, data_format="channels_first")], (3, 6), "channels_first"),
    ],
)
def test_converter_refusals(layers, shape, match: str) -> None:
    tail = [L.GRU(2), L.Dense(2)]
    model = keras.Sequential([keras.Input(shape, dtype="int32" if len(shape) == 1 else "float32"), *layers, *tail])
    with pytest.raises(ConversionError, match=match):
        Explainer.from_keras(model)


def test_explain_dataset_never_crops_padding_that_a_convolution_reads() -> None:
    from tests.networks import conv_max_pooled

    case = conv_max_pooled(np.random.default_rng(7))
    lengths = np.full(len(case.x), 3)  # steps 3.. are masked in every sample, but the Conv1D reads them
    whole = case.explainer.explain(case.x, lengths=lengths, bias_factor=1.0)
    chunked = case.explainer.explain_dataset(case.x, lengths=lengths, bias_factor=1.0, batch_size=2)
    np.testing.assert_allclose(chunked.scores, whole.scores, rtol=0, atol=1e-12)
    np.testing.assert_allclose(chunked.relevance, whole.relevance, rtol=0, atol=1e-12)
