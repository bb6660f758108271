"""Pooling over time (tf_lrp/nodes/pooling.py): each rule against a per-connection float64 oracle,
Keras's masking semantics, and the converter's refusals."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tf_lrp import ConversionError, Explainer
from tf_lrp.layout import PoolingSpec
from tf_lrp.nodes import NODES, NodeContext
from tf_lrp.rules import NodeRules, RuleSet

L = keras.layers
T, B, F = 5, 3, 4


def _oracle(kind: str, x: np.ndarray, valid: np.ndarray, relevance: np.ndarray, eps: float, bf: float) -> np.ndarray:
    """Per connection: R_tj of output j's relevance R_j, by loops over every (t, b, j)."""
    out = np.zeros_like(x)
    for b in range(x.shape[1]):
        for j in range(x.shape[2]):
            column = x[:, b, j]
            if kind == "global_max_pooling":
                winners = [t for t in range(T) if column[t] == column.max()]
                for t in winners:
                    out[t, b, j] = relevance[b, j] / len(winners)
                continue
            steps = [t for t in range(T) if valid[t, b]]
            scale = 1.0 if kind == "global_sum_pooling" else 1.0 / len(steps)
            z = sum(column[t] for t in steps) * scale
            stab = eps if z >= 0 else -eps
            for t in steps:
                out[t, b, j] = (column[t] * scale + bf * stab / len(steps)) * relevance[b, j] / (z + stab)
    return out


@pytest.mark.parametrize("kind", ["global_max_pooling", "global_average_pooling", "global_sum_pooling"])
@pytest.mark.parametrize(("eps", "bf"), [(1e-3, 0.0), (0.3, 1.0)])
def test_relevance_matches_the_per_connection_oracle(kind: str, eps: float, bf: float) -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(size=(T, B, F))
    x[1, 0, 0] = x[3, 0, 0] = 5.0  # a tie: split equally
    valid = np.ones((T, B, 1), dtype=bool)
    valid[3:, 2] = False
    node, spec = NODES[kind], PoolingSpec(kind, F)
    mask = keras.ops.convert_to_tensor(valid)
    _, cache = node.forward(spec, (), [keras.ops.convert_to_tensor(x)], mask)
    relevance = rng.normal(size=(B, F))
    rules = NodeRules(*(getattr(RuleSet(), a) for a in ("product", "sum_spread", "head")))
    number = keras.ops.convert_to_tensor
    ctx = NodeContext(number(eps, "float64"), number(bf, "float64"), rules, False)
    (ours,), leftover = node.relevance(spec, (), cache, keras.ops.convert_to_tensor(relevance), ctx)
    assert leftover is None
    expected = _oracle(kind, x, valid[..., 0], relevance, eps, bf)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(ours), expected, rtol=0, atol=1e-12)
    if bf == 1.0 or kind == "global_max_pooling":  # conserving
        np.testing.assert_allclose(keras.ops.convert_to_numpy(ours).sum(axis=0), relevance, rtol=1e-12)


def test_bidirectional_zero_outputs_at_padding_match_keras_and_their_share_is_absorbed() -> None:
    # Keras's Bidirectional returns zeros at masked steps: a zero can win the max over padding
    f64 = {"dtype": "float64"}
    inputs = keras.Input((T, 2), dtype="float64")
    tensor = L.Bidirectional(L.GRU(3, return_sequences=True, **f64), **f64)(L.Masking(0.0, **f64)(inputs))
    model = keras.Model(inputs, L.Dense(2, **f64)(L.GlobalMaxPooling1D(**f64)(tensor)))
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(scale=0.6, size=w.shape) for w in model.get_weights()])
    x = rng.normal(size=(6, T, 2))
    x[:, 3:] = 0.0
    ex = Explainer.from_keras(model, sample=x, dtype="float64", tolerance=1e-10)  # forward = Keras
    assert ex.layout.layers[0].zero_output_for_mask
    result = ex.explain(x, bias_factor=1.0, eps=1e-9)
    assert np.all(result.relevance[:, 3:] == 0.0)
    assert np.all(np.abs(result.absorbed) >= -1e-12)  # reported, never hidden


def test_per_step_bidirectional_outputs_are_zero_at_padding_like_keras() -> None:
    f64 = {"dtype": "float64"}
    inputs = keras.Input((T, 2), dtype="float64")
    tensor = L.Bidirectional(L.LSTM(3, return_sequences=True, **f64), **f64)(L.Masking(0.0, **f64)(inputs))
    model = keras.Model(inputs, L.TimeDistributed(L.Dense(2, **f64), **f64)(tensor))
    x = np.random.default_rng(1).normal(size=(4, T, 2))
    x[:, 2:] = 0.0
    ex = Explainer.from_keras(model, sample=x, dtype="float64", tolerance=1e-10)
    np.testing.assert_allclose(ex.score(x), keras.ops.convert_to_numpy(model(x)), rtol=0, atol=1e-10)


@pytest.mark.parametrize(
    ("layers", "shape", "match"),
    [
        ([L.Embedding(5, 3, mask_zero=True), L.GlobalMaxPooling1D(), L.Dense(2)], (T,), "max over padded steps too"),
        ([L.LSTM(3, return_sequences=True), L.GlobalAveragePooling1D(keepdims=True), L.Dense(2)], (T, 2), "keepdims"),
        ([L.LSTM(3), L.Reshape((3, 1)), L.GlobalMaxPooling1D(), L.Dense(2)], (T, 2), r"'reshape.*\(Reshape\)"),
    ],
)
def test_converter_refusals(layers, shape, match: str) -> None:
    model = keras.Sequential([keras.Input(shape, dtype="int32" if len(shape) == 1 else "float32"), *layers])
    with pytest.raises(ConversionError, match=match):
        Explainer.from_keras(model)
