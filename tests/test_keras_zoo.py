"""A zoo of realistic Keras models, each checked end to end by the same harness.

Every model is built, trained a few steps, saved and reloaded (``.keras``, safe_mode), and then:
``Explainer.from_keras`` reproduces its scores (float32, 1e-5), Gradient×Input equals
``tf.GradientTape`` on the Keras model itself, LRP at ``bias_factor=1`` conserves (float64,
1e-9 relative) where every rule on the way conserves, masked steps get exactly zero relevance,
and a batch explains like its samples one by one (1e-12). A new model is one entry in ``ZOO``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_lrp.convert.keras as keras_convert
from tf_lrp import Explainer

L = keras.layers
VOCAB = 80


def _ids(seed: int, batch: int = 4, steps: int = 9) -> np.ndarray:
    """Distinct ids across the batch (the embedding-table gradient is then per position), padded three ways."""
    rng = np.random.default_rng(seed)
    ids = rng.permutation(np.arange(1, VOCAB))[: batch * steps].reshape(batch, steps)
    ids[1, 6:] = 0
    ids[2, :3] = 0
    ids[3, 4] = 0
    return ids.astype("int32")


def _features(seed: int, features: int = 3, mask_value: float | None = None, steps: int = 8) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((4, steps, features)).astype("float32")
    if mask_value is not None:
        x[1, 5:] = mask_value
        x[2, :2] = mask_value
    return x


@dataclass
class Entry:
    """One zoo model: how to build it and its batch, and what holds for it."""

    build: Callable[[], tuple[keras.Model, Any]]
    conserves: bool = True  # every rule on the way conserves at bias_factor = 1
    step: int | None = None  # the output step explained, for per-step outputs


def text_bilstm_max_pool() -> tuple[keras.Model, Any]:
    inputs = keras.Input((None,), dtype="int32", name="ids")
    h = L.Embedding(VOCAB, 6, mask_zero=True, name="embed")(inputs)
    h = L.Bidirectional(L.LSTM(5, return_sequences=True), name="bilstm")(h)
    h = L.GlobalMaxPooling1D(name="max")(h)
    h = L.Dropout(0.3)(h)
    return keras.Model(inputs, L.Dense(3, activation="softmax", name="head")(h), name="text_bilstm_max"), _ids(1)


def text_gru_average_pool() -> tuple[keras.Model, Any]:
    model = keras.Sequential(
        [
            keras.Input((None,), dtype="int32"),
            L.Embedding(VOCAB, 5, mask_zero=True),
            L.GRU(6, return_sequences=True),
            L.GlobalAveragePooling1D(),
            L.Dense(4, activation="relu"),
            L.Dense(2),
            L.Activation("softmax"),
        ],
        name="text_gru_average",
    )
    return model, _ids(2)


def tagger_time_distributed() -> tuple[keras.Model, Any]:
    inputs = keras.Input((None,), dtype="int32")
    h = L.Embedding(VOCAB, 5, mask_zero=True)(inputs)
    h = L.Bidirectional(L.LSTM(4, return_sequences=True), merge_mode="sum")(h)
    outputs = L.TimeDistributed(L.Dense(5, activation="softmax"), name="tags")(h)
    return keras.Model(inputs, outputs, name="tagger"), _ids(3)


def per_step_regression() -> tuple[keras.Model, Any]:
    model = keras.Sequential(
        [
            keras.Input((None, 3)),
            L.Masking(0.0),
            L.GRU(5, return_sequences=True, reset_after=False),
            L.Dense(2),
        ],
        name="per_step_regression",
    )
    return model, _features(4, mask_value=0.0)


def two_inputs_concatenated() -> tuple[keras.Model, Any]:
    words = keras.Input((None,), dtype="int32", name="words")
    signal = keras.Input((None, 2), name="signal")
    left = L.LSTM(4, name="left")(L.Embedding(VOCAB, 3, mask_zero=True, name="embed")(words))
    right = L.SimpleRNN(3, name="right")(L.Masking(-1.0)(signal))
    joined = L.Concatenate(name="join")([left, right])
    outputs = L.Dense(2, name="head")(L.Dense(4, activation="relu", name="hidden")(joined))
    return keras.Model([words, signal], outputs, name="two_inputs"), [_ids(5), _features(6, 2, -1.0, steps=9)]


def sub_model_as_a_layer() -> tuple[keras.Model, Any]:
    encoder = keras.Sequential(
        [keras.Input((None, 3)), L.Bidirectional(L.GRU(4, return_sequences=True)), L.LSTM(3)], name="encoder"
    )
    inputs = keras.Input((None, 3))
    return keras.Model(inputs, L.Dense(2)(encoder(inputs)), name="nested"), _features(7)


def stacked_simple_rnn_lstm() -> tuple[keras.Model, Any]:
    model = keras.Sequential(
        [
            keras.Input((None, 4)),
            L.Masking(9.0),
            L.Bidirectional(L.SimpleRNN(4, activation="relu", return_sequences=True), merge_mode="ave"),
            L.LSTM(3, recurrent_activation="hard_sigmoid"),
            L.Dense(2, activation="sigmoid"),
        ],
        name="simple_rnn_lstm",
    )
    return model, _features(8, 4, 9.0)


def two_sequences_per_step() -> tuple[keras.Model, Any]:
    a = keras.Input((None, 2), name="a")
    b = keras.Input((None, 3), name="b")
    h = L.Concatenate()([L.LSTM(3, return_sequences=True)(a), L.GRU(3, return_sequences=True)(b)])
    return keras.Model([a, b], L.Dense(2)(h), name="two_sequences_per_step"), [_features(9, 2), _features(10, 3)]


def sequence_with_static_features() -> tuple[keras.Model, Any]:
    series = keras.Input((None, 3), name="series")
    static = keras.Input((2,), name="static")
    state = L.Bidirectional(L.GRU(4), name="encoder")(L.Masking(0.0)(series))
    joined = L.Concatenate(name="join")([state, L.Dense(3, activation="relu", name="embed_static")(static)])
    outputs = L.Dense(2, name="head")(joined)
    rng = np.random.default_rng(11)
    return keras.Model([series, static], outputs, name="series_static"), [
        _features(11, 3, 0.0),
        rng.standard_normal((4, 2)).astype("float32"),
    ]


def keras_encoder_decoder(cell: Any) -> Callable[[], tuple[keras.Model, Any]]:
    """Functional seq2seq: encoder (return_state=True) -> its final states start the decoder (initial_state=)."""

    def build() -> tuple[keras.Model, Any]:
        source = keras.Input((None, 3), name="source")
        target = keras.Input((None, 2), name="target")
        encoded = cell(5, return_state=True, name="encoder")(L.Masking(0.0)(source))
        decoded = cell(5, return_sequences=True, name="decoder")(target, initial_state=list(encoded[1:]))
        outputs = L.TimeDistributed(L.Dense(2), name="per_step")(decoded)
        return keras.Model([source, target], outputs, name=f"{cell.__name__.lower()}_seq2seq"), [
            _features(12, 3, 0.0),
            _features(13, 2, steps=5),
        ]

    build.__name__ = f"keras_encoder_decoder_{cell.__name__.lower()}"
    return build
def cnn_lstm_time_series() -> tuple[keras.Model, Any]:
    model = keras.Sequential(
        [
            keras.Input((None, 3)),
            L.Conv1D(6, 3, padding="causal", activation="relu", name="causal_conv"),
            L.MaxPooling1D(2, name="pool"),
            L.LSTM(5),
            L.Dense(1),
        ],
        name="cnn_lstm",
    )
    return model, _features(11)


def text_cnn_bigru() -> tuple[keras.Model, Any]:
    inputs = keras.Input((None,), dtype="int32", name="ids")
    h = L.Embedding(VOCAB, 6, name="embed")(inputs)  # no mask: Conv1D would drop it (and read padding as data)
    h = L.Conv1D(8, 3, padding="same", activation="relu", name="conv")(h)
    h = L.Conv1D(8, 2, strides=2, groups=2, name="grouped")(h)
    h = L.AveragePooling1D(2, strides=1, padding="same", name="smooth")(h)
    h = L.Bidirectional(L.GRU(4), name="bigru")(h)
    outputs = L.Dense(3, activation="softmax", name="head")(L.Dropout(0.2)(h))
    ids = np.random.default_rng(12).permutation(np.arange(1, VOCAB))[:36].reshape(4, 9).astype("int32")
    return keras.Model(inputs, outputs, name="text_cnn_bigru"), ids  # every id once: table gradient per position


def lstm_encoder_decoder() -> tuple[keras.Model, Any]:
    model = keras.Sequential(
        [
            keras.Input((None, 3)),
            L.LSTM(6, name="encoder"),
            L.RepeatVector(4, name="repeat"),
            L.LSTM(5, return_sequences=True, name="decoder"),
            L.TimeDistributed(L.Dense(2), name="per_step"),
        ],
        name="lstm_encoder_decoder",
    )
    return model, _features(13)


def text_bilstm_layer_norm() -> tuple[keras.Model, Any]:
    inputs = keras.Input((None,), dtype="int32", name="ids")
    h = L.Embedding(VOCAB, 6, mask_zero=True)(inputs)
    h = L.Bidirectional(L.LSTM(4, return_sequences=True))(h)
    h = L.LayerNormalization()(h)
    h = L.LSTM(5)(h)
    h = L.Dense(4, activation="tanh")(h)  # a hidden Dense(tanh): Dense(linear) + an activation node
    return keras.Model(inputs, L.Dense(3, activation="softmax")(h), name="text_bilstm_layer_norm"), _ids(11)


def residual_recurrent_add() -> tuple[keras.Model, Any]:
    inputs = keras.Input((None, 3))
    masked = L.Masking(0.0)(inputs)
    left = L.GRU(5, return_sequences=True)(masked)
    right = L.Bidirectional(L.LSTM(3, return_sequences=True), merge_mode="concat")(masked)
    right = L.Dense(5)(right)
    h = L.BatchNormalization()(L.Add()([left, right]))
    h = L.GlobalAveragePooling1D()(h)
    h = L.Dense(4, activation="swish")(h)
    return keras.Model(inputs, L.Dense(2)(h), name="residual_add"), _features(12, mask_value=0.0)


def multiply_gated() -> tuple[keras.Model, Any]:
    inputs = keras.Input((None, 4))
    states = L.LSTM(5, return_sequences=True)(inputs)
    gate = L.Dense(5, activation="sigmoid")(L.GRU(5, return_sequences=True)(inputs))
    h = L.Multiply()([states, gate])
    h = L.Subtract()([h, L.Average()([states, gate])])
    h = L.GlobalMaxPooling1D()(h)
    return keras.Model(inputs, L.Dense(2)(L.Activation("relu")(h)), name="multiply_gated"), _features(13, 4)


def text_bilstm_attention() -> tuple[keras.Model, Any]:
    inputs = keras.Input((None,), dtype="int32", name="ids")
    h = L.Embedding(VOCAB, 6, mask_zero=True, name="embed")(inputs)
    h = L.Bidirectional(L.LSTM(5, return_sequences=True), name="bilstm")(h)
    h = L.Attention(use_scale=True, score_mode="concat", name="attend")([h, h])
    h = L.GlobalAveragePooling1D(name="pool")(h)
    return keras.Model(inputs, L.Dense(3, activation="softmax", name="head")(h), name="text_bilstm_attention"), _ids(11)


def text_bilstm_attention_pooling() -> tuple[keras.Model, Any]:
    """Hand-built attention pooling: Dense(1, tanh) scores -> Softmax over time -> Dot(axes=1) weighted sum.

    No mask_zero: Keras 3's Softmax cannot apply the propagated (B, T) mask to (B, T, 1) scores; so
    no padding either (id 0 would be a token like any other, and occur more than once).
    """
    inputs = keras.Input((None,), dtype="int32", name="ids")
    h = L.Embedding(VOCAB, 6, name="embed")(inputs)
    h = L.Bidirectional(L.LSTM(5, return_sequences=True), name="bilstm")(h)
    weights = L.Softmax(axis=1, name="attention_weights")(L.Dense(1, activation="tanh", name="scores")(h))
    h = L.Flatten(name="context")(L.Dot(axes=1, name="weighted_sum")([weights, h]))
    model = keras.Model(inputs, L.Dense(3, activation="softmax", name="head")(h), name="text_bilstm_attention_pooling")
    ids = np.random.default_rng(14).permutation(np.arange(1, VOCAB))[: 4 * 9].reshape(4, 9)
    return model, ids.astype("int32")


def gru_attention_weighted_sum() -> tuple[keras.Model, Any]:
    """Hand-built attention pooling by Multiply (weights broadcast) and keras.ops.sum over time (no Lambda)."""
    inputs = keras.Input((None, 3))
    h = L.GRU(6, return_sequences=True)(inputs)
    weights = L.Softmax(axis=1)(L.Dense(1, activation="tanh")(h))
    pooled = keras.ops.sum(L.Multiply(name="weigh")([h, weights]), axis=1)
    return keras.Model(inputs, L.Dense(2)(pooled), name="gru_attention_weighted_sum"), _features(15)


def lstm_multi_head_block() -> tuple[keras.Model, Any]:
    inputs = keras.Input((None, 3))
    h = L.LSTM(6, return_sequences=True)(L.Masking(0.0)(inputs))
    h = L.MultiHeadAttention(num_heads=2, key_dim=4, name="mha")(h, h)  # no residual: tf_lrp has no add node yet
    h = L.Dense(4, activation="relu")(L.GlobalAveragePooling1D()(h))
    return keras.Model(inputs, L.Dense(2)(h), name="lstm_multi_head_block"), _features(12, mask_value=0.0)


def conv_batch_norm_lstm() -> tuple[keras.Model, Any]:
    """Conv1D -> BatchNormalization -> ReLU -> LSTM -> Dense -> BatchNormalization -> LeakyReLU head: both BNs fold."""
    inputs = keras.Input((None, 3))
    h = L.Conv1D(6, 3, padding="causal", name="conv")(inputs)
    h = L.ReLU()(L.BatchNormalization(name="conv_bn")(h))
    h = L.LSTM(5, name="lstm")(h)
    h = L.LeakyReLU(negative_slope=0.1)(L.BatchNormalization(name="dense_bn")(L.Dense(4, name="hidden")(h)))
    return keras.Model(inputs, L.Dense(2, name="head")(h), name="conv_bn_lstm"), _features(14)


def gated_three_way_prelu() -> tuple[keras.Model, Any]:
    """Masked GRU states gated by a sigmoid and by a PReLU branch: one Multiply of three tensors."""
    inputs = keras.Input((None, 3))
    states = L.GRU(5, return_sequences=True)(L.Masking(0.0)(inputs))
    gate = L.Dense(5, activation="sigmoid")(states)
    branch = L.PReLU(shared_axes=[1])(L.Dense(5)(states))
    h = L.GlobalAveragePooling1D()(L.Multiply(name="three_way")([states, gate, branch]))
    return keras.Model(inputs, L.Dense(2)(h), name="gated_three_way_prelu"), _features(15, mask_value=0.0)


ZOO: dict[str, Entry] = {
    # max pooling after a masked bidirectional layer: a masked step's output is 0 and what reaches it is absorbed
    "text_bilstm_max": Entry(text_bilstm_max_pool, conserves=False),
    "text_gru_average": Entry(text_gru_average_pool),
    "tagger": Entry(tagger_time_distributed, step=-1),
    "per_step_regression": Entry(per_step_regression, step=3),
    "two_inputs": Entry(two_inputs_concatenated),
    "nested": Entry(sub_model_as_a_layer),
    "simple_rnn_lstm": Entry(stacked_simple_rnn_lstm),
    "two_sequences_per_step": Entry(two_sequences_per_step, step=None),
    "series_static": Entry(sequence_with_static_features),
    "lstm_states_seq2seq": Entry(keras_encoder_decoder(L.LSTM), step=2),
    "gru_states_seq2seq": Entry(keras_encoder_decoder(L.GRU), step=None),
    "cnn_lstm": Entry(cnn_lstm_time_series),
    "text_cnn_bigru": Entry(text_cnn_bigru),
    "lstm_encoder_decoder": Entry(lstm_encoder_decoder, step=2),
    "text_bilstm_layer_norm": Entry(text_bilstm_layer_norm),
    "residual_add": Entry(residual_recurrent_add),
    "multiply_gated": Entry(multiply_gated),
    "text_bilstm_attention": Entry(text_bilstm_attention),
    "lstm_multi_head_block": Entry(lstm_multi_head_block),
    "text_bilstm_attention_pooling": Entry(text_bilstm_attention_pooling),
    "conv_bn_lstm": Entry(conv_batch_norm_lstm),
    "gated_three_way_prelu": Entry(gated_three_way_prelu),
    "gru_attention_weighted_sum": Entry(gru_attention_weighted_sum),
}


def _parts(x: Any) -> list[np.ndarray]:
    return list(x) if isinstance(x, list) else [x]


def _train(model: keras.Model, x: Any) -> None:
    rng = np.random.default_rng(0)
    shape = model(x).shape  # per-step outputs: one target per step (of the output's own time axis)
    y = rng.standard_normal(tuple(shape)).astype("float32")
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse", run_eagerly=True)
    model.fit(x, y, batch_size=4, epochs=2, verbose=0, shuffle=False)


@dataclass
class Case:
    name: str
    entry: Entry
    model: keras.Model
    x: Any
    explainer: Explainer  # float64


@pytest.fixture(scope="module", params=sorted(ZOO))
def case(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Case:
    keras.utils.set_random_seed(3)
    entry = ZOO[request.param]
    model, x = entry.build()
    _train(model, x)
    path = Path(tmp_path_factory.mktemp("zoo")) / f"{request.param}.keras"
    model.save(path)
    model = keras_convert.load_model(path)
    return Case(request.param, entry, model, x, Explainer.from_keras(model, dtype="float64"))


def _relative(ours: np.ndarray, theirs: np.ndarray) -> float:
    return float(np.max(np.abs(ours - theirs)) / max(1.0, float(np.max(np.abs(theirs)))))


def test_float32_scores_equal_the_keras_model(case: Case) -> None:
    explainer = Explainer.from_keras(case.model)  # float32, checked on its own probe batch
    ours = explainer.score(case.x)
    assert _relative(ours, keras_convert.keras_scores(case.model, case.x)) < 1e-5


def _embedding_table(model: keras.Model, name: str) -> Any:
    """The table of the Embedding layer called ``name`` (also inside a model used as a layer)."""
    return next(layer for layer in model._flatten_layers() if layer.name == name).embeddings


def _keras_gradient_x_input(case: Case, target: np.ndarray) -> list[np.ndarray]:
    """Gradient×Input of the explained score by tf.GradientTape on the Keras model, per input.

    For token ids, the gradient w.r.t. the embedding table: every id occurs once per batch, so
    its row is the gradient at that position. Per-step outputs: step ``entry.step``, or (None)
    the sum over all steps (the zoo's models with step=None have no mask).
    """
    reference = keras_convert.score_model(case.model)
    layout = case.explainer.layout
    parts = _parts(case.x)
    tables = {
        k: _embedding_table(case.model, layout.layers[layout.attribution_edges[k]].name)
        for k, part in enumerate(parts)
        if layout.inputs[k].tokens
    }
    feeds = [tf.constant(part) for part in parts]
    with tf.GradientTape() as tape:
        for k, feed in enumerate(feeds):
            if k not in tables:
                tape.watch(feed)
        scores = reference(feeds if len(feeds) > 1 else feeds[0], training=False)
        weight = tf.one_hot(target, scores.shape[-1], dtype=scores.dtype)
        if len(scores.shape) == 3:
            steps = scores.shape[1]
            chosen = tf.ones((steps,)) if case.entry.step is None else tf.one_hot(case.entry.step % steps, steps)
            weight = weight[:, None, :] * tf.cast(chosen, scores.dtype)[None, :, None]
        total = tf.reduce_sum(scores * weight)
    sources = [tables[k].value if k in tables else feed for k, feed in enumerate(feeds)]
    grads = tape.gradient(total, sources)
    result = []
    for k, (part, grad) in enumerate(zip(parts, grads, strict=True)):
        grad = tf.convert_to_tensor(grad).numpy()
        if k in tables:
            table = keras.ops.convert_to_numpy(tables[k])
            result.append(grad[part] * table[part])
        else:
            result.append(grad * part)
    return result


def _explain(case: Case, x: Any, **options: Any) -> Any:
    target = np.arange(len(_parts(x)[0])) % case.explainer.layout.num_outputs
    step = case.entry.step if case.explainer.layout.per_step else None
    return case.explainer.explain(x, target=target, step=step, **options)


def _as_list(relevance: Any) -> list[np.ndarray]:
    return list(relevance) if isinstance(relevance, tuple) else [relevance]


def test_gradient_x_input_equals_gradient_tape(case: Case) -> None:
    target = np.arange(len(_parts(case.x)[0])) % case.explainer.layout.num_outputs
    ours = _as_list(_explain(case, case.x, method="gradient_x_input").relevance)
    theirs = _keras_gradient_x_input(case, target)
    for mine, keras_ in zip(ours, theirs, strict=True):
        assert mine.shape == keras_.shape
        assert _relative(mine, keras_) < 2e-4  # Keras computes in float32


def test_lrp_conserves_and_masked_steps_get_zero(case: Case) -> None:
    explanation = _explain(case, case.x, bias_factor=1.0, eps=1e-9)
    if case.entry.conserves:
        assert explanation.conservation_error.max() < 1e-9
    relevances = _as_list(explanation.relevance)
    masks = explanation.mask if isinstance(explanation.mask, tuple) else (explanation.mask,) * len(relevances)
    padded = [mask is not None and not mask.all() for mask in masks]
    if any(mask is not None for mask in masks):
        assert any(padded), "a masked model of the zoo pads at least one of its inputs"
    for relevance, mask in zip(relevances, masks, strict=True):
        if mask is not None:
            assert np.all(relevance[~mask] == 0.0)


@pytest.mark.parametrize("method", ["lrp", "gradient_x_input"])
def test_a_batch_explains_like_its_samples_one_by_one(case: Case, method: str) -> None:
    whole = _as_list(_explain(case, case.x, method=method, bias_factor=1.0).relevance)
    for b in range(len(_parts(case.x)[0])):
        sample = [part[b : b + 1] for part in _parts(case.x)]
        target = b % case.explainer.layout.num_outputs
        step = case.entry.step if case.explainer.layout.per_step else None
        one = case.explainer.explain(
            sample if len(sample) > 1 else sample[0], target=target, step=step, method=method, bias_factor=1.0
        )
        for mine, full in zip(_as_list(one.relevance), whole, strict=True):
            np.testing.assert_allclose(mine[0], full[b], rtol=1e-12, atol=1e-14)


GOLDEN = Path(__file__).parent / "golden" / "keras_manifests_before_the_walker.json"


def test_what_converted_before_the_graph_walker_converts_to_the_same_manifest() -> None:
    """The manifests the chain converter (before the walker) wrote for these models: same fingerprints."""
    import json

    from tests import test_keras_import

    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    builders = {f"test_keras_import.{name}": getattr(test_keras_import, name) for name in
                ("token_lstm", "token_bi_stacked", "masking_bi_gru_reset_before", "functional_stacked_backward",
                 "odd_activations_no_bias")}
    builders.update({f"test_keras_zoo.{entry.build.__name__}": entry.build for entry in ZOO.values()})
    assert set(golden) <= set(builders)
    for key in sorted(golden):
        keras.backend.clear_session()  # the layers' default names, as when the golden file was written
        model, _ = builders[key]()
        assert keras_convert.from_keras(model).manifest == golden[key], key
