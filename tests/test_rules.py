"""Product rules (Arras et al. 2019) and dense-head rules: oracle, conservation, validation.

* one LSTM step per product rule against a slow float64 numpy rewrite of the formulas, with
  per-connection loops (zennit habit: library rule vs obviously correct reference);
* conservation at bias_factor = 1 for every product rule × cell × direction (hypothesis);
* the dense-head rules (Epsilon with a fixed ε, ZPlus) against numpy and for conservation;
* every validation error.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tf_lrp import Explainer, InputError
from tf_lrp.cells import lstm
from tf_lrp.layout import RecurrentSpec
from tf_lrp.methods import lrp
from tf_lrp.network import forward
from tf_lrp.rules import (
    PRESETS,
    Absolute,
    Epsilon,
    Gamma,
    Half,
    Proportional,
    RuleSet,
    SignalTakesAll,
    ZPlus,
    as_linear_rule,
    as_product_rule,
    as_ruleset,
)

# random networks with a tiny ε can make relevance large while it still conserves: these tests check the
# numbers; the blow-up warning itself is tests/test_faults.py's
pytestmark = pytest.mark.filterwarnings("ignore::tf_lrp.errors.TfLrpWarning")


PRODUCTS = ["signal_takes_all", "proportional", "half", "abs"]


# --------------------------------------------------------------------------------------------
# The oracle: one LSTM step, per connection, float64 numpy


def _sign(v: float) -> float:
    return 1.0 if v >= 0 else -1.0


def _split(rule: str, gate: float, signal: float, r: float, eps: float, bf: float) -> tuple[float, float]:
    if rule == "signal_takes_all":
        return 0.0, r
    if rule == "half":
        return r / 2, r / 2
    wg, ws = (gate, signal) if rule == "proportional" else (abs(gate), abs(signal))
    total = wg + ws
    den = total + eps * _sign(total)
    extra = bf * eps * _sign(total) / den * r / 2
    return wg / den * r + extra, ws / den * r + extra


def _eps_node(inputs: np.ndarray, w: np.ndarray, b: np.ndarray, r: np.ndarray, eps: float, bf: float) -> np.ndarray:
    """R_i = Σ_j (a_i w_ij + bf·(b_j + ε sign z_j)/N) / (z_j + ε sign z_j) · R_j, by loops."""
    n, m = w.shape
    z = inputs @ w + b
    out = np.zeros(n)
    for j in range(m):
        den = z[j] + eps * _sign(z[j])
        for i in range(n):
            out[i] += (inputs[i] * w[i, j] + bf * (b[j] + eps * _sign(z[j])) / n) / den * r[j]
    return out


def _oracle_lstm_step(x, h_prev, c_prev, kernel, recurrent, bias, r_h, r_c, rule, eps, bf):
    """(R_x, R_h_prev, R_c_prev) of one sample's LSTM step (gate order i, f, c, o)."""
    units = h_prev.shape[0]
    z = x @ kernel + bias + h_prev @ recurrent
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    block = {name: slice(k * units, (k + 1) * units) for k, name in enumerate(["input", "forget", "cell", "output"])}
    i, f, o = sig(z[block["input"]]), sig(z[block["forget"]]), sig(z[block["output"]])
    g = np.tanh(z[block["cell"]])
    c = f * c_prev + i * g
    rel = {name: np.zeros(units) for name in block}
    r_c_total = r_c.copy()
    for j in range(units):
        rel["output"][j], r_act = _split(rule, o[j], np.tanh(c[j]), r_h[j], eps, bf)
        r_c_total[j] += r_act
    # the sum node c = f c_prev + i g, share of every unit spread over all 2H inputs
    share = bf * sum(eps * _sign(c[j]) / (c[j] + eps * _sign(c[j])) * r_c_total[j] for j in range(units)) / (2 * units)
    r_c_prev = np.zeros(units)
    for j in range(units):
        den = c[j] + eps * _sign(c[j])
        r_fc = f[j] * c_prev[j] / den * r_c_total[j] + share
        r_ig = i[j] * g[j] / den * r_c_total[j] + share
        rel["forget"][j], r_c_prev[j] = _split(rule, f[j], c_prev[j], r_fc, eps, bf)
        rel["input"][j], rel["cell"][j] = _split(rule, i[j], g[j], r_ig, eps, bf)
    both = np.concatenate([x, h_prev])
    weights = np.concatenate([kernel, recurrent], axis=0)
    r_in = np.zeros(both.shape[0])
    for name, cols in block.items():
        if rule == "signal_takes_all" and name != "cell":
            continue
        r_in += _eps_node(both, weights[:, cols], bias[cols], rel[name], eps, bf)
    return r_in[: x.shape[0]], r_in[x.shape[0] :], r_c_prev


@pytest.mark.parametrize("bf", [0.0, 1.0])
@pytest.mark.parametrize("rule", PRODUCTS)
def test_lstm_step_matches_oracle(rule: str, bf: float, rng: np.random.Generator) -> None:
    inputs, units, batch, eps = 3, 4, 2, 0.01
    spec = RecurrentSpec(cell="lstm", units=units, input_size=inputs)
    params = lstm.LSTMParams(
        rng.normal(size=(inputs, 4 * units)), rng.normal(size=(units, 4 * units)), rng.normal(size=4 * units) * 0.3
    )
    x = rng.normal(size=(batch, inputs))
    h_prev, c_prev = rng.normal(size=(batch, units)), rng.normal(size=(batch, units))
    r_h, r_c = rng.normal(size=(batch, units)), rng.normal(size=(batch, units))
    rules = RuleSet(product=rule)
    (h, c), gates = lstm.forward_step(spec, params, (h_prev, c_prev), lstm.project_inputs(params, x))
    stacked = lstm.make_cache(
        (np.asarray(h)[None], np.asarray(c)[None]),
        (h_prev[None], c_prev[None]),
        type(gates)(*(np.asarray(g)[None] for g in gates)),
    )
    cached = lstm.relevance_cache(spec, params, stacked, x[None], rules)
    step_cache = type(cached)(*(np.asarray(field)[0] for field in cached)) if rule == "signal_takes_all" else None
    if step_cache is None:
        base = type(cached.base)(*(np.asarray(f)[0] for f in cached.base))
        step_cache = type(cached)(base, np.asarray(cached.pre)[0])
    (r_h_prev, r_c_prev), (p, share) = lstm.relevance_step(
        spec, params, step_cache, (r_h, r_c), np.float64(eps), np.float64(bf), rules
    )
    r_x = np.asarray(lstm.input_relevance(spec, params, x[None], np.asarray(p)[None], np.asarray(share)[None]))[0]
    for b in range(batch):
        expected = _oracle_lstm_step(
            x[b], h_prev[b], c_prev[b], *params, r_h[b], r_c[b], rule, eps, bf
        )
        np.testing.assert_allclose(r_x[b], expected[0], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(np.asarray(r_h_prev)[b], expected[1], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(np.asarray(r_c_prev)[b], expected[2], rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------------------------
# Conservation at bias_factor = 1


def _weights(rng: np.random.Generator, cell: str, inputs: int, units: int, outputs: int, bidi: bool, reset_after: bool):
    gates = 4 if cell == "lstm" else 3
    arrays = []
    for _ in range(2 if bidi else 1):
        arrays += [rng.normal(size=(inputs, gates * units)) * 0.7, rng.normal(size=(units, gates * units)) * 0.7]
        shape = (2, gates * units) if cell == "gru" and reset_after else (gates * units,)
        arrays.append(rng.normal(size=shape) * 0.3)
    width = units * (2 if bidi else 1)
    return [*arrays, rng.normal(size=(width, outputs)), rng.normal(size=outputs) * 0.3]


@pytest.mark.slow
@given(
    cell=st.sampled_from([("lstm", True), ("gru", True), ("gru", False)]),
    product=st.sampled_from(PRODUCTS),
    bidi=st.booleans(),
    batch=st.integers(1, 3),
    steps=st.integers(1, 5),
    inputs=st.integers(1, 4),
    units=st.integers(1, 5),
    output=st.sampled_from([None, "zplus", 0.1]),
    seed=st.integers(0, 2**16),
)
def test_conservation_every_product_rule(cell, product, bidi, batch, steps, inputs, units, output, seed) -> None:
    rng = np.random.default_rng(seed)
    kind, reset_after = cell
    arrays = _weights(rng, kind, inputs, units, 3, bidi, reset_after)
    ex = Explainer.from_weights(arrays, cell=kind, bidirectional=bidi, reset_after=reset_after, dtype="float64")
    x = rng.normal(size=(batch, steps, inputs))
    # ε = 0.5 keeps LRP-prop's denominators away from 0 (it amplifies round-off near gate = -signal)
    result = lrp(
        ex.layout,
        RuleSet(product=product, output=output),
        ex.weights,
        x,
        None,
        np.full(batch, -1, np.int32),
        np.float64(0.5),
        np.float64(1.0),
    )
    scores, target = np.asarray(result.scores), np.asarray(result.target)
    explained = scores[np.arange(batch), target]
    total = np.asarray(result.relevance).sum(axis=(1, 2)) + np.asarray(result.initial_state)
    if output == "zplus":  # z⁺ passes on R·z⁺/(z⁺ + stabilizer) (all of it when z⁺ > 0 is large)
        head_inputs = np.asarray(forward(ex.layout, ex.weights, x, None).dense[-1].inputs)
        contributions = np.maximum(head_inputs[:, :, None] * ex.weights[-2][None], 0).sum(axis=1)
        positive = contributions[np.arange(batch), target]
        explained = explained * positive / (positive + ZPlus().stabilizer)
    assert np.all(np.abs(explained - total) <= 1e-9 * (1 + np.abs(explained))), (explained, total)


def test_default_rules_are_signal_takes_all_with_epsilon_head() -> None:
    rules = RuleSet()
    assert rules.product == SignalTakesAll()
    assert rules.dense_rule(True) == Epsilon() == rules.dense_rule(False)
    assert as_ruleset(None) is PRESETS["arras2017"]
    assert RuleSet(output="zplus").dense_rule(True) == ZPlus()
    assert RuleSet(output="zplus").dense_rule(False) == Epsilon()


@pytest.mark.parametrize(("name", "cls"), [("proportional", Proportional), ("half", Half), ("abs", Absolute)])
def test_product_presets_and_names(name: str, cls: type) -> None:
    assert PRESETS[name].product == cls()
    assert RuleSet(product=name).product == cls()
    assert as_product_rule(cls()) == cls()


@pytest.mark.slow
def test_explainer_takes_product_rules_and_conserves(rng: np.random.Generator) -> None:
    arrays = _weights(rng, "lstm", 3, 4, 2, False, True)
    x = rng.normal(size=(4, 6, 3))
    default = Explainer.from_weights(arrays, dtype="float64").explain(x, bias_factor=1.0)
    half = Explainer.from_weights(arrays, dtype="float64", rules="half").explain(x, bias_factor=1.0)
    assert np.abs(half.absorbed).max() < 1e-10
    assert np.abs(half.relevance - default.relevance).max() > 1e-3  # the gates now share relevance


# --------------------------------------------------------------------------------------------
# Dense-head rules


def test_epsilon_rule_with_fixed_eps_matches_numpy(rng: np.random.Generator) -> None:
    a, w, b = rng.normal(size=(2, 5)), rng.normal(size=(5, 3)), rng.normal(size=3)
    z, r = a @ w + b, rng.normal(size=(2, 3))
    out = np.asarray(Epsilon(0.25).dense(a, w, b, z, r, np.float64(99.0), np.float64(1.0)))
    for n in range(2):
        np.testing.assert_allclose(out[n], _eps_node(a[n], w, b, r[n], 0.25, 1.0), rtol=1e-12)
    np.testing.assert_allclose(out.sum(axis=1), r.sum(axis=1), rtol=1e-12)


def test_gamma_rule_matches_per_connection_formula(rng: np.random.Generator) -> None:
    """R_i = Σ_j (a_i w'_ij + bf·(b'_j + ε_j)/D) / (z'_j + ε_j) · R_j with w' = w + γw⁺, b' = b + γb⁺."""
    a, w, b = rng.normal(size=(2, 5)), rng.normal(size=(5, 3)), rng.normal(size=3)
    r, gamma, eps, bf = rng.normal(size=(2, 3)), 0.4, 0.05, 0.7
    out = np.asarray(Gamma(gamma).dense(a, w, b, a @ w + b, r, np.float64(eps), np.float64(bf)))
    w_g, b_g = w + gamma * np.maximum(w, 0), b + gamma * np.maximum(b, 0)
    expected = np.zeros_like(a)
    for n, i, j in np.ndindex(2, 5, 3):
        z_j = a[n] @ w_g[:, j] + b_g[j]
        stab = eps if z_j >= 0 else -eps
        expected[n, i] += (a[n, i] * w_g[i, j] + bf * (b_g[j] + stab) / 5) / (z_j + stab) * r[n, j]
    np.testing.assert_allclose(out, expected, rtol=1e-10)
    numbers = (np.float64(eps), np.float64(bf))
    np.testing.assert_allclose(Gamma(0.0).dense(a, w, b, a @ w + b, r, *numbers),
                               Epsilon().dense(a, w, b, a @ w + b, r, *numbers), rtol=1e-12)  # fmt: skip
    assert as_linear_rule("gamma") == Gamma()


def test_zplus_rule_matches_per_connection_formula(rng: np.random.Generator) -> None:
    a, w, b = rng.normal(size=(2, 5)), rng.normal(size=(5, 3)), rng.normal(size=3)
    r = rng.normal(size=(2, 3))
    out = np.asarray(ZPlus().dense(a, w, b, a @ w + b, r, np.float64(0.0), np.float64(0.0)))
    contributions = np.maximum(a[:, :, None] * w[None], 0)  # (B, D, C)
    expected = (contributions / (contributions.sum(axis=1, keepdims=True) + 1e-9) * r[:, None, :]).sum(axis=2)
    np.testing.assert_allclose(out, expected, rtol=1e-10)


# --------------------------------------------------------------------------------------------
# Validation


def test_rule_errors() -> None:
    with pytest.raises(InputError, match="unknown product rule 'nope'"):
        RuleSet(product="nope")
    with pytest.raises(InputError, match="sum_spread must be"):
        RuleSet(sum_spread="some")
    with pytest.raises(InputError, match="finite and >= 0"):
        Epsilon(-1.0)
    with pytest.raises(InputError, match="must be a number >= 0 or None"):
        Epsilon("big")
    with pytest.raises(InputError, match="must be a number > 0"):
        ZPlus(0.0)
    with pytest.raises(InputError, match="unknown dense rule 'alpha_beta'"):
        as_linear_rule("alpha_beta")
    with pytest.raises(InputError, match=r"Gamma\(gamma=...\) must be a number >= 0"):
        Gamma(-0.5)
    with pytest.raises(InputError, match="unknown dense rule"):
        RuleSet(output=True)
    with pytest.raises(InputError, match="unknown rule preset 'x'"):
        as_ruleset("x")
    with pytest.raises(InputError, match="rules must be a RuleSet"):
        as_ruleset(3)
    assert as_linear_rule(0.5) == Epsilon(0.5)


# --------------------------------------------------------------------------------------------
# The stabiliser's sign


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@given(values=st.lists(st.floats(-1e6, 1e6, allow_nan=False, width=32), min_size=1, max_size=40))
def test_signed_eps_is_where_of_the_sign_bit_identically(dtype: str, values: list[float]) -> None:
    from tf_lrp.backend import _scope  # JAX: 64-bit mode for float64, as tf_lrp's own calls have

    with _scope(dtype == "float64"):
        _check_signed_eps(dtype, values)


def _check_signed_eps(dtype: str, values: list[float]) -> None:
    from keras import ops

    from tf_lrp.rules import sign, signed_eps, stabilize

    z_np = np.array([*values, 0.0, -0.0, 1e-30, -1e-30], dtype=dtype)
    z, eps = ops.convert_to_tensor(z_np), ops.convert_to_tensor(np.array(1e-3, dtype=dtype))
    got = ops.convert_to_numpy(signed_eps(z, eps))
    assert got.dtype == np.dtype(dtype)
    # bit-identical to the where-formulation on the same backend (subnormals included, which a
    # CPU backend may flush to zero: then they count as 0, i.e. positive, in both)
    np.testing.assert_array_equal(got, ops.convert_to_numpy(ops.where(z >= 0, eps, -eps)))
    # and to numpy's sign(0) = sign(-0.0) = +1 convention wherever the number is not subnormal
    normal = (z_np == 0) | (np.abs(z_np) >= np.finfo(dtype).tiny)
    np.testing.assert_array_equal(got[normal], np.where(z_np >= 0, 1e-3, -1e-3).astype(dtype)[normal])
    np.testing.assert_array_equal(ops.convert_to_numpy(sign(z))[normal], np.where(z_np >= 0, 1, -1)[normal])
    stabilized = ops.convert_to_numpy(stabilize(z, eps))
    np.testing.assert_array_equal(stabilized, ops.convert_to_numpy(z + ops.where(z >= 0, eps, -eps)))
    assert np.all(stabilized != 0)
