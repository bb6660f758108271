"""The softmax node (tf_lrp/nodes/softmax.py): softmax over the time axis, masked like Keras's ``Softmax``.

Forward equals Keras's ``Softmax(axis=1)`` with a (B, T, F) mask (float64, 1e-12); CP-LRP passes
nothing; AttnLRP's softmax rule against a per-connection float64 numpy oracle (1e-10) with exactly
zero at masked steps; the gradient against ``tf.GradientTape`` on the Keras layer.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from tests.nodekit import attention_rules, batch_major, node_context, time_major
from tf_lrp.layout import LayoutError, Port, SoftmaxSpec
from tf_lrp.nodes import NODES
from tf_lrp.rules import RuleSet

L = keras.layers
B, T, F = 3, 5, 2
LENGTHS = np.array([5, 3, 1])


def _attnlrp_oracle(x: np.ndarray, a: np.ndarray, r: np.ndarray) -> np.ndarray:
    """``R_x[t] = x_t R_a[t] − x_t a_t Σ_s R_a[s]``, one connection (s -> t) at a time."""
    out = np.zeros_like(x)
    for b, t, f in np.ndindex(x.shape):
        out[b, t, f] = x[b, t, f] * r[b, t, f]
        for s in range(x.shape[1]):
            out[b, t, f] -= x[b, t, f] * a[b, t, f] * r[b, s, f]
    return out


@pytest.mark.parametrize("masked", [False, True])
def test_softmax_forward_relevance_gradient(masked: bool) -> None:
    import tensorflow as tf

    rng = np.random.default_rng(4)
    x = rng.normal(size=(B, T, F)) * 2
    valid = np.arange(T)[None, :] < LENGTHS[:, None] if masked else np.ones((B, T), dtype=bool)
    mask3 = np.repeat(valid[..., None], F, axis=-1)
    layer = L.Softmax(axis=1, dtype="float64")
    theirs = keras.ops.convert_to_numpy(layer(x, mask=mask3) if masked else layer(x))
    spec, node = SoftmaxSpec(F), NODES["softmax"]
    tm_mask = keras.ops.convert_to_tensor(valid.T[..., None]) if masked else None
    out, cache = node.forward(spec, (), [time_major(x)], tm_mask)
    ours = batch_major(out)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)
    assert np.all(ours[~valid] == 0.0)
    expected = np.where(valid[..., None], np.exp(x), 0.0)
    np.testing.assert_allclose(ours, expected / expected.sum(axis=1, keepdims=True), rtol=0, atol=1e-12)

    relevance = rng.normal(size=(B, T, F)) * valid[..., None]
    messages, leftover = node.relevance(
        spec, (), cache, time_major(relevance), node_context(1e-3, 1.0, attention_rules("cp_lrp"))
    )
    assert messages == (None,)
    assert leftover is None
    messages, _ = node.relevance(
        spec, (), cache, time_major(relevance), node_context(1e-3, 1.0, attention_rules("attnlrp"))
    )
    r_x = batch_major(messages[0])
    np.testing.assert_allclose(r_x, _attnlrp_oracle(x, ours, relevance), rtol=0, atol=1e-10)
    assert np.all(r_x[~valid] == 0.0)

    seed = rng.normal(size=(B, T, F))
    variable = tf.Variable(x)
    with tf.GradientTape() as tape:
        picked = tf.reduce_sum((layer(variable, mask=mask3) if masked else layer(variable)) * seed)
    want = tape.gradient(picked, variable).numpy()
    (grad,) = node.gradient(spec, (), cache, time_major(seed), node_context(1e-3, 1.0, attention_rules(None)))
    np.testing.assert_allclose(batch_major(grad), want, rtol=0, atol=1e-12)
    assert np.all(batch_major(grad)[~valid] == 0.0)


def test_spec_reads_a_sequence_of_its_width() -> None:
    spec = SoftmaxSpec(1, name="w")
    assert spec.infer([Port(True, 1, False, "x")], "w", False) == Port(True, 1, False, "")
    assert SoftmaxSpec.from_entry(spec.to_entry()) == SoftmaxSpec(1)
    with pytest.raises(LayoutError, match="one vector per sample"):
        spec.infer([Port(False, 1, False, "x")], "w", False)
    with pytest.raises(LayoutError, match="input_size"):
        spec.infer([Port(True, 2, False, "x")], "w", False)


@pytest.mark.parametrize("name", ["softmax_pooled", "softmax_weighted"])
def test_attnlrp_gives_masked_steps_exactly_zero(name: str) -> None:
    """The invariants harness runs the default rule (CP-LRP); AttnLRP also passes the softmax: still no padding."""
    from tf_lrp import Explainer

    from .networks import NETWORKS

    case = NETWORKS[name](np.random.default_rng(7))
    weights = [np.asarray(w) for w in case.explainer.weights]
    ex = Explainer.from_manifest(case.explainer.manifest, weights, dtype="float64", rules=RuleSet(attention="attnlrp"))
    result = ex.explain(case.x, lengths=case.lengths, bias_factor=1.0)
    (mask,) = case.masks
    assert np.all(result.relevance[~mask] == 0.0)
    assert np.abs(result.relevance[mask]).max() > 0.0
