"""Explainer.from_keras on trained Keras 3 models: scores, Gradient×Input, conservation, refusals.

The oracle is the Keras model itself: its scores are the pre-activation of its last Dense layer
(tf_lrp.convert.keras.score_model reuses the model's own layers and masking), and
Gradient×Input is checked against tf.GradientTape on that Keras model (for token models:
the gradient w.r.t. the embedding table, with every token id used once per batch so its row
is the gradient at that position).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_lrp.convert.keras as keras_convert
from tf_lrp.convert import Converted, from_keras
from tf_lrp.errors import ConversionError, InputError
from tf_lrp.explainer import Explainer

L = keras.layers
VOCAB = 64
SCORE_RTOL = 1e-5
GRAD_RTOL = 2e-4


def _train(model: keras.Model, x: np.ndarray, seed: int) -> keras.Model:
    """A few eager optimiser steps with a large learning rate, so no weight is at its init value."""
    rng = np.random.default_rng(seed)
    y = rng.standard_normal((len(x), model.outputs[0].shape[-1])).astype("float32")
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse", run_eagerly=True)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False)
    return model


def _tokens(seed: int, batch: int = 4, steps: int = 9) -> np.ndarray:
    """Distinct ids per batch (so the embedding-table gradient is per position), pre- and post-padded."""
    rng = np.random.default_rng(seed)
    ids = rng.permutation(np.arange(1, VOCAB))[: batch * steps].reshape(batch, steps)
    ids[1, 5:] = 0  # post-padding
    ids[2, :4] = 0  # pre-padding
    ids[3, 3] = 0  # a masked step inside
    return ids.astype("int32")


def _features(seed: int, mask_value: float | None, batch: int = 4, steps: int = 8, features: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, steps, features)).astype("float32")
    if mask_value is not None:
        x[1, 5:] = mask_value
        x[2, :3] = mask_value
        x[3, 4] = mask_value
    return x


def token_lstm() -> tuple[keras.Model, np.ndarray]:
    model = keras.Sequential(
        [
            keras.Input((None,), dtype="int32"),
            L.Embedding(VOCAB, 5, mask_zero=True),
            L.LSTM(6),
            L.Dense(3, activation="softmax"),
        ],
        name="token_lstm",
    )
    return model, _tokens(1)


def token_bi_stacked() -> tuple[keras.Model, np.ndarray]:
    inputs = keras.Input((None,), dtype="int32")
    h = L.Embedding(VOCAB, 4, mask_zero=True)(inputs)
    h = L.Bidirectional(L.GRU(5, return_sequences=True), merge_mode="concat")(h)
    h = L.Dropout(0.3)(h)
    h = L.Bidirectional(L.LSTM(4), merge_mode="sum")(h)
    h = L.Dense(6, activation="relu")(h)
    h = L.Dropout(0.2)(h)
    outputs = L.Dense(2, activation="sigmoid")(h)
    return keras.Model(inputs, outputs, name="token_bi_stacked"), _tokens(2)


def masking_bi_gru_reset_before() -> tuple[keras.Model, np.ndarray]:
    model = keras.Sequential(
        [
            keras.Input((None, 3)),
            L.Masking(mask_value=-2.0),
            L.Bidirectional(L.GRU(5, reset_after=False), merge_mode="ave"),
            L.Dense(3),
        ],
        name="masking_bi_gru",
    )
    return model, _features(3, -2.0)


def functional_stacked_backward() -> tuple[keras.Model, np.ndarray]:
    inputs = keras.Input((8, 3))
    h = L.GaussianNoise(0.5)(inputs)
    h = L.LSTM(5, return_sequences=True, recurrent_dropout=0.2, unit_forget_bias=False)(h)
    h = L.SpatialDropout1D(0.2)(h)
    h = L.GRU(4, go_backwards=True)(h)
    h = L.Dense(5, activation="linear")(h)
    outputs = L.Dense(2, activation="tanh")(h)
    return keras.Model(inputs, outputs, name="functional_stacked_backward"), _features(4, None)


def odd_activations_no_bias() -> tuple[keras.Model, np.ndarray]:
    model = keras.Sequential(
        [
            keras.Input((None, 3)),
            L.Bidirectional(
                L.LSTM(4, activation="relu", recurrent_activation="hard_sigmoid", use_bias=False, return_sequences=True)
            ),
            L.GRU(4, activation="linear", recurrent_activation="sigmoid", use_bias=False),
            L.Dense(2, use_bias=False),
        ],
        name="odd_activations",
    )
    return model, _features(5, None)


ARCHITECTURES = [token_lstm, token_bi_stacked, masking_bi_gru_reset_before, functional_stacked_backward]
SLOW_ARCHITECTURES = [odd_activations_no_bias]


@dataclass
class Case:
    model: keras.Model
    explainer: Explainer
    x: np.ndarray

    @property
    def tokens(self) -> bool:
        return self.x.ndim == 2


@pytest.fixture(
    scope="module",
    params=[*ARCHITECTURES, *(pytest.param(a, marks=pytest.mark.slow) for a in SLOW_ARCHITECTURES)],
    ids=lambda a: a.__name__,
)
def case(request: pytest.FixtureRequest) -> Case:
    keras.utils.set_random_seed(7)
    model, x = request.param()
    _train(model, x, seed=11)
    return Case(model, Explainer.from_keras(model), x)


def _relative(ours: np.ndarray, theirs: np.ndarray) -> float:
    return float(np.max(np.abs(ours - theirs)) / max(1.0, float(np.max(np.abs(theirs)))))


def test_scores_match_the_keras_model(case: Case) -> None:
    ours = case.explainer.score(case.x)
    theirs = keras_convert.keras_scores(case.model, case.x)
    assert _relative(ours, theirs) < SCORE_RTOL
    # the explained score is the pre-activation: it differs from the model's output where the
    # last Dense has a non-linear activation
    output = keras.ops.convert_to_numpy(case.model(case.x, training=False))
    activation = case.model.layers[-1].activation
    np.testing.assert_allclose(keras.ops.convert_to_numpy(activation(ours)), output, rtol=1e-5, atol=1e-6)


def _keras_gradient_x_input(case: Case, target: np.ndarray) -> np.ndarray:
    reference = keras_convert.score_model(case.model)
    classes = reference.outputs[0].shape[-1]
    seed = tf.one_hot(target, classes)
    if case.tokens:
        embedding = next(layer for layer in case.model.layers if isinstance(layer, L.Embedding))
        table = embedding.embeddings
        with tf.GradientTape() as tape:
            score = tf.reduce_sum(reference(case.x, training=False) * seed)
        grad = tf.convert_to_tensor(tape.gradient(score, table)).numpy()
        return grad[case.x] * table.numpy()[case.x]
    x = tf.constant(case.x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        score = tf.reduce_sum(reference(x, training=False) * seed)
    return tape.gradient(score, x).numpy() * case.x


def test_gradient_x_input_matches_gradient_tape(case: Case) -> None:
    target = np.arange(len(case.x)) % case.explainer.layout.num_outputs
    ours = case.explainer.explain(case.x, target=target, method="gradient_x_input").relevance
    theirs = _keras_gradient_x_input(case, target)
    assert ours.shape == theirs.shape
    assert _relative(ours, theirs) < GRAD_RTOL


def test_lrp_conserves_and_zeroes_padding(case: Case) -> None:
    explanation = case.explainer.explain(case.x, bias_factor=1.0)
    assert explanation.conservation_error.max() < 1e-4
    mask = explanation.mask
    if mask is not None:
        assert not mask.all()
        assert np.all(explanation.relevance[~mask] == 0.0)
    tokens = explanation.token_relevance
    assert tokens.shape == case.x.shape[:2]
    np.testing.assert_allclose(tokens, explanation.relevance.sum(axis=-1))


def test_relevance_shapes_for_token_and_feature_models(case: Case) -> None:
    explanation = case.explainer.explain(case.x)
    if not case.tokens:
        assert explanation.relevance.shape == case.x.shape
        return
    width = case.explainer.layout.embedding.output_dim
    assert explanation.relevance.shape == (*case.x.shape, width)
    assert explanation.token_relevance.shape == case.x.shape
    assert np.all(explanation.token_relevance[case.x == 0] == 0.0)
    with pytest.raises(InputError, match="integer token ids"):
        case.explainer.explain(case.x.astype("float32"))
    with pytest.raises(InputError, match="outside the vocabulary"):
        case.explainer.explain(case.x + VOCAB)


@pytest.mark.slow
def test_from_a_keras_file_in_three_lines(tmp_path: Any) -> None:
    keras.utils.set_random_seed(5)
    model, ids = token_lstm()
    _train(model, ids, seed=2)
    path = tmp_path / "model.keras"
    model.save(path)

    explainer = Explainer.from_keras(path)
    relevance = explainer.explain(ids).token_relevance

    assert relevance.shape == ids.shape
    direct = Explainer.from_manifest(*from_keras(model))
    assert explainer.fingerprint == direct.fingerprint


def test_the_equivalence_check_catches_a_wrong_gate_order(monkeypatch: pytest.MonkeyPatch) -> None:
    keras.utils.set_random_seed(9)
    model, ids = token_lstm()
    manifest, weights = from_keras(model)
    units = manifest["layers"][1]["units"]

    def swapped(model: keras.Model, **options: Any) -> Converted:
        # exchange the input and forget gate blocks of the LSTM kernel
        kernel = weights[1].copy()
        kernel[:, :units], kernel[:, units : 2 * units] = weights[1][:, units : 2 * units], weights[1][:, :units]
        return Converted(manifest, [weights[0], kernel, *weights[2:]])

    monkeypatch.setattr(keras_convert, "from_keras", swapped)
    with pytest.raises(ConversionError, match=r"differ from the Keras model's pre-activation outputs by up to \d"):
        Explainer.from_keras(model, sample=ids)


def test_converted_manifest_records_the_keras_structure() -> None:
    model, _ = masking_bi_gru_reset_before()
    manifest, weights = from_keras(model)
    assert manifest["mask_value"] == -2.0
    assert manifest["name"] == "masking_bi_gru"
    (gru, dense) = manifest["layers"]
    assert gru["kind"] == "gru"
    assert gru["direction"] == "bidirectional"
    assert gru["merge_mode"] == "ave"
    assert gru["reset_after"] is False
    assert dense["activation"] == "linear"
    assert len(weights) == len(model.get_weights())
    for ours, theirs in zip(weights, model.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)


def test_tolerance_and_sample_are_checked() -> None:
    model, _ = token_lstm()
    with pytest.raises(InputError, match="tolerance must be a number"):
        Explainer.from_keras(model, tolerance=-1.0)
    with pytest.raises(InputError, match="token ids"):
        Explainer.from_keras(model, sample=np.zeros((2, 3, 4)))


# --------------------------------------------------------------------------------------------
# Refusals


def _sequential(*layers: Any, shape: tuple[Any, ...] = (None, 3), **input_options: Any) -> keras.Model:
    return keras.Sequential([keras.Input(shape, **input_options), *layers])


class MyLSTM(L.LSTM):
    def call(self, sequences: Any, initial_state: Any = None, mask: Any = None, training: bool = False) -> Any:
        return super().call(sequences * 2.0, initial_state=initial_state, mask=mask, training=training)


class Subclassed(keras.Model):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = L.LSTM(3)
        self.head = L.Dense(2)

    def call(self, x: Any) -> Any:
        return self.head(self.rnn(x))


def _branching() -> keras.Model:
    inputs = keras.Input((None, 3))
    a = L.LSTM(4, name="left")(inputs)
    b = L.LSTM(4, name="right")(inputs)
    return keras.Model(inputs, L.Dense(2)(L.Maximum(name="max")([a, b])))


def _with_initial_state() -> keras.Model:
    inputs = keras.Input((None, 3))
    state = keras.Input((4,), name="state")
    h = L.Bidirectional(L.GRU(4), name="seeded")(inputs, initial_state=[state, state])
    return keras.Model([inputs, state], L.Dense(2)(h))


def _return_state() -> keras.Model:
    inputs = keras.Input((None, 3))
    output, _state = L.GRU(4, return_state=True, return_sequences=True, name="stateful_out")(inputs)
    return keras.Model(inputs, L.Dense(2)(L.GlobalAveragePooling1D()(output)))


def _states_from_an_input() -> keras.Model:
    """A GRU started from a state given as an input (one vector per sample), whose own state is read too."""
    inputs = keras.Input((None, 3))
    state = keras.Input((4,), name="state")
    output, final = L.GRU(4, return_state=True, name="seeded")(inputs, initial_state=state)
    return keras.Model([inputs, state], L.Dense(2)(L.Concatenate()([output, final])))


def test_initial_and_returned_states_convert_and_conserve() -> None:
    model = _states_from_an_input()
    rng = np.random.default_rng(0)
    x = [rng.normal(size=(3, 5, 3)), rng.normal(size=(3, 4))]
    explainer = Explainer.from_keras(model, sample=x, dtype="float64")  # checked against Keras on x
    result = explainer.explain(x, bias_factor=1.0, eps=1e-9)
    np.testing.assert_allclose(result.relevance_sum + result.initial_state_relevance, result.explained_score, rtol=1e-9)
    assert np.all(result.initial_state_relevance == 0)  # the initial state is an input: its relevance is reported
    assert np.abs(result.relevance[1]).sum() > 0


def _merge_none() -> keras.Model:
    inputs = keras.Input((None, 3))
    forward, _backward = L.Bidirectional(L.LSTM(3), merge_mode=None, name="bi")(inputs)
    return keras.Model(inputs, L.Dense(2)(forward))


def _nested() -> keras.Model:
    inner = keras.Sequential([keras.Input((None, 3)), L.LSTM(4)], name="inner")
    return keras.Sequential([keras.Input((None, 3)), inner, L.Dense(2)])


REFUSALS = {
    "group_norm": (
        lambda: _sequential(L.GroupNormalization(groups=1, name="norm"), L.LSTM(3), L.Dense(2)),
        r"'norm' \(GroupNormalization\).*Bidirectional",
    ),
    "merge_mul": (
        lambda: _sequential(L.Bidirectional(L.LSTM(3), merge_mode="mul", name="bi"), L.Dense(2)),
        "merge_mode='mul'",
    ),
    "merge_none": (_merge_none, "merge_mode=None"),
    "mixed_bidirectional": (
        lambda: _sequential(
            L.Bidirectional(L.LSTM(3), backward_layer=L.GRU(3, go_backwards=True), name="bi"), L.Dense(2)
        ),
        "same layer type both ways",
    ),
    "stateful": (
        lambda: _sequential(L.LSTM(3, stateful=True, name="st"), L.Dense(2), shape=(5, 3), batch_size=2),
        r"'st' \(LSTM\): stateful=True",
    ),
    "return_state": (_return_state, "return_state=True is supported on a forward .* return_sequences=False"),
    "initial_state": (_with_initial_state, r"layer 'seeded' \(Bidirectional\).*initial_state.*forward LSTM"),
    "go_backwards_sequences": (
        lambda: _sequential(L.LSTM(3, go_backwards=True, return_sequences=True, name="gb"), L.LSTM(3), L.Dense(2)),
        "reversed time order",
    ),
    "zero_output": (
        lambda: _sequential(L.GRU(3, zero_output_for_mask=True, name="z"), L.Dense(2)),
        "zero_output_for_mask=True",
    ),
    "cell_activation": (
        lambda: _sequential(L.LSTM(3, activation="softsign", name="soft"), L.Dense(2)),
        r"'soft' \(LSTM\): activation='softsign' is not supported; use one of tanh",
    ),
    "hidden_dense_softmax": (  # tanh & co. convert to Dense(linear) + an activation node (tests/test_activation.py)
        lambda: _sequential(L.LSTM(3), L.Dense(4, activation="softmax", name="mid"), L.Dense(2)),
        r"'mid' \(Dense\): activation 'softmax'",
    ),
    "time_distributed_other": (
        lambda: _sequential(L.LSTM(3, return_sequences=True), L.TimeDistributed(L.Flatten(), name="td"), L.Dense(2)),
        r"'td' \(TimeDistributed\): wraps Flatten",
    ),
    "no_dense": (lambda: _sequential(L.LSTM(3, name="last")), "must end with a Dense layer"),
    "embedding_late": (
        lambda: _sequential(L.Masking(0.0), L.Embedding(10, 3, name="late"), L.LSTM(3), L.Dense(2), shape=(None,)),
        "token ids \\(batch, time\\) that go into an Embedding",
    ),
    "rnn_subclass": (lambda: _sequential(MyLSTM(3, name="mine"), L.Dense(2)), r"'mine' \(MyLSTM\).*not supported"),
    "generic_rnn": (lambda: _sequential(L.RNN(L.LSTMCell(3), name="generic"), L.Dense(2)), r"\(RNN\)"),
    "branching": (_branching, r"'max' \(Maximum\): is not supported"),
    "unbuilt": (lambda: keras.Sequential([L.LSTM(3), L.Dense(2)]), "not built"),
}


def test_a_model_used_as_a_layer_is_walked_in_place() -> None:
    model = _nested()
    manifest, _weights = from_keras(model)
    assert [entry["kind"] for entry in manifest["layers"]] == ["lstm", "dense"]
    x = np.random.default_rng(0).standard_normal((3, 5, 3)).astype("float32")
    explainer = Explainer.from_keras(model, dtype="float64")
    np.testing.assert_allclose(explainer.score(x), keras_convert.keras_scores(model, x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(REFUSALS))
def test_refusals_name_the_layer_and_the_fix(name: str) -> None:
    build, message = REFUSALS[name]
    with pytest.raises(ConversionError, match=message):
        from_keras(build())


def test_subclassed_models_are_refused() -> None:
    model = Subclassed()
    model(np.zeros((1, 4, 3), "float32"))
    with pytest.raises(ConversionError, match="subclassed model"):
        from_keras(model)


def test_plain_go_backwards_is_a_backward_direction() -> None:
    manifest, _ = from_keras(_sequential(L.GRU(3, go_backwards=True), L.Dense(2)))
    assert manifest["layers"][0]["direction"] == "backward"


def test_bad_model_files(tmp_path: Any) -> None:
    with pytest.raises(InputError, match="does not exist"):
        Explainer.from_keras(tmp_path / "missing.keras")
    other = tmp_path / "weights.h5"
    other.write_bytes(b"x")
    with pytest.raises(InputError, match=r"not a \.keras file"):
        Explainer.from_keras(other)
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"not a zip archive")
    with pytest.raises(InputError, match="Keras could not load"):
        Explainer.from_keras(broken)
    with pytest.raises(InputError, match=r"keras\.Model or a path"):
        Explainer.from_keras(42)


def test_two_inputs_joined_by_concatenate_convert_and_match() -> None:
    words = keras.Input((None,), name="words")
    signal = keras.Input((None, 2), name="signal")
    embedded = L.Embedding(12, 3, mask_zero=True, name="emb")(words)
    left = L.LSTM(4, name="left")(embedded)
    right = L.GRU(3, name="right")(L.Masking(0.0, name="masking")(signal))
    model = keras.Model([words, signal], L.Dense(2, name="head")(L.Concatenate(name="join")([left, right])))
    manifest, _ = from_keras(model)
    assert manifest["version"] == 2
    assert [entry["name"] for entry in manifest["inputs"]] == ["words", "signal"]
    assert manifest["inputs"][1]["mask_value"] == 0.0
    probe = keras_convert.probe_batch(manifest, model)
    assert isinstance(probe, list)
    assert len(probe) == 2
    explainer = Explainer.from_keras(model, dtype="float64")
    np.testing.assert_allclose(
        explainer.score(probe), keras_convert.keras_scores(model, probe), rtol=1e-5, atol=1e-6
    )
    explanation = explainer.explain({"words": probe[0], "signal": probe[1]})
    assert [r.shape for r in explanation.relevance] == [(*probe[0].shape, 3), probe[1].shape]  # ids: per embedding
