"""The SimpleRNN cell (``tf_lrp.cells.simple_rnn``), driven by a plain time loop written here.

* forward equals ``keras.layers.SimpleRNN`` with the same weights, per activation and bias;
* the gradient of ``sum(h_T · v)`` equals ``tf.GradientTape`` on that Keras layer;
* the LRP backward equals a slow float64 numpy oracle with loops over every connection
  (the ε-rule on ``[x_t, h_prev] → z`` with the bias share spread over N = D + H);
* conservation at ``bias_factor = 1`` (hypothesis over D, H, T, activation, ε);
* every product rule gives the same relevance (no gates), with P of width ``len(GATES)·H``.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given
from hypothesis import strategies as st

from tests.test_rules import _eps_node  # the per-connection ε-node oracle
from tf_lrp.cells import simple_rnn
from tf_lrp.cells.activations import ACTIVATIONS
from tf_lrp.layout import RecurrentSpec
from tf_lrp.rules import Epsilon, NodeRules, as_product_rule

KERAS_ACTIVATIONS = ["tanh", "relu", "sigmoid", "linear", "hard_sigmoid"]
PRODUCTS = ["signal_takes_all", "proportional", "half", "abs"]


def _rules(product: str = "signal_takes_all") -> NodeRules:
    """The rules a recurrent node's relevance step reads (as ``RuleSet.resolve_nodes`` builds them)."""
    return NodeRules(as_product_rule(product), "all", Epsilon())


# --------------------------------------------------------------------------------------------
# The cell driven by a plain Python time loop (what network.py's scans do)


def _step(fields, t: int):
    return type(fields)(*(np.asarray(f)[t] for f in fields))


def _forward(spec: RecurrentSpec, params, x: np.ndarray):
    """(outputs (T, B, H), cache) of the cell over x (B, T, D)."""
    xs = np.transpose(x, (1, 0, 2))
    projected = np.asarray(simple_rnn.project_inputs(params, xs))
    zeros = np.zeros((x.shape[0], spec.units))
    state = simple_rnn.initial_state(zeros)
    states, previous, steps = [], [], []
    for t in range(xs.shape[0]):
        previous.append(np.asarray(state[0]))
        state, values = simple_rnn.forward_step(spec, params, state, projected[t])
        states.append(np.asarray(state[0]))
        steps.append(values)
    template = simple_rnn.gates_template(zeros)
    stacked = type(template)(*(np.stack([np.asarray(s[k]) for s in steps]) for k in range(len(template))))
    cache = simple_rnn.make_cache((np.stack(states),), (np.stack(previous),), stacked)
    return np.stack(states), cache


def _lrp(spec, params, x, seed, eps, bf, rules=None, above=None):
    """(R_x (B, T, D), leftover (B,), P (T, B, ·)) of the LRP backward; seed (B, H) at h_T."""
    rules = rules or _rules()
    _, cache = _forward(spec, params, x)
    cached = simple_rnn.relevance_cache(spec, params, cache, np.transpose(x, (1, 0, 2)), rules)
    steps = x.shape[1]
    carry = (seed,)
    ps, shares = [None] * steps, [None] * steps
    for t in reversed(range(steps)):
        if above is not None:
            carry = (np.asarray(carry[0]) + above[:, t],)
        carry, (p, share) = simple_rnn.relevance_step(
            spec, params, _step(cached, t), carry, np.float64(eps), np.float64(bf), rules
        )
        ps[t], shares[t] = np.asarray(p), np.asarray(share)
    relevance = simple_rnn.input_relevance(spec, params, np.transpose(x, (1, 0, 2)), np.stack(ps), np.stack(shares))
    return np.transpose(np.asarray(relevance), (1, 0, 2)), np.asarray(carry[0]).sum(-1), np.stack(ps)


def _gradient(spec, params, x, v):
    """d sum(h_T · v) / dx, (B, T, D)."""
    _, cache = _forward(spec, params, x)
    grads = (v,)
    dzs = [None] * x.shape[1]
    for t in reversed(range(x.shape[1])):
        grads, dz = simple_rnn.gradient_step(spec, params, _step(cache, t), grads)
        dzs[t] = np.asarray(dz)
    return np.transpose(np.asarray(simple_rnn.input_gradient(spec, params, np.stack(dzs))), (1, 0, 2))


def _setup(rng, inputs, units, activation="tanh", use_bias=True, scale=0.7):
    spec = RecurrentSpec(cell="simple_rnn", units=units, input_size=inputs, activation=activation, use_bias=use_bias)
    arrays = [rng.normal(size=(inputs, units)) * scale, rng.normal(size=(units, units)) * scale]
    if use_bias:
        arrays.append(rng.normal(size=units) * 0.3)
    return spec, arrays, simple_rnn.params_from_arrays(spec, arrays)


def _keras_layer(arrays, units, activation, use_bias, inputs):
    layer = keras.layers.SimpleRNN(
        units, activation=activation, use_bias=use_bias, return_sequences=True, dtype="float64"
    )
    layer.build((None, None, inputs))
    layer.set_weights(arrays)
    return layer


# --------------------------------------------------------------------------------------------
# Forward and gradient against Keras itself


@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("activation", KERAS_ACTIVATIONS)
def test_forward_equals_keras_simple_rnn(activation: str, use_bias: bool, rng) -> None:
    inputs, units = 3, 4
    spec, arrays, params = _setup(rng, inputs, units, activation, use_bias, scale=1.5)
    layer = _keras_layer(arrays, units, activation, use_bias, inputs)
    for batch, steps in ((2, 6), (1, 1)):
        x = rng.normal(size=(batch, steps, inputs))
        outputs, cache = _forward(spec, params, x)
        expected = layer(x).numpy()
        np.testing.assert_allclose(np.transpose(outputs, (1, 0, 2)), expected, rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(cache.h_prev[1:], outputs[:-1])
        np.testing.assert_array_equal(cache.h_prev[0], 0.0)
        np.testing.assert_array_equal(cache.h, outputs)


@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("activation", KERAS_ACTIVATIONS)
def test_gradient_equals_gradient_tape(activation: str, use_bias: bool, rng) -> None:
    inputs, units, batch, steps = 3, 4, 3, 5
    spec, arrays, params = _setup(rng, inputs, units, activation, use_bias, scale=1.5)
    layer = _keras_layer(arrays, units, activation, use_bias, inputs)
    x = rng.normal(size=(batch, steps, inputs))
    v = rng.normal(size=(batch, units))
    tensor = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(tensor)
        objective = tf.reduce_sum(layer(tensor)[:, -1] * v)
    expected = tape.gradient(objective, tensor).numpy()
    got = _gradient(spec, params, x, v)
    assert np.abs(expected).max() > 1e-3  # a gradient that is not trivially zero
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------------------------
# LRP against a per-connection float64 oracle


def _np_activation(name: str, z: np.ndarray) -> np.ndarray:
    return {
        "tanh": np.tanh,
        "relu": lambda a: np.maximum(a, 0.0),
        "sigmoid": lambda a: 1 / (1 + np.exp(-a)),
        "linear": lambda a: a,
        "hard_sigmoid": lambda a: np.clip(a / 6 + 0.5, 0.0, 1.0),
    }[name](z)


def _oracle(activation, kernel, recurrent, bias, x, seed, above, eps, bf):
    """(R_x (T, D), leftover) of one sample: numpy forward, then per step the ε-node by loops."""
    steps, inputs = x.shape
    h = [np.zeros(recurrent.shape[0])]
    for t in range(steps):
        h.append(_np_activation(activation, x[t] @ kernel + bias + h[t] @ recurrent))
    weights = np.vstack([kernel, recurrent])  # the linear map of [x_t, h_prev]
    r_x = np.zeros((steps, inputs))
    r_h = seed.copy()
    for t in reversed(range(steps)):
        r_h = r_h + above[t]
        r_in = _eps_node(np.concatenate([x[t], h[t]]), weights, bias, r_h, eps, bf)
        r_x[t], r_h = r_in[:inputs], r_in[inputs:]
    return r_x, r_h.sum()


@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("eps", [1e-3, 0.01, 0.5])
@pytest.mark.parametrize("bf", [0.0, 1.0])
@pytest.mark.parametrize("activation", ["tanh", "relu", "linear"])
def test_lrp_matches_oracle(activation: str, bf: float, eps: float, use_bias: bool, rng) -> None:
    inputs, units, batch, steps = 3, 4, 2, 4
    spec, arrays, params = _setup(rng, inputs, units, activation, use_bias)
    x = rng.normal(size=(batch, steps, inputs))
    seed = rng.normal(size=(batch, units))
    above = rng.normal(size=(batch, steps, units)) * 0.5
    r_x, leftover, _ = _lrp(spec, params, x, seed, eps, bf, above=above)
    kernel, recurrent = arrays[0], arrays[1]
    bias = arrays[2] if use_bias else np.zeros(units)
    for b in range(batch):
        expected_x, expected_left = _oracle(activation, kernel, recurrent, bias, x[b], seed[b], above[b], eps, bf)
        np.testing.assert_allclose(r_x[b], expected_x, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(leftover[b], expected_left, rtol=1e-10, atol=1e-12)


def test_oracle_comparison_sees_the_bias_share(rng) -> None:
    """The oracle test can fail: bias_factor 0 vs 1 (the share over N) differ far above 1e-10."""
    spec, _, params = _setup(rng, 3, 4)
    x, seed = rng.normal(size=(2, 4, 3)), rng.normal(size=(2, 4))
    r0, left0, _ = _lrp(spec, params, x, seed, 0.01, 0.0)
    r1, left1, _ = _lrp(spec, params, x, seed, 0.01, 1.0)
    assert np.abs(r1 - r0).max() > 1e-3
    assert np.abs(left1 - left0).max() > 1e-3


def test_zero_initial_state_keeps_only_the_share(rng) -> None:
    """One step from h_prev = 0: R_h_prev is the bias share alone (H copies), none without it."""
    spec, _, params = _setup(rng, 3, 4)
    x, seed = rng.normal(size=(2, 1, 3)), rng.normal(size=(2, 4))
    _, leftover_bf0, _ = _lrp(spec, params, x, seed, 0.01, 0.0)
    np.testing.assert_array_equal(leftover_bf0, 0.0)
    r_x, leftover, _ = _lrp(spec, params, x, seed, 0.01, 1.0)
    np.testing.assert_allclose(r_x.sum((1, 2)) + leftover, seed.sum(-1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("product", PRODUCTS)
def test_every_product_rule_is_the_same_and_p_fits_both_templates(product: str, rng) -> None:
    """No gates: the product rule changes nothing; P is (T, B, len(GATES)·H) = (T, B, H)."""
    spec, _, params = _setup(rng, 3, 4)
    x, seed = rng.normal(size=(2, 5, 3)), rng.normal(size=(2, 4))
    reference = _lrp(spec, params, x, seed, 0.01, 1.0)
    got = _lrp(spec, params, x, seed, 0.01, 1.0, rules=_rules(product))
    assert got[2].shape == (5, 2, len(simple_rnn.GATES) * spec.units) == (5, 2, spec.units)
    for a, b in zip(got, reference, strict=True):
        np.testing.assert_array_equal(a, b)


def test_batched_equals_per_sample(rng) -> None:
    spec, _, params = _setup(rng, 3, 4, "relu")
    x, seed, v = rng.normal(size=(4, 6, 3)), rng.normal(size=(4, 4)), rng.normal(size=(4, 4))
    r_x, leftover, _ = _lrp(spec, params, x, seed, 0.01, 1.0)
    grad = _gradient(spec, params, x, v)
    for b in range(4):
        one = _lrp(spec, params, x[b : b + 1], seed[b : b + 1], 0.01, 1.0)
        np.testing.assert_allclose(one[0][0], r_x[b], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(one[1][0], leftover[b], rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(_gradient(spec, params, x[b : b + 1], v[b : b + 1])[0], grad[b], rtol=1e-12)


# --------------------------------------------------------------------------------------------
# Conservation and use_bias=False


@given(
    inputs=st.integers(1, 4),
    units=st.integers(1, 4),
    steps=st.integers(1, 5),
    activation=st.sampled_from(sorted(ACTIVATIONS)),
    eps=st.sampled_from([1e-3, 0.01, 0.1]),
    use_bias=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_conserves_at_bias_factor_one(inputs, units, steps, activation, eps, use_bias, seed) -> None:
    rng = np.random.default_rng(seed)
    spec, _, params = _setup(rng, inputs, units, activation, use_bias)
    x = rng.normal(size=(2, steps, inputs))
    outputs, _ = _forward(spec, params, x)
    relevance_in = outputs[-1] * rng.normal(size=(2, units))
    r_x, leftover, _ = _lrp(spec, params, x, relevance_in, eps, 1.0)
    scale = 1.0 + np.abs(relevance_in).sum(-1) + np.abs(r_x).sum((1, 2))
    np.testing.assert_allclose(r_x.sum((1, 2)) + leftover, relevance_in.sum(-1), rtol=0, atol=1e-11 * scale.max())


def test_use_bias_false_params_and_conservation_without_share(rng) -> None:
    """No bias: zeros in params; at ε → tiny and bf = 0 relevance is still (nearly) conserved."""
    spec, arrays, params = _setup(rng, 3, 4, use_bias=False)
    assert len(arrays) == 2
    np.testing.assert_array_equal(np.asarray(params.bias), np.zeros(4))
    assert np.asarray(params.bias).dtype == np.float64
    x, seed = rng.normal(size=(2, 5, 3)), rng.normal(size=(2, 4))
    r_x, leftover, _ = _lrp(spec, params, x, seed, 1e-12, 0.0)
    # the only leak is ε itself: with no bias, z_j = Σ_i a_i w_ij exactly
    np.testing.assert_allclose(r_x.sum((1, 2)) + leftover, seed.sum(-1), rtol=1e-6)
    np.testing.assert_array_equal(leftover, 0.0)  # h_0 = 0 and no share: nothing reaches it
