"""Per-layer rule choice (``RuleSet(layers=...)``): oracle, equivalences, conservation, errors.

* a two-layer LSTM with a different product rule and ε per layer and a fixed-ε output layer
  against a float64 numpy rewrite that loops over samples, steps and connections (it reuses
  the per-connection LSTM step oracle of tests/test_rules.py);
* an override equal to the global rules is bit-identical to no override, and overrides that
  cover every layer are bit-identical to the matching global RuleSet field;
* conservation at bias_factor = 1 for random per-layer overrides (hypothesis; LSTM and GRU,
  both ``reset_after``, directions, merge modes, one or two layers, one or two Dense layers);
* keys by index and by (Keras) layer name, and every validation error.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.test_rules import _eps_node, _oracle_lstm_step
from tf_lrp import Explainer, InputError
from tf_lrp.forecast import Seq2SeqExplainer
from tf_lrp.layout import DenseSpec, EmbeddingSpec, RecurrentSpec, to_manifest, validate_manifest
from tf_lrp.methods import lrp
from tf_lrp.rules import (
    Absolute,
    Epsilon,
    Half,
    Recurrent,
    RuleSet,
    SignalTakesAll,
    ZPlus,
    as_layer_rule,
)
from tf_lrp.seq2seq import Seq2SeqSpec

# random networks with a tiny ε can make relevance large while it still conserves: these tests check the
# numbers; the blow-up warning itself is tests/test_faults.py's
pytestmark = pytest.mark.filterwarnings("ignore::tf_lrp.errors.TfLrpWarning")


PRODUCTS = ["signal_takes_all", "proportional", "half", "abs"]
EPS, BATCH, STEPS, INPUTS, UNITS, CLASSES = 0.05, 2, 4, 3, 3, 2


def _lstm_arrays(rng: np.random.Generator, inputs: int, units: int) -> list[np.ndarray]:
    return [
        rng.normal(size=(inputs, 4 * units)) * 0.7,
        rng.normal(size=(units, 4 * units)) * 0.7,
        rng.normal(size=4 * units) * 0.3,
    ]


@pytest.fixture(scope="module")
def stacked() -> tuple[Explainer, np.ndarray, np.ndarray]:
    """LSTM(return_sequences) -> LSTM -> Dense(relu) -> Dense: layers 0, 1, 2, 3; float64."""
    rng = np.random.default_rng(7)
    arrays = [
        *_lstm_arrays(rng, INPUTS, UNITS),
        *_lstm_arrays(rng, UNITS, UNITS),
        rng.normal(size=(UNITS, 4)),
        rng.normal(size=4) * 0.3,
        rng.normal(size=(4, CLASSES)),
        rng.normal(size=CLASSES) * 0.3,
    ]
    ex = Explainer.from_weights(arrays, dtype="float64", dense_activations=["relu", "linear"])
    x = rng.normal(size=(BATCH, STEPS, INPUTS))
    return ex, x, np.array([0, 1], np.int32)


def _run(ex: Explainer, rules: RuleSet, x: np.ndarray, target: np.ndarray, eps: float = EPS, bf: float = 0.0):
    """(relevance, initial_state, scores) of eager LRP with ``rules`` (no compilation)."""
    result = lrp(ex.layout, rules, ex.weights, x, None, target, np.float64(eps), np.float64(bf))
    return np.asarray(result.relevance), np.asarray(result.initial_state), np.asarray(result.scores)


def _assert_identical(ex, x, target, rules: RuleSet, expected: RuleSet) -> None:
    got, want = _run(ex, rules, x, target), _run(ex, expected, x, target)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


# --------------------------------------------------------------------------------------------
# Oracle: LSTM -> LSTM -> Dense, one product rule and ε per layer, float64 loops


def _sigmoid(v: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-v))


def _lstm_forward(x: np.ndarray, kernel, recurrent, bias) -> tuple[np.ndarray, np.ndarray]:
    """h, c of one sample, each (T + 1, H) with the zero initial state at index 0."""
    units = recurrent.shape[0]
    h, c = np.zeros((len(x) + 1, units)), np.zeros((len(x) + 1, units))
    for t in range(len(x)):
        z = x[t] @ kernel + h[t] @ recurrent + bias
        i, f, g, o = (z[k * units : (k + 1) * units] for k in range(4))
        c[t + 1] = _sigmoid(f) * c[t] + _sigmoid(i) * np.tanh(g)
        h[t + 1] = _sigmoid(o) * np.tanh(c[t + 1])
    return h, c


def _oracle(arrays, x, target, layer_rules, layer_eps, dense_eps, bf):
    """(R_x (B, T, D), R_initial (B,)) for LSTM(seq) -> LSTM -> Dense(linear), per sample."""
    (k0, u0, b0), (k1, u1, b1), (w, b) = arrays[0:3], arrays[3:6], arrays[6:8]
    relevance, initial = np.zeros_like(x), np.zeros(len(x))
    for n in range(len(x)):
        h0, c0 = _lstm_forward(x[n], k0, u0, b0)
        h1, c1 = _lstm_forward(h0[1:], k1, u1, b1)
        scores = h1[-1] @ w + b
        seed = np.zeros_like(scores)
        seed[target[n]] = scores[target[n]]
        r_h, r_c = _eps_node(h1[-1], w, b, seed, dense_eps, bf), np.zeros(UNITS)
        above = np.zeros((STEPS, UNITS))
        for t in reversed(range(STEPS)):  # top layer
            above[t], r_h, r_c = _oracle_lstm_step(
                h0[t + 1], h1[t], c1[t], k1, u1, b1, r_h, r_c, layer_rules[1], layer_eps[1], bf
            )
        initial[n] += r_h.sum() + r_c.sum()
        r_h, r_c = np.zeros(UNITS), np.zeros(UNITS)
        for t in reversed(range(STEPS)):  # bottom layer, relevance from above at every step
            relevance[n, t], r_h, r_c = _oracle_lstm_step(
                x[n, t], h0[t], c0[t], k0, u0, b0, r_h + above[t], r_c, layer_rules[0], layer_eps[0], bf
            )
        initial[n] += r_h.sum() + r_c.sum()
    return relevance, initial


@pytest.fixture(scope="module")
def two_lstm() -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    arrays = [
        *_lstm_arrays(rng, INPUTS, UNITS),
        *_lstm_arrays(rng, UNITS, UNITS),
        rng.normal(size=(UNITS, CLASSES)),
        rng.normal(size=CLASSES) * 0.3,
    ]
    return arrays, rng.normal(size=(BATCH, STEPS, INPUTS)), np.array([1, 0], np.int32)


@pytest.mark.parametrize(
    ("bottom", "top"), [("half", "signal_takes_all"), ("signal_takes_all", "abs"), ("proportional", "half")]
)
@pytest.mark.parametrize("bf", [0.0, 1.0])
def test_per_layer_rules_match_oracle(two_lstm, bottom: str, top: str, bf: float) -> None:
    arrays, x, target = two_lstm
    ex = Explainer.from_weights(arrays, dtype="float64")
    # the call's ε (0.05) on the bottom layer, a fixed ε on the top layer and on the output
    rules = RuleSet(layers={0: Recurrent(product=bottom), 1: Recurrent(product=top, eps=0.3), 2: Epsilon(0.2)})
    result = lrp(ex.layout, rules, ex.weights, x, None, target, np.float64(EPS), np.float64(bf))
    expected, initial = _oracle(arrays, x, target, (bottom, top), (EPS, 0.3), 0.2, bf)
    np.testing.assert_allclose(np.asarray(result.relevance), expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.asarray(result.initial_state), initial, rtol=1e-10, atol=1e-12)
    # the oracle itself tells the layers apart: swapping them changes the result
    swapped, _ = _oracle(arrays, x, target, (top, bottom), (EPS, 0.3), 0.2, bf)
    assert np.abs(swapped - expected).max() > 1e-6


@pytest.mark.slow
def test_compiled_explainer_uses_per_layer_rules(two_lstm) -> None:
    arrays, x, target = two_lstm
    rules = RuleSet(layers={0: "half", 1: Recurrent(eps=0.3), 2: 0.2})
    ex = Explainer.from_weights(arrays, dtype="float64", rules=rules)
    result = ex.explain(x, target, eps=EPS)
    expected, initial = _oracle(arrays, x, target, ("half", "signal_takes_all"), (EPS, 0.3), 0.2, 0.0)
    np.testing.assert_allclose(result.relevance, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(result.initial_state_relevance, initial, rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------------------------
# Equivalences (bit-identical)


@pytest.mark.parametrize(
    "overrides",
    [
        {0: Recurrent()},
        {1: Recurrent(product=SignalTakesAll(), sum_spread="all")},
        {2: Epsilon(), 3: "epsilon"},
        {0: "signal_takes_all", 1: Recurrent(), 2: Epsilon(), 3: Epsilon()},
    ],
)
def test_override_equal_to_global_rules_is_identical(stacked, overrides) -> None:
    ex, x, target = stacked
    _assert_identical(ex, x, target, RuleSet(layers=overrides), RuleSet())


def test_override_equal_to_global_non_default_rules_is_identical(stacked) -> None:
    ex, x, target = stacked
    base = {"product": Half(), "sum_spread": "per_unit", "output": ZPlus()}
    same = {0: Recurrent(product="half", sum_spread="per_unit"), 1: Recurrent(), 3: ZPlus()}
    _assert_identical(ex, x, target, RuleSet(**base, layers=same), RuleSet(**base))


@pytest.mark.parametrize(
    ("overrides", "fields"),
    [
        ({3: ZPlus()}, {"output": ZPlus()}),
        ({2: Epsilon(0.3), 3: 0.3}, {"head": Epsilon(0.3)}),
        ({2: "zplus"}, {"head": ZPlus(), "output": Epsilon()}),
        ({0: "half", 1: Half()}, {"product": Half()}),
        ({0: Recurrent(sum_spread="per_unit"), 1: Recurrent(sum_spread="per_unit")}, {"sum_spread": "per_unit"}),
        (
            {0: Recurrent(product="abs", sum_spread="per_unit"), 1: "abs"},
            {"product": Absolute(), "sum_spread": "per_unit"},
        ),
    ],
)
def test_overrides_on_every_layer_equal_the_global_field(stacked, overrides, fields) -> None:
    ex, x, target = stacked
    _assert_identical(ex, x, target, RuleSet(layers=overrides), RuleSet(**fields))


def test_fixed_eps_everywhere_equals_the_call_eps(stacked) -> None:
    ex, x, target = stacked
    fixed = RuleSet(layers={0: Recurrent(eps=0.25), 1: Recurrent(eps=0.25), 2: 0.25, 3: 0.25})
    got = _run(ex, fixed, x, target, eps=99.0)
    want = _run(ex, RuleSet(), x, target, eps=0.25)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)


def test_one_override_changes_the_result(stacked) -> None:
    ex, x, target = stacked
    default = _run(ex, RuleSet(), x, target)[0]
    for overrides in ({0: "half"}, {1: "half"}, {2: "zplus"}, {3: "zplus"}, {1: Recurrent(eps=1.0)}):
        assert np.abs(_run(ex, RuleSet(layers=overrides), x, target)[0] - default).max() > 1e-6, overrides


def test_embedding_offsets_the_index(rng: np.random.Generator) -> None:
    layout = validate_manifest(
        to_manifest([
            EmbeddingSpec(input_dim=6, output_dim=3),
            RecurrentSpec(cell="gru", units=2, input_size=3),
            DenseSpec(units=2, input_size=2),
        ])
    )  # fmt: skip
    arrays = [rng.normal(size=(6, 3)), *(rng.normal(size=s) for s in [(3, 6), (2, 6), (2, 6), (2, 2), (2,)])]
    ex = Explainer(layout, arrays, dtype="float64")
    tokens, target = rng.integers(0, 6, size=(2, 5)).astype(np.int32), np.array([0, 1], np.int32)
    _assert_identical(ex, tokens, target, RuleSet(layers={1: "half", 2: "zplus"}), RuleSet("half", output="zplus"))


# --------------------------------------------------------------------------------------------
# Conservation at bias_factor = 1


def _random_network(rng, cell, reset_after, direction, merge, layers, dense, inputs, units):
    specs, arrays, size = [], [], inputs
    gates = 4 if cell == "lstm" else 3
    for index in range(layers):
        spec = RecurrentSpec(
            cell=cell, units=units, input_size=size, direction=direction, merge_mode=merge,
            return_sequences=index < layers - 1, reset_after=reset_after,
        )  # fmt: skip
        for _ in spec.directions:
            arrays += [rng.normal(size=(size, gates * units)) * 0.7, rng.normal(size=(units, gates * units)) * 0.7]
            bias_shape = (2, gates * units) if cell == "gru" and reset_after else (gates * units,)
            arrays.append(rng.normal(size=bias_shape) * 0.3)
        specs.append(spec)
        size = spec.output_size
    for index in range(dense):
        width = 3 if index == dense - 1 else 4
        specs.append(DenseSpec(units=width, input_size=size, activation="linear" if index == dense - 1 else "relu"))
        arrays += [rng.normal(size=(size, width)), rng.normal(size=width) * 0.3]
        size = width
    return validate_manifest(to_manifest(specs)), arrays


@given(
    cell=st.sampled_from([("lstm", True), ("gru", True), ("gru", False)]),
    direction=st.sampled_from(["forward", "backward", "bidirectional"]),
    merge=st.sampled_from(["concat", "sum", "ave"]),
    layers=st.integers(1, 2),
    dense=st.integers(1, 2),
    batch=st.integers(1, 3),
    steps=st.integers(1, 4),
    inputs=st.integers(1, 3),
    units=st.integers(1, 3),
    choices=st.lists(
        st.tuples(st.sampled_from(PRODUCTS), st.sampled_from(["all", "per_unit"]), st.sampled_from([None, 0.5, 2.0])),
        min_size=4,
        max_size=4,
    ),
    seed=st.integers(0, 2**16),
)
def test_conservation_with_per_layer_rules(
    cell, direction, merge, layers, dense, batch, steps, inputs, units, choices, seed
) -> None:
    rng = np.random.default_rng(seed)
    layout, arrays = _random_network(rng, cell[0], cell[1], direction, merge, layers, dense, inputs, units)
    overrides = {}
    for index, spec in enumerate(layout.layers):
        product, spread, eps = choices[index]
        if isinstance(spec, RecurrentSpec):
            overrides[index] = Recurrent(product=product, sum_spread=spread, eps=eps)
        elif eps is not None:
            overrides[index] = Epsilon(eps)
    rules = RuleSet(layers=overrides)
    rules.check(layout)
    x = rng.normal(size=(batch, steps, inputs))
    # ε = 0.5 keeps LRP-prop's denominators away from 0 (it amplifies round-off near gate = -signal)
    result = lrp(layout, rules, arrays, x, None, np.full(batch, -1, np.int32), np.float64(0.5), np.float64(1.0))
    scores, target = np.asarray(result.scores), np.asarray(result.target)
    explained = scores[np.arange(batch), target]
    total = np.asarray(result.relevance).sum(axis=(1, 2)) + np.asarray(result.initial_state)
    assert np.all(np.abs(explained - total) <= 1e-9 * (1 + np.abs(explained))), (explained, total, overrides)


# --------------------------------------------------------------------------------------------
# Keys, hashing, names


def test_layers_are_stored_sorted_and_hashable() -> None:
    a = RuleSet(layers={"out": "zplus", 1: "half", 0: Recurrent(eps=1)})
    b = RuleSet(layers=[(0, Recurrent(eps=1.0)), ("out", ZPlus()), (1, Recurrent(product=Half()))])
    assert a == b
    assert hash(a) == hash(b)
    assert a.layers == ((0, Recurrent(eps=1.0)), (1, Recurrent(product=Half())), ("out", ZPlus()))
    assert {a: 1}[b] == 1
    assert RuleSet().layers == ()
    assert as_layer_rule(0.1) == Epsilon(0.1)
    assert as_layer_rule("proportional") == Recurrent(product="proportional")


def test_keys_by_keras_layer_name_equal_keys_by_index() -> None:
    model = keras.Sequential([
        keras.Input((4, 2)),
        keras.layers.LSTM(3, return_sequences=True, name="bottom"),
        keras.layers.GRU(2, name="top"),
        keras.layers.Dense(2, name="out"),
    ])  # fmt: skip
    by_name = RuleSet(layers={"bottom": "half", "top": Recurrent(eps=0.2), "out": ZPlus()})
    ex = Explainer.from_keras(model, dtype="float64", rules=by_name)
    assert [spec.name for spec in ex.layout.layers] == ["bottom", "top", "out"]
    x, target = np.random.default_rng(3).normal(size=(2, 4, 2)), np.array([0, 1], np.int32)
    by_index = RuleSet(layers={0: "half", 1: Recurrent(eps=0.2), 2: ZPlus()})
    _assert_identical(ex, x, target, ex.rules, by_index)
    assert np.abs(_run(ex, by_index, x, target)[0] - _run(ex, RuleSet(), x, target)[0]).max() > 1e-6


# --------------------------------------------------------------------------------------------
# Errors


def _layout(names: tuple[str, str, str] = ("", "", "")):
    return validate_manifest(
        to_manifest([
            EmbeddingSpec(input_dim=5, output_dim=2, name=names[0]),
            RecurrentSpec(cell="lstm", units=2, input_size=2, name=names[1]),
            DenseSpec(units=2, input_size=2, name=names[2]),
        ])
    )  # fmt: skip


@pytest.mark.parametrize(
    ("layers", "names", "match"),
    [
        ({3: "zplus"}, ("", "", ""), r"names layer 3, but the network has 3: embedding at index 0, lstm at index 1"),
        ({"out": "zplus"}, ("", "", ""), r"names layer 'out', which the network does not have; its layers have no"),
        ({"x": "zplus"}, ("emb", "rnn", "out"), r"its layer names are \['emb', 'rnn', 'out'\]"),
        ({"same": "zplus"}, ("", "same", "same"), r"2 layers are named 'same' \(indices \[1, 2\]\); use an index"),
        ({2: "zplus", "out": 0.1}, ("", "", "out"), r"gives layer 2 twice, as 2 and as 'out'; keep one"),
        ({0: Epsilon()}, ("emb", "", ""), r"layer 0 \(embedding 'emb' at index 0\) is an embedding: it has no LRP"),
        ({1: ZPlus()}, ("", "", ""), r"layer 1 \(lstm at index 1\) is recurrent and takes Recurrent\(product=.*ZPlus"),
        ({"out": "half"}, ("", "", "out"), r"layer 'out' \(dense 'out' at index 2\) is Dense and takes a dense rule"),
        ({2: Recurrent(eps=0.1)}, ("", "", ""), r"is Dense and takes a dense rule .*got Recurrent\("),
    ],
)
def test_layer_errors_at_explainer_construction(layers, names, match: str) -> None:
    layout = _layout(names)
    rules = RuleSet(layers=layers)  # a RuleSet alone cannot know the network
    with pytest.raises(InputError, match=match):
        rules.check(layout)
    weights = [np.zeros((5, 2)), np.zeros((2, 8)), np.zeros((2, 8)), np.zeros(8), np.zeros((2, 2)), np.zeros(2)]
    with pytest.raises(InputError, match=match):
        Explainer(layout, weights, rules=rules)


def test_rule_object_errors() -> None:
    with pytest.raises(InputError, match=r"keys are layer indices \(int >= 0.*or layer names \(str\); got 1.5"):
        RuleSet(layers={1.5: "half"})
    for key in (-1, True, ""):
        with pytest.raises(InputError, match="keys are layer indices"):
            RuleSet(layers={key: "half"})
    with pytest.raises(InputError, match=r"names a layer twice: keys \[0, 0\]"):
        RuleSet(layers=[(0, "half"), (0, "abs")])
    with pytest.raises(InputError, match=r"takes a dict \{layer index or name: rule\}; got int"):
        RuleSet(layers=5)
    with pytest.raises(InputError, match=r"unknown layer rule 'alpha_beta'; for a Dense layer .*Recurrent\(product"):
        RuleSet(layers={0: "alpha_beta"})
    with pytest.raises(InputError, match="unknown product rule 'nope'"):
        Recurrent(product="nope")
    with pytest.raises(InputError, match=r"Recurrent\(sum_spread=...\) must be 'all', 'per_unit' or None; got 'x'"):
        Recurrent(sum_spread="x")
    with pytest.raises(InputError, match=r"Recurrent\(eps=...\) must be finite and >= 0; got -1"):
        Recurrent(eps=-1)
    with pytest.raises(InputError, match=r"Recurrent\(eps=...\) must be finite and >= 0; got inf"):
        Recurrent(eps=float("inf"))
    with pytest.raises(InputError, match=r"Recurrent\(eps=...\) must be a number >= 0 or None; got 'big'"):
        Recurrent(eps="big")


def test_forecaster_refuses_per_layer_rules() -> None:
    spec = Seq2SeqSpec(num_layers=1, units=2, input_size=1, outputs=1)
    with pytest.raises(InputError, match=r"per-layer rules \(RuleSet\(layers=...\)\) are for Explainer networks"):
        Seq2SeqExplainer(spec, [], rules=RuleSet(layers={0: "half"}))


# -- the rule map: by kind, first match wins ----------------------------------------------------


def test_rule_map_orders_user_entries_before_defaults() -> None:
    from tf_lrp.rules import ByIndex, ByKind, ByName, ByRuleKind, IsOutput

    rules = RuleSet(layers={1: "half", "out": ZPlus()}, kinds={"gru": Recurrent(eps=0.1)}, output=Epsilon(0.2))
    matchers = [type(matcher) for matcher, _ in rules.rule_map()]
    # the defaults: linear, recurrent, product, attention
    assert matchers == [ByIndex, ByName, ByKind, IsOutput, ByRuleKind, ByRuleKind, ByRuleKind, ByRuleKind]
    assert [m.rule_kind for m, _ in rules.rule_map()[-4:]] == ["linear", "recurrent", "product", "attention"]


def test_kinds_apply_to_every_node_of_the_kind_and_names_beat_kinds() -> None:
    layout = validate_manifest(
        to_manifest([
            RecurrentSpec(cell="gru", units=2, input_size=2, return_sequences=True, name="g0"),
            RecurrentSpec(cell="gru", units=2, input_size=2, name="g1"),
            DenseSpec(units=2, input_size=2, name="out"),
        ])
    )  # fmt: skip
    rules = RuleSet(layers={"g1": Recurrent(product="abs")}, kinds={"gru": Recurrent(product="half", eps=0.5)})
    g0, g1, out = rules.resolve_nodes(layout)
    assert g0.product == Half()
    assert g0.eps == 0.5
    assert g1.product.name == "abs"  # the name entry comes first
    assert g1.eps is None
    assert out.linear == Epsilon()
    zplus_head = RuleSet(kinds={"dense": ZPlus()}, output=Epsilon(0.2)).resolve_nodes(layout)[2]
    assert zplus_head.linear == ZPlus()  # a kind entry is a user entry: before the output default


def test_kind_errors() -> None:
    with pytest.raises(InputError, match=r"keys are node kinds, one of \['embedding', 'lstm'.*got 'lstmm'"):
        RuleSet(kinds={"lstmm": "half"})
    with pytest.raises(InputError, match=r"RuleSet\(kinds=...\): kind 'dense' is Dense and takes a dense rule"):
        RuleSet(kinds={"dense": Recurrent()}).check(_layout())
    with pytest.raises(InputError, match=r"kind 'lstm' is recurrent and takes Recurrent"):
        RuleSet(kinds={"lstm": ZPlus()}).check(_layout())
