"""Small float64 networks that together use every registered node type (the invariants' zoo).

Each factory builds a Keras model (the reference for the forward pass) and the tf_lrp explainer
of the same weights, plus a batch with padding. :data:`NETWORKS` is checked against
``tf_lrp.nodes.NODES`` by the invariants harness: a node type that no network uses fails it, so a
new node type comes with a network here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from tf_lrp import Explainer
from tf_lrp.layout import ConcatenateSpec, DenseSpec, InputSpec, RecurrentSpec, Seq2SeqSpec, input_edge, to_manifest

L = keras.layers
BATCH, STEPS = 4, 5
#: how closely the Keras model must agree: outside JAX's 64-bit mode (which tf_lrp scopes to its
#: own calls) Keras-on-JAX computes float64 layers in float32, so the reference is float32 there
KERAS_TOLERANCE = 1e-9 if keras.backend.backend() == "tensorflow" else 1e-6


@dataclass
class Case:
    """One network of the zoo."""

    explainer: Explainer
    keras_model: Any  # a Keras model (or an independent numpy forward): inputs -> the output's pre-activation
    x: Any  # one array, or a tuple per input
    lengths: Any  # (B,) valid lengths (post-padding), or a tuple per input
    kinds: frozenset[str]  # the node kinds the network uses

    @property
    def inputs(self) -> tuple[np.ndarray, ...]:
        return self.x if isinstance(self.x, tuple) else (self.x,)

    @property
    def masks(self) -> tuple[np.ndarray, ...]:
        """Per input its (B, T) step mask, None for a vector input."""
        lengths = self.lengths if isinstance(self.lengths, tuple) else (self.lengths,)
        return tuple(None if n is None else np.arange(STEPS)[None, :] < n[:, None] for n in lengths)


def _floats(rng: np.random.Generator, features: int) -> tuple[np.ndarray, np.ndarray]:
    x = rng.standard_normal((BATCH, STEPS, features))
    lengths = rng.integers(2, STEPS + 1, size=BATCH)
    lengths[0] = STEPS
    for b, n in enumerate(lengths):
        x[b, n:] = 0.0  # Masking(0.0) pads with zeros
    return x, lengths


def _randomise(model: keras.Model, rng: np.random.Generator) -> None:
    """Weights of size ~1 (biases included), so every rule and bias share matters."""
    model.set_weights([rng.standard_normal(w.shape) * 0.6 for w in model.get_weights()])


def _chain(rng: np.random.Generator, layers: list[Any], features: int, kinds: set[str]) -> Case:
    inputs = keras.Input((STEPS, features), dtype="float64")
    tensor = L.Masking(0.0, dtype="float64")(inputs)
    for layer in layers:
        tensor = layer(tensor)
    model = keras.Model(inputs, tensor)
    _randomise(model, rng)
    x, lengths = _floats(rng, features)
    explainer = Explainer.from_keras(model, sample=x, dtype="float64", tolerance=KERAS_TOLERANCE)
    return Case(explainer, model, x, lengths, frozenset(kinds))


def stacked_lstm_gru(rng: np.random.Generator) -> Case:
    """Bi-LSTM (concat, sequences) -> GRU (reset_after) -> Dense(relu) -> Dense."""
    f64 = {"dtype": "float64"}
    layers = [
        L.Bidirectional(L.LSTM(3, return_sequences=True, **f64), **f64),
        L.GRU(4, **f64),
        L.Dense(4, activation="relu", **f64),
        L.Dense(3, **f64),
    ]
    return _chain(rng, layers, 2, {"lstm", "gru", "dense"})


def simple_rnn_bidirectional(rng: np.random.Generator) -> Case:
    """Bi-SimpleRNN (ave, tanh, sequences) -> SimpleRNN (relu) -> Dense."""
    f64 = {"dtype": "float64"}
    layers = [
        L.Bidirectional(L.SimpleRNN(3, return_sequences=True, **f64), merge_mode="ave", **f64),
        L.SimpleRNN(4, activation="relu", **f64),
        L.Dense(2, **f64),
    ]
    return _chain(rng, layers, 3, {"simple_rnn", "dense"})


def max_pooled(rng: np.random.Generator) -> Case:
    """LSTM (sequences; padded steps hold the carried state) -> GlobalMaxPooling1D -> Dense."""
    f64 = {"dtype": "float64"}
    layers = [
        L.LSTM(3, return_sequences=True, **f64),
        L.GlobalMaxPooling1D(**f64),
        L.Dense(2, **f64),
    ]
    return _chain(rng, layers, 2, {"lstm", "global_max_pooling", "dense"})


def average_pooled(rng: np.random.Generator) -> Case:
    """GRU (sequences) -> SimpleRNN (sequences) -> GlobalAveragePooling1D (mask-aware) -> Dense(relu) -> Dense."""
    f64 = {"dtype": "float64"}
    layers = [
        L.GRU(4, return_sequences=True, **f64),
        L.SimpleRNN(3, return_sequences=True, **f64),
        L.GlobalAveragePooling1D(**f64),
        L.Dense(3, activation="relu", **f64),
        L.Dense(2, **f64),
    ]
    return _chain(rng, layers, 2, {"gru", "simple_rnn", "global_average_pooling", "dense"})


def per_step_tagger(rng: np.random.Generator) -> Case:
    """GRU (sequences) -> Dense(relu) per step -> TimeDistributed(Dense): scores (B, T, C)."""
    f64 = {"dtype": "float64"}
    layers = [
        L.GRU(4, return_sequences=True, reset_after=False, **f64),
        L.Dense(3, activation="relu", **f64),
        L.TimeDistributed(L.Dense(2, **f64), **f64),
    ]
    return _chain(rng, layers, 2, {"gru", "dense"})


def token_classifier(rng: np.random.Generator) -> Case:
    """Embedding(mask_zero) -> bi-GRU (sum) -> Dense."""
    f64 = {"dtype": "float64"}
    inputs = keras.Input((STEPS,), dtype="int32")
    tensor = L.Embedding(7, 3, mask_zero=True, **f64)(inputs)
    tensor = L.Bidirectional(L.GRU(3, **f64), merge_mode="sum", **f64)(tensor)
    model = keras.Model(inputs, L.Dense(2, **f64)(tensor))
    _randomise(model, rng)
    lengths = rng.integers(2, STEPS + 1, size=BATCH)
    ids = rng.integers(1, 7, size=(BATCH, STEPS))
    ids[np.arange(STEPS)[None, :] >= lengths[:, None]] = 0
    explainer = Explainer.from_keras(model, sample=ids, dtype="float64", tolerance=KERAS_TOLERANCE)
    return Case(explainer, model, ids, lengths, frozenset({"embedding", "gru", "dense"}))


def two_inputs(rng: np.random.Generator) -> Case:
    """Two sequences: LSTM(a) and GRU(b), concatenated, Dense(relu), Dense (a version-2 graph)."""
    f64 = {"dtype": "float64"}
    a, b = keras.Input((STEPS, 2), dtype="float64"), keras.Input((STEPS, 3), dtype="float64")
    lstm, gru = L.LSTM(3, **f64), L.GRU(2, **f64)
    hidden, out = L.Dense(4, activation="relu", **f64), L.Dense(2, **f64)
    joined = L.Concatenate(**f64)([lstm(L.Masking(0.0, **f64)(a)), gru(L.Masking(0.0, **f64)(b))])
    model = keras.Model([a, b], out(hidden(joined)))
    _randomise(model, rng)
    layers = [
        RecurrentSpec(cell="lstm", units=3, input_size=2, name="lstm"),
        RecurrentSpec(cell="gru", units=2, input_size=3, name="gru"),
        ConcatenateSpec((3, 2), name="join"),
        DenseSpec(units=4, input_size=5, activation="relu", name="hidden"),
        DenseSpec(units=2, input_size=4, name="out"),
    ]
    edges = ((input_edge(0),), (input_edge(1),), (0, 1), (2,), (3,))
    inputs = (InputSpec("a", 2, mask_value=0.0), InputSpec("b", 3, mask_value=0.0))
    manifest = to_manifest(layers, edges=edges, inputs=inputs)
    weights = [w for layer in (lstm, gru, hidden, out) for w in layer.get_weights()]
    explainer = Explainer.from_manifest(manifest, weights, dtype="float64")
    (xa, la), (xb, lb) = _floats(rng, 2), _floats(rng, 3)
    return Case(explainer, model, (xa, xb), (la, lb), frozenset({"lstm", "gru", "concatenate", "dense"}))


def sequence_and_static(rng: np.random.Generator) -> Case:
    """A sequence (LSTM) and static features (one vector per sample), concatenated, Dense(relu), Dense."""
    f64 = {"dtype": "float64"}
    series = keras.Input((STEPS, 3), dtype="float64", name="series")
    static = keras.Input((2,), dtype="float64", name="static")
    state = L.LSTM(4, **f64)(L.Masking(0.0, **f64)(series))
    joined = L.Concatenate(**f64)([state, static])
    model = keras.Model([series, static], L.Dense(2, **f64)(L.Dense(5, activation="relu", **f64)(joined)))
    _randomise(model, rng)
    xs, lengths = _floats(rng, 3)
    x = (xs, rng.standard_normal((BATCH, 2)))
    explainer = Explainer.from_keras(model, sample=list(x), dtype="float64", tolerance=KERAS_TOLERANCE)
    return Case(explainer, model, x, (lengths, None), frozenset({"lstm", "concatenate", "dense"}))


def encoder_decoder(rng: np.random.Generator) -> Case:
    """Keras seq2seq: LSTM encoder (return_state) -> its (h, c) start an LSTM decoder -> Dense per step."""
    f64 = {"dtype": "float64"}
    source = keras.Input((STEPS, 3), dtype="float64", name="source")
    target = keras.Input((STEPS, 2), dtype="float64", name="target")
    _, h, c = L.LSTM(3, return_state=True, **f64)(L.Masking(0.0, **f64)(source))
    decoded = L.LSTM(3, return_sequences=True, **f64)(L.Masking(0.0, **f64)(target), initial_state=[h, c])
    model = keras.Model([source, target], L.Dense(2, **f64)(decoded))
    _randomise(model, rng)
    (xs, ls), (xt, lt) = _floats(rng, 3), _floats(rng, 2)
    explainer = Explainer.from_keras(model, sample=[xs, xt], dtype="float64", tolerance=KERAS_TOLERANCE)
    return Case(explainer, model, (xs, xt), (ls, lt), frozenset({"lstm", "slice", "dense"}))


def _gru_numpy(x: np.ndarray, h: np.ndarray, kernel: np.ndarray, recurrent: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """One Keras GRU step (reset_after=True; gate blocks update, reset, candidate), written out in numpy."""
    units = h.shape[1]
    xs, hs = x @ kernel + bias[0], h @ recurrent + bias[1]
    update = 1 / (1 + np.exp(-(xs[:, :units] + hs[:, :units])))
    reset = 1 / (1 + np.exp(-(xs[:, units : 2 * units] + hs[:, units : 2 * units])))
    candidate = np.tanh(xs[:, 2 * units :] + reset * hs[:, 2 * units :])
    return update * h + (1 - update) * candidate


def _forecaster_numpy(spec: Seq2SeqSpec, weights: list[np.ndarray]) -> Callable[[list[np.ndarray]], np.ndarray]:
    """The forecaster's forward pass written out independently (docs/forecaster.md), as the reference."""

    def run(inputs: list[np.ndarray]) -> np.ndarray:
        history, future, static = inputs
        layers = spec.num_layers
        sequence, states = history, []
        for layer in range(layers):  # encoder: stacked GRUs from zero states
            kernel, recurrent, bias = weights[3 * layer : 3 * layer + 3]
            h = np.zeros((len(history), spec.units))
            outputs = []
            for t in range(sequence.shape[1]):
                h = _gru_numpy(sequence[:, t], h, kernel, recurrent, bias)
                outputs.append(h)
            sequence = np.stack(outputs, axis=1)
            states.append(h)
        head1_kernel, head1_bias, head2_kernel = weights[6 * layers :]
        previous, forecasts = history[:, -1, : spec.outputs], []
        for t in range(future.shape[1]):  # decoder: fed its own previous forecast
            u = np.concatenate([previous, future[:, t]], axis=1)
            for layer in range(layers):
                kernel, recurrent, bias = weights[3 * (layers + layer) : 3 * (layers + layer) + 3]
                states[layer] = u = _gru_numpy(u, states[layer], kernel, recurrent, bias)
            hidden = np.maximum(np.concatenate([u, static], axis=1) @ head1_kernel + head1_bias, 0)
            previous = hidden @ head2_kernel
            forecasts.append(previous)
        return np.stack(forecasts, axis=1)

    return run


def forecaster(rng: np.random.Generator) -> Case:
    """The GRU encoder-decoder forecaster (2 layers, static features): history 5 steps, horizon 3."""
    spec = Seq2SeqSpec(num_layers=2, units=3, input_size=3, outputs=2, future_size=2, static_size=2, head_units=4)
    weights = [rng.standard_normal(a.shape) * 0.6 for a in spec.arrays]
    explainer = Explainer.from_manifest(spec.manifest, weights, dtype="float64")
    x = (rng.standard_normal((BATCH, STEPS, 3)), rng.standard_normal((BATCH, 3, 2)), rng.standard_normal((BATCH, 2)))
    return Case(explainer, _forecaster_numpy(spec, weights), x, (None, None, None), frozenset({"seq2seq"}))  # type: ignore[arg-type]
def conv_max_pooled(rng: np.random.Generator) -> Case:
    """LSTM (sequences) -> Conv1D (causal, dilated, relu) -> MaxPooling1D (same) -> GRU -> Dense.

    Keras drops the mask at the convolution: it reads the LSTM's carried state at padded steps,
    whose relevance flows back through the LSTM's carry, so padded inputs still get zero.
    """
    f64 = {"dtype": "float64"}
    layers = [
        L.LSTM(3, return_sequences=True, **f64),
        L.Conv1D(4, 2, padding="causal", dilation_rate=2, activation="relu", **f64),
        L.MaxPooling1D(2, padding="same", **f64),
        L.GRU(3, **f64),
        L.Dense(2, **f64),
    ]
    return _chain(rng, layers, 2, {"lstm", "conv1d", "max_pooling1d", "gru", "dense"})


def conv_average_pooled(rng: np.random.Generator) -> Case:
    """GRU (sequences) -> Conv1D (valid, strides 2, groups 2) -> AveragePooling1D (same) -> SimpleRNN -> Dense."""
    f64 = {"dtype": "float64"}
    layers = [
        L.GRU(4, return_sequences=True, **f64),
        L.Conv1D(4, 2, strides=2, groups=2, **f64),
        L.AveragePooling1D(2, strides=1, padding="same", **f64),
        L.SimpleRNN(3, **f64),
        L.Dense(2, **f64),
    ]
    return _chain(rng, layers, 2, {"gru", "conv1d", "average_pooling1d", "simple_rnn", "dense"})


def repeated_encoder(rng: np.random.Generator) -> Case:
    """LSTM encoder -> RepeatVector(3) -> GRU decoder -> Dense."""
    f64 = {"dtype": "float64"}
    layers = [L.LSTM(3, **f64), L.RepeatVector(3, **f64), L.GRU(3, **f64), L.Dense(2, **f64)]
    return _chain(rng, layers, 2, {"lstm", "repeat_vector", "gru", "dense"})


def _positive_variances(model: keras.Model) -> None:
    """BatchNormalization's moving variances must be positive (randomised weights are not)."""
    model.set_weights([np.abs(w) + 0.5 if "moving_variance" in v.path else w
                       for w, v in zip(model.get_weights(), model.weights, strict=True)])  # fmt: skip


def normalized_residual(rng: np.random.Generator) -> Case:
    """Bi-LSTM -> LayerNormalization, GRU -> BatchNormalization, Add, LSTM, Dense(tanh) (split), Dense."""
    f64 = {"dtype": "float64"}
    inputs = keras.Input((STEPS, 3), dtype="float64")
    masked = L.Masking(0.0, **f64)(inputs)
    left = L.LayerNormalization(**f64)(L.Bidirectional(L.LSTM(2, return_sequences=True, **f64), **f64)(masked))
    right = L.BatchNormalization(**f64)(L.GRU(4, return_sequences=True, **f64)(masked))
    tensor = L.LSTM(3, **f64)(L.Add(**f64)([left, right]))
    model = keras.Model(inputs, L.Dense(2, **f64)(L.Dense(4, activation="tanh", **f64)(tensor)))
    _randomise(model, rng)
    _positive_variances(model)
    x, lengths = _floats(rng, 3)
    explainer = Explainer.from_keras(model, sample=x, dtype="float64", tolerance=KERAS_TOLERANCE)
    return Case(explainer, model, x, lengths, KINDS["normalized_residual"])


def gated_average(rng: np.random.Generator) -> Case:
    """GRU (sequences) gated per step by Dense(sigmoid) (Multiply), Average with a SimpleRNN, pooled, Dense."""
    f64 = {"dtype": "float64"}
    inputs = keras.Input((STEPS, 2), dtype="float64")
    masked = L.Masking(0.0, **f64)(inputs)
    states = L.GRU(3, return_sequences=True, **f64)(masked)
    gate = L.Dense(3, activation="sigmoid", **f64)(states)
    gated = L.Multiply(**f64)([states, gate])
    other = L.SimpleRNN(3, return_sequences=True, **f64)(masked)
    tensor = L.GlobalAveragePooling1D(**f64)(L.Subtract(**f64)([L.Average(**f64)([gated, other, states]), other]))
    model = keras.Model(inputs, L.Dense(2, **f64)(L.Activation("swish", **f64)(tensor)))
    _randomise(model, rng)
    x, lengths = _floats(rng, 2)
    explainer = Explainer.from_keras(model, sample=x, dtype="float64", tolerance=KERAS_TOLERANCE)
    return Case(explainer, model, x, lengths, KINDS["gated_average"])


def attention_pooled(rng: np.random.Generator) -> Case:
    """Bi-LSTM (sequences) -> Attention([h, h], use_scale) self-attention -> GlobalAveragePooling1D -> Dense."""
    f64 = {"dtype": "float64"}
    inputs = keras.Input((STEPS, 2), dtype="float64")
    h = L.Bidirectional(L.LSTM(3, return_sequences=True, **f64), **f64)(L.Masking(0.0, **f64)(inputs))
    h = L.Attention(use_scale=True, **f64)([h, h])
    model = keras.Model(inputs, L.Dense(2, **f64)(L.GlobalAveragePooling1D(**f64)(h)))
    _randomise(model, rng)
    x, lengths = _floats(rng, 2)
    explainer = Explainer.from_keras(model, sample=x, dtype="float64", tolerance=KERAS_TOLERANCE)
    return Case(explainer, model, x, lengths, KINDS["attention_pooled"])


def multi_head_block(rng: np.random.Generator) -> Case:
    """GRU (sequences) -> MultiHeadAttention(2 heads, causal) self-attention -> GlobalAveragePooling1D -> Dense."""
    f64 = {"dtype": "float64"}
    inputs = keras.Input((STEPS, 2), dtype="float64")
    h = L.GRU(4, return_sequences=True, **f64)(L.Masking(0.0, **f64)(inputs))
    h = L.MultiHeadAttention(num_heads=2, key_dim=3, **f64)(h, h, use_causal_mask=True)
    model = keras.Model(inputs, L.Dense(2, **f64)(L.GlobalAveragePooling1D(**f64)(h)))
    _randomise(model, rng)
    x, lengths = _floats(rng, 2)
    explainer = Explainer.from_keras(model, sample=x, dtype="float64", tolerance=KERAS_TOLERANCE)
    return Case(explainer, model, x, lengths, KINDS["multi_head_block"])


def last_step(rng: np.random.Generator) -> Case:
    """LSTM (sequences) -> x[:, -1] (select_step; padded steps hold the carried state) -> Dense."""
    f64 = {"dtype": "float64"}
    inputs = keras.Input((STEPS, 2), dtype="float64")
    tensor = L.LSTM(3, return_sequences=True, **f64)(L.Masking(0.0, **f64)(inputs))
    model = keras.Model(inputs, L.Dense(2, **f64)(tensor[:, -1, :]))
    _randomise(model, rng)
    x, lengths = _floats(rng, 2)
    explainer = Explainer.from_keras(model, sample=x, dtype="float64", tolerance=KERAS_TOLERANCE)
    return Case(explainer, model, x, lengths, frozenset({"lstm", "select_step", "dense"}))


def flattened(rng: np.random.Generator) -> Case:
    """GRU (sequences; padded steps hold the carried state) -> Flatten -> Dense: the time axis into the head."""
    f64 = {"dtype": "float64"}
    return _chain(rng, [L.GRU(3, return_sequences=True, **f64), L.Flatten(**f64), L.Dense(2, **f64)], 3,
                  {"gru", "flatten", "dense"})  # fmt: skip


def _masked_softmax_numpy(scores: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(B, T) softmax over time of the valid steps (masked steps: weight 0), written out in numpy."""
    shifted = np.where(mask, scores, -np.inf)
    e = np.exp(shifted - shifted.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def softmax_pooled(rng: np.random.Generator, weighting: bool = False) -> Case:
    """Bi-LSTM -> Dense(1, tanh) -> Softmax(axis=1) -> Dot(axes=1)([weights, states]) -> Flatten -> Dense.

    With ``weighting``: ``keras.ops.sum(Multiply()([states, weights]), axis=1)`` instead of the Dot.

    The hand-built attention pooling, with masked steps: Keras 3's ``Softmax`` cannot apply the
    propagated (B, T) mask to its (B, T, 1) scores (it raises), so the Keras model is converted
    unmasked, the converted network reads the input's ``Masking(0.0)``, and the reference is the
    masked Keras recurrent layer and scores followed by the masked pooling in numpy.
    """
    from tf_lrp.convert import from_keras

    f64 = {"dtype": "float64"}
    inputs = keras.Input((STEPS, 2), dtype="float64")
    bilstm = L.Bidirectional(L.LSTM(3, return_sequences=True, **f64), **f64)
    score_layer, head = L.Dense(1, activation="tanh", **f64), L.Dense(2, **f64)
    states = bilstm(inputs)
    weights = L.Softmax(axis=1, **f64)(score_layer(states))
    if weighting:
        pooled = keras.ops.sum(L.Multiply(**f64)([states, weights]), axis=1)
    else:
        pooled = L.Flatten(**f64)(L.Dot(axes=1, **f64)([weights, states]))
    plain = keras.Model(inputs, head(pooled))
    _randomise(plain, rng)
    manifest, arrays = from_keras(plain)
    manifest["inputs"][0]["mask_value"] = 0.0
    explainer = Explainer.from_manifest(manifest, arrays, dtype="float64")
    masked_states = bilstm(L.Masking(0.0, **f64)(inputs))
    inner = keras.Model(inputs, [masked_states, score_layer(masked_states)])
    kernel, bias = (np.asarray(w) for w in head.get_weights())

    def run(x: np.ndarray) -> np.ndarray:
        h, e = (np.asarray(keras.ops.convert_to_numpy(t)) for t in inner(x))
        a = _masked_softmax_numpy(e[..., 0], np.any(x != 0.0, axis=-1))
        return np.einsum("bt,bth->bh", a, h) @ kernel + bias

    x, lengths = _floats(rng, 2)
    return Case(explainer, run, x, lengths, KINDS["softmax_weighted" if weighting else "softmax_pooled"])


def softmax_weighted(rng: np.random.Generator) -> Case:
    """The same attention pooling by Multiply (weights broadcast over the features) and keras.ops.sum over time."""
    return softmax_pooled(rng, weighting=True)


def leaky_prelu(rng: np.random.Generator) -> Case:
    """LSTM (sequences) -> Conv1D(leaky_relu) (split) -> PReLU(shared_axes=[1]) -> GRU -> Dense -> LeakyReLU(0.1)."""
    f64 = {"dtype": "float64"}
    layers = [
        L.LSTM(3, return_sequences=True, **f64),
        L.Conv1D(3, 2, padding="causal", activation="leaky_relu", **f64),
        L.PReLU(shared_axes=[1], **f64),
        L.GRU(3, **f64),
        L.Dense(4, **f64),
        L.LeakyReLU(negative_slope=0.1, **f64),
        L.Dense(2, **f64),
    ]
    return _chain(rng, layers, 2, KINDS["leaky_prelu"])


#: name -> factory; the invariants harness runs every method on each.
NETWORKS: dict[str, Callable[[np.random.Generator], Case]] = {
    "stacked_lstm_gru": stacked_lstm_gru,
    "simple_rnn_bidirectional": simple_rnn_bidirectional,
    "per_step_tagger": per_step_tagger,
    "max_pooled": max_pooled,
    "average_pooled": average_pooled,
    "token_classifier": token_classifier,
    "two_inputs": two_inputs,
    "sequence_and_static": sequence_and_static,
    "forecaster": forecaster,
    "encoder_decoder": encoder_decoder,
    "conv_max_pooled": conv_max_pooled,
    "conv_average_pooled": conv_average_pooled,
    "repeated_encoder": repeated_encoder,
    "normalized_residual": normalized_residual,
    "gated_average": gated_average,
    "attention_pooled": attention_pooled,
    "multi_head_block": multi_head_block,
    "flattened": flattened,
    "last_step": last_step,
    "softmax_pooled": softmax_pooled,
    "leaky_prelu": leaky_prelu,
    "softmax_weighted": softmax_weighted,
}
#: the node kinds each network uses (static, so the coverage check needs no Keras model)
KINDS: dict[str, frozenset[str]] = {
    "stacked_lstm_gru": frozenset({"lstm", "gru", "dense"}),
    "simple_rnn_bidirectional": frozenset({"simple_rnn", "dense"}),
    "per_step_tagger": frozenset({"gru", "dense"}),
    "max_pooled": frozenset({"lstm", "global_max_pooling", "dense"}),
    "average_pooled": frozenset({"gru", "simple_rnn", "global_average_pooling", "dense"}),
    "token_classifier": frozenset({"embedding", "gru", "dense"}),
    "two_inputs": frozenset({"lstm", "gru", "concatenate", "dense"}),
    "sequence_and_static": frozenset({"lstm", "concatenate", "dense"}),
    "forecaster": frozenset({"seq2seq"}),
    "encoder_decoder": frozenset({"lstm", "slice", "dense"}),
    "conv_max_pooled": frozenset({"lstm", "conv1d", "max_pooling1d", "gru", "dense"}),
    "conv_average_pooled": frozenset({"gru", "conv1d", "average_pooling1d", "simple_rnn", "dense"}),
    "repeated_encoder": frozenset({"lstm", "repeat_vector", "gru", "dense"}),
    "normalized_residual": frozenset(
        {"lstm", "gru", "layer_normalization", "batch_normalization", "merge", "activation", "dense"}
    ),
    "gated_average": frozenset(
        {"gru", "simple_rnn", "dense", "activation", "multiply", "merge", "global_average_pooling"}
    ),
    "attention_pooled": frozenset({"lstm", "attention", "global_average_pooling", "dense"}),
    "multi_head_block": frozenset({"gru", "multi_head_attention", "global_average_pooling", "dense"}),
    "flattened": frozenset({"gru", "flatten", "dense"}),
    "last_step": frozenset({"lstm", "select_step", "dense"}),
    "softmax_pooled": frozenset(
        {"lstm", "dense", "activation", "softmax", "weighted_sum", "repeat_vector", "flatten"}
    ),
    "leaky_prelu": frozenset({"lstm", "conv1d", "activation", "prelu", "gru", "dense"}),
    "softmax_weighted": frozenset({"lstm", "dense", "activation", "softmax", "weighted_sum", "global_sum_pooling"}),
}
