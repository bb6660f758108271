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
from tf_lrp.layout import ConcatenateSpec, DenseSpec, InputSpec, RecurrentSpec, input_edge, to_manifest

L = keras.layers
BATCH, STEPS = 4, 5
#: how closely the Keras model must agree: outside JAX's 64-bit mode (which tf_lrp scopes to its
#: own calls) Keras-on-JAX computes float64 layers in float32, so the reference is float32 there
KERAS_TOLERANCE = 1e-9 if keras.backend.backend() == "tensorflow" else 1e-6


@dataclass
class Case:
    """One network of the zoo."""

    explainer: Explainer
    keras_model: keras.Model  # inputs -> the output node's pre-activation
    x: Any  # one array, or a tuple per input
    lengths: Any  # (B,) valid lengths (post-padding), or a tuple per input
    kinds: frozenset[str]  # the node kinds the network uses

    @property
    def inputs(self) -> tuple[np.ndarray, ...]:
        return self.x if isinstance(self.x, tuple) else (self.x,)

    @property
    def masks(self) -> tuple[np.ndarray, ...]:
        lengths = self.lengths if isinstance(self.lengths, tuple) else (self.lengths,)
        return tuple(np.arange(STEPS)[None, :] < n[:, None] for n in lengths)


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


#: name -> factory; the invariants harness runs every method on each.
NETWORKS: dict[str, Callable[[np.random.Generator], Case]] = {
    "stacked_lstm_gru": stacked_lstm_gru,
    "simple_rnn_bidirectional": simple_rnn_bidirectional,
    "per_step_tagger": per_step_tagger,
    "max_pooled": max_pooled,
    "average_pooled": average_pooled,
    "token_classifier": token_classifier,
    "two_inputs": two_inputs,
    "last_step": last_step,
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
    "last_step": frozenset({"lstm", "select_step", "dense"}),
}
