"""LRP conserves relevance exactly at bias_factor=1, for random networks (hypothesis).

``relevance.sum() + initial_state_relevance == score of the target`` (1e-10 relative, float64),
over random cells, GRU variants, sizes, depths, directions, merge modes, hidden dense layers,
masks, ε and targets. With bias_factor=0 the absorbed share equals what the bias/stabiliser
terms take, so it is in general non-zero: the test checks that the knob is live.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tf_lrp import Explainer
from tf_lrp.layout import validate_manifest

pytestmark = [
    pytest.mark.core,  # backend-agnostic numerics: CI runs them on JAX and PyTorch too
    # random weights with a tiny ε can make relevance large while it still conserves exactly: that is
    # what these tests check, so the blow-up warning (tests/test_faults.py checks it) is not an error here
    pytest.mark.filterwarnings("ignore::tf_lrp.errors.TfLrpWarning"),
]

DIRECTIONS = ("forward", "backward", "bidirectional")


@st.composite
def networks(draw):
    cell = draw(st.sampled_from(["lstm", "gru"]))
    reset_after = draw(st.booleans())
    depth = draw(st.integers(1, 3))
    input_size = draw(st.integers(1, 5))
    layers = []
    width = input_size
    for index in range(depth):
        units = draw(st.integers(1, 6))
        direction = draw(st.sampled_from(DIRECTIONS))
        merge = draw(st.sampled_from(["concat", "sum", "ave"])) if direction == "bidirectional" else "concat"
        layer = {
            "kind": cell,
            "units": units,
            "input_size": width,
            "direction": direction,
            "merge_mode": merge,
            "return_sequences": index < depth - 1,
        }
        if cell == "gru":
            layer["reset_after"] = reset_after
        layers.append(layer)
        width = units * (2 if direction == "bidirectional" and merge == "concat" else 1)
    if draw(st.booleans()):
        hidden = draw(st.integers(1, 5))
        layers.append({"kind": "dense", "units": hidden, "input_size": width, "activation": "relu"})
        width = hidden
    layers.append({"kind": "dense", "units": draw(st.integers(1, 4)), "input_size": width})
    return {"format": "tf_lrp.layout", "version": 1, "layers": layers}


def random_weights(manifest, rng, scale):
    layout = validate_manifest(manifest)
    return [scale * rng.normal(size=spec.shape) for spec in layout.arrays]


@settings(max_examples=20)
@given(
    manifest=networks(),
    seed=st.integers(0, 2**32 - 1),
    batch=st.integers(1, 4),
    steps=st.integers(1, 6),
    eps=st.sampled_from([1e-6, 1e-3, 0.1]),
    scale=st.sampled_from([0.3, 1.0]),
    masked=st.booleans(),
)
@pytest.mark.slow
def test_lrp_conserves_at_bias_factor_one(manifest, seed, batch, steps, eps, scale, masked) -> None:
    rng = np.random.default_rng(seed)
    ex = Explainer.from_manifest(manifest, random_weights(manifest, rng, scale), dtype="float64")
    x = rng.normal(size=(batch, steps, ex.layout.input_size))
    lengths = rng.integers(1, steps + 1, size=batch) if masked else None
    target = rng.integers(0, ex.layout.num_outputs, size=batch)
    res = ex.explain(x, target=target, eps=eps, bias_factor=1.0, lengths=lengths)
    total = res.relevance.sum(axis=(1, 2)) + res.initial_state_relevance
    scale_of_terms = np.abs(res.relevance).sum(axis=(1, 2)) + np.abs(res.explained_score) + 1.0
    np.testing.assert_allclose(total, res.explained_score, rtol=0, atol=1e-10 * scale_of_terms.max())
    if masked:
        padded = np.arange(steps)[None, :] >= lengths[:, None]
        assert np.all(res.relevance[padded] == 0.0)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_bias_factor_zero_absorbs_a_share(cell, rng) -> None:
    gates = 4 if cell == "lstm" else 3
    weights = [rng.normal(size=(3, gates * 4)), rng.normal(size=(4, gates * 4))]
    weights.append(rng.normal(size=(2, gates * 4)) if cell == "gru" else rng.normal(size=(gates * 4,)))
    weights += [rng.normal(size=(4, 2)), rng.normal(size=(2,))]
    ex = Explainer.from_weights(weights, cell=cell, dtype="float64")
    x = rng.normal(size=(5, 6, 3))
    kept = ex.explain(x, bias_factor=1.0)
    dropped = ex.explain(x, bias_factor=0.0)
    np.testing.assert_allclose(kept.absorbed, 0.0, atol=1e-10 * np.abs(kept.explained_score).max())
    assert np.abs(dropped.absorbed).min() > 1e-6
    np.testing.assert_allclose(dropped.initial_state_relevance, 0.0, atol=0)
    # the report says so
    assert "max relative conservation error" in kept.conservation_report()
