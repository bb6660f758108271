"""Windowed pooling (tf_lrp/nodes/pooling1d.py): forward equals Keras's MaxPooling1D /
AveragePooling1D (float64), each rule matches a per-connection float64 oracle, the gradient equals
autodiff, both conserve, and the converter's refusals."""

from __future__ import annotations

import itertools

import keras
import numpy as np
import pytest

from tf_lrp import ConversionError, Explainer
from tf_lrp.layout import Pooling1DSpec
from tf_lrp.nodes import NODES, NodeContext
from tf_lrp.rules import NodeRules, RuleSet

L = keras.layers
B, F = 2, 3
KERAS = {"max_pooling1d": L.MaxPooling1D, "average_pooling1d": L.AveragePooling1D}
#: (kind, pool_size, strides, padding)
CASES = list(itertools.product(sorted(KERAS), (1, 2, 3), (1, 2, 3), ("valid", "same")))


def _ctx(eps: float, bf: float) -> NodeContext:
    base = RuleSet()
    number = keras.ops.convert_to_tensor
    return NodeContext(number(eps, "float64"), number(bf, "float64"),
                       NodeRules(base.product, base.sum_spread, base.head), False)  # fmt: skip


def _windows(steps: int, outputs: int, size: int, stride: int, padding: str) -> list[list[int]]:
    """The real input steps of each output's window (TensorFlow SAME: the extra padding on the right)."""
    left = 0 if padding == "valid" else max((outputs - 1) * stride + size - steps, 0) // 2
    return [[t * stride + k - left for k in range(size) if 0 <= t * stride + k - left < steps] for t in range(outputs)]


def _oracle(kind: str, x, relevance, size: int, stride: int, padding: str, eps: float, bf: float):
    """Per connection: the pooled output and R of every input step, by loops over (t', b, j, k)."""
    windows = _windows(x.shape[0], relevance.shape[0], size, stride, padding)
    pooled = np.zeros(relevance.shape)
    out = np.zeros(x.shape)
    for (t, steps), b, j in itertools.product(enumerate(windows), range(x.shape[1]), range(x.shape[2])):
        values = [x[p, b, j] for p in steps]
        if kind == "max_pooling1d":
            pooled[t, b, j] = max(values)
            winners = [p for p in steps if x[p, b, j] == max(values)]
            for p in winners:
                out[p, b, j] += relevance[t, b, j] / len(winners)
            continue
        z = pooled[t, b, j] = sum(values) / len(steps)
        stab = eps if z >= 0 else -eps
        for p in steps:
            out[p, b, j] += (x[p, b, j] / len(steps) + bf * stab / len(steps)) * relevance[t, b, j] / (z + stab)
    return pooled, out


def _run(case, steps: int, seed: int, ties: bool = False):
    kind, size, stride, padding = case
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(steps, B, F))
    if ties:
        x[1:4, 0, 0] = 2.5  # ties within windows
    spec = Pooling1DSpec(kind, F, size, stride, padding)
    node = NODES[kind]
    out, cache = node.forward(spec, (), [keras.ops.convert_to_tensor(x)], None)
    return rng, x, spec, node, keras.ops.convert_to_numpy(out), cache


@pytest.mark.parametrize("case", CASES, ids=str)
def test_forward_equals_keras(case) -> None:
    kind, size, stride, padding = case
    for steps in (7, 8):
        _, x, _, _, ours, _ = _run(case, steps, 0)
        layer = KERAS[kind](size, stride, padding=padding, dtype="float64")
        theirs = keras.ops.convert_to_numpy(layer(x.transpose(1, 0, 2)))
        assert ours.shape == theirs.transpose(1, 0, 2).shape
        np.testing.assert_allclose(ours, theirs.transpose(1, 0, 2), rtol=0, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize(("eps", "bf"), [(1e-3, 0.0), (0.3, 1.0)])
def test_relevance_matches_the_per_connection_oracle_and_conserves(case, eps: float, bf: float) -> None:
    kind, size, stride, padding = case
    rng, x, spec, node, ours_out, cache = _run(case, 8, 1, ties=True)
    relevance = rng.normal(size=ours_out.shape)
    (ours,), leftover = node.relevance(spec, (), cache, keras.ops.convert_to_tensor(relevance), _ctx(eps, bf))
    assert leftover is None
    pooled, expected = _oracle(kind, x, relevance, size, stride, padding, eps, bf)
    np.testing.assert_allclose(ours_out, pooled, rtol=0, atol=1e-12)
    ours = keras.ops.convert_to_numpy(ours)
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-10)
    if bf == 1.0 or kind == "max_pooling1d":  # conserving
        np.testing.assert_allclose(ours.sum(axis=(0, 2)), relevance.sum(axis=(0, 2)), rtol=1e-10)


@pytest.mark.parametrize("case", CASES[::2], ids=str)
def test_gradient_equals_autodiff(case) -> None:
    if keras.backend.backend() != "tensorflow":
        pytest.skip("tf.GradientTape")
    import tensorflow as tf

    kind, size, stride, padding = case
    rng, x, spec, node, ours_out, cache = _run(case, 9, 2)  # no ties: the max's gradient is unique
    seed = rng.normal(size=ours_out.shape)
    feed = tf.Variable(x.transpose(1, 0, 2))
    with tf.GradientTape() as tape:
        layer = KERAS[kind](size, stride, padding=padding, dtype="float64")
        total = tf.reduce_sum(layer(feed) * seed.transpose(1, 0, 2))
    expected = tape.gradient(total, feed).numpy().transpose(1, 0, 2)
    (ours,) = node.gradient(spec, (), cache, keras.ops.convert_to_tensor(seed), _ctx(0.1, 0.0))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(ours), expected, rtol=0, atol=1e-12)


def test_keras_drops_the_mask_and_so_does_the_node() -> None:
    spec = Pooling1DSpec("max_pooling1d", F)
    assert NODES["max_pooling1d"].output_mask(spec, keras.ops.ones((6, B, 1), dtype="bool")) is None
    assert not L.MaxPooling1D().supports_masking
    assert not L.AveragePooling1D(2).supports_masking


@pytest.mark.parametrize(
    ("layers", "shape", "match"),
    [
        ([L.Embedding(9, 3, mask_zero=True), L.MaxPooling1D()], (6,), r"\(MaxPooling1D\): reads padded steps"),
        ([L.Masking(0.0), L.AveragePooling1D(2)], (6, 3), r"\(AveragePooling1D\): reads padded steps"),
        ([L.MaxPooling1D(data_format="channels_first")], (3, 6), "channels_first"),
    ],
)
def test_converter_refusals(layers, shape, match: str) -> None:
    model = keras.Sequential([keras.Input(shape, dtype="int32" if len(shape) == 1 else "float32"), *layers,
                              L.GRU(2), L.Dense(2)])  # fmt: skip
    with pytest.raises(ConversionError, match=match):
        Explainer.from_keras(model)
