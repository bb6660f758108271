"""One time step of a sequence (tf_lrp/nodes/select_step.py): a per-connection oracle, Keras's
``x[:, t]`` through ``from_keras``, conservation, and the converter's refusals."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tf_lrp import ConversionError, Explainer
from tf_lrp.errors import LayoutError
from tf_lrp.layout import SelectStepSpec, validate_manifest
from tf_lrp.nodes import NODES, NodeContext

L = keras.layers
T, B, F = 5, 3, 4


def _oracle(step: int, x: np.ndarray, relevance: np.ndarray) -> np.ndarray:
    """Per connection: input (t, b, j) gets R_bj when t is the selected step, else nothing."""
    out = np.zeros_like(x)
    chosen = step % x.shape[0]
    for t in range(x.shape[0]):
        for b in range(x.shape[1]):
            for j in range(x.shape[2]):
                out[t, b, j] = relevance[b, j] if t == chosen else 0.0
    return out


@pytest.mark.parametrize("step", [0, 2, -1, -T])
def test_forward_relevance_and_gradient_match_the_oracle(step: int) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(T, B, F))
    node, spec = NODES["select_step"], SelectStepSpec(step, F)
    number = keras.ops.convert_to_tensor
    out, cache = node.forward(spec, (), [number(x)], None)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(out), x[step])
    relevance = rng.normal(size=(B, F))
    ctx = NodeContext(number(1e-3, "float64"), number(1.0, "float64"), None, False)
    (ours,), leftover = node.relevance(spec, (), cache, number(relevance), ctx)
    assert leftover is None
    expected = _oracle(step, x, relevance)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(ours), expected)
    (grad,) = node.gradient(spec, (), cache, number(relevance), ctx)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(grad), expected)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(ours).sum(axis=0), relevance, rtol=0, atol=0)
    assert node.conserves
    assert not node.takes_mask
    assert node.cache_floats(spec, T) == 0


def _model(step_key: object, masked: bool) -> keras.Model:
    f64 = {"dtype": "float64"}
    inputs = keras.Input((T, 2), dtype="float64")
    tensor = L.Masking(0.0, **f64)(inputs) if masked else inputs
    tensor = L.LSTM(3, return_sequences=True, **f64)(tensor)
    model = keras.Model(inputs, L.Dense(2, **f64)(tensor[step_key]))  # type: ignore[index]
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(scale=0.6, size=w.shape) for w in model.get_weights()])
    return model


@pytest.mark.parametrize(
    "key", [(slice(None), -1), (slice(None), -1, slice(None)), (slice(None), 0), (slice(None), 2, Ellipsis)]
)
@pytest.mark.parametrize("masked", [False, True])
def test_keras_getitem_converts_and_reproduces_keras(key: tuple, masked: bool) -> None:
    model = _model(key, masked)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, T, 2))
    if masked:
        x[1, 3:] = 0.0
        x[2, :2] = 0.0
    ex = Explainer.from_keras(model, sample=x, dtype="float64", tolerance=1e-10)
    kinds = [layer.kind for layer in ex.layout.layers]
    assert kinds == ["lstm", "select_step", "dense"]
    assert ex.layout.layers[1].step == key[1]
    ref = np.asarray(model(x))
    np.testing.assert_allclose(ex.score(x), ref, rtol=0, atol=1e-10)
    result = ex.explain(x, method="lrp", eps=1e-9, bias_factor=1.0)
    np.testing.assert_allclose(
        result.relevance.sum(axis=(1, 2)) + result.initial_state_relevance, result.explained_score, atol=1e-9
    )
    if masked:
        assert np.all(result.relevance[1, 3:] == 0.0)
        assert np.all(result.relevance[2, :2] == 0.0)
    if key[1] == 0:  # the first step of a forward LSTM sees only x[:, 0]
        assert np.all(result.relevance[:, 1:] == 0.0)


@pytest.mark.parametrize("key", [(slice(None), slice(1, 3)), (0,), (slice(None), -1, slice(0, 2)), (slice(None), True)])
def test_other_indexing_is_refused(key: tuple) -> None:
    model = _model(key if len(key) > 1 else key[0], False) if key != (0,) else None
    if model is None:
        f64 = {"dtype": "float64"}
        inputs = keras.Input((T, 2), dtype="float64")
        tensor = L.LSTM(3, return_sequences=True, **f64)(inputs)
        model = keras.Model(inputs, L.Dense(2, **f64)(tensor[0]))
    with pytest.raises(ConversionError, match=r"GetItem.*x\[:, t\]"):
        Explainer.from_keras(model)


def test_manifest_round_trip_and_describe() -> None:
    manifest = {
        "format": "tf_lrp.layout",
        "version": 2,
        "inputs": [{"name": "x", "features": 2}],
        "layers": [
            {"kind": "lstm", "units": 3, "input_size": 2, "return_sequences": True, "name": "rnn", "inputs": ["x"]},
            {"kind": "select_step", "step": -2, "features": 3, "name": "pick", "inputs": ["rnn"]},
            {"kind": "dense", "units": 2, "input_size": 3, "name": "out", "inputs": ["pick"]},
        ],
    }
    layout = validate_manifest(manifest)
    assert layout.layers[1] == SelectStepSpec(-2, 3, "pick")
    assert validate_manifest(layout.manifest).manifest_json == layout.manifest_json
    assert "1: SelectStep(step=-2): 3 -> 3" in layout.describe()
    bad = {**manifest, "layers": [dict(manifest["layers"][0], return_sequences=False), *manifest["layers"][1:]]}
    with pytest.raises(LayoutError, match="sequence"):
        validate_manifest(bad)
