"""tf_lrp.text: the tokenizer reproduces Keras TextVectorization; a text model explains raw strings."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from tf_lrp import Explainer
from tf_lrp.errors import ConversionError, InputError
from tf_lrp.text import SPLIT, STANDARDIZE, TextVectorizer, as_texts

L = keras.layers
CORPUS = [
    "The cat sat on the mat.",
    "A dog, a DOG! and\tanother   dog",
    "birds fly high over the sea",
    "Ünïcode CAFÉ café's (tricky) e-mail: x@y.z",
    "cats and dogs",
]
QUERIES = [*CORPUS, "", "   ", "UNSEEN words,here!", "the  the\nthe", "ÀB ab Ab"]


def _keras_layer(standardize: str | None, split: str, length: int | None) -> keras.layers.TextVectorization:
    layer = L.TextVectorization(max_tokens=40, standardize=standardize, split=split, output_sequence_length=length)
    layer.adapt(CORPUS)
    return layer


def _ours(
    layer: keras.layers.TextVectorization, standardize: str | None, split: str, length: int | None
) -> TextVectorizer:
    return TextVectorizer(tuple(str(t) for t in layer.get_vocabulary()), standardize, split, length)


@pytest.mark.parametrize("standardize", STANDARDIZE)
@pytest.mark.parametrize("split", SPLIT)
@pytest.mark.parametrize("length", [None, 4])
def test_ids_equal_keras_text_vectorization(standardize: str | None, split: str, length: int | None) -> None:
    layer = _keras_layer(standardize, split, length)
    theirs = np.asarray(layer(np.asarray(QUERIES)))
    ours = _ours(layer, standardize, split, length).encode(QUERIES)
    np.testing.assert_array_equal(ours.ids, theirs)
    for row, tokens in enumerate(ours.tokens):
        assert len(tokens) == int((ours.ids[row] != 0).sum())


def test_tokens_keep_unknown_words_and_cut_at_the_length() -> None:
    vectorizer = TextVectorizer(("", "[UNK]", "the", "cat"), sequence_length=3)
    encoded = vectorizer.encode(["The cat, zebra! the cat", "cat"])
    assert encoded.tokens == (("the", "cat", "zebra"), ("cat",))
    np.testing.assert_array_equal(encoded.ids, [[2, 3, 1], [3, 0, 0]])


def test_entry_round_trip_and_bad_settings() -> None:
    vectorizer = TextVectorizer(("", "[UNK]", "a"), "lower", "character", 5)
    assert TextVectorizer.from_entry(vectorizer.to_entry()) == vectorizer
    with pytest.raises(InputError, match="standardize must be one of"):
        TextVectorizer(("", "[UNK]"), standardize="upper")
    with pytest.raises(InputError, match="padding token"):
        TextVectorizer(("[UNK]", "a"))
    with pytest.raises(InputError, match="text 1 is a int"):
        vectorizer.encode(["a", 3])  # type: ignore[list-item]


def test_as_texts_reads_lists_and_string_arrays_only() -> None:
    assert as_texts(["a", b"b"]) == ["a", b"b"]
    assert as_texts(np.asarray([["a"], ["b"]])) == ["a", "b"]
    assert as_texts(np.zeros((2, 3), dtype=np.int32)) is None
    assert as_texts([[1, 2]]) is None


def _text_model(length: int | None) -> keras.Model:
    texts = keras.Input(shape=(1,), dtype="string", name="text")
    vectorize = _keras_layer("lower_and_strip_punctuation", "whitespace", length)
    h = L.Embedding(40, 4, mask_zero=True, name="embed")(vectorize(texts))
    h = L.Bidirectional(L.GRU(3, return_sequences=True), name="bi")(h)
    h = L.GlobalAveragePooling1D(name="pool")(h)
    return keras.Model(texts, L.Dense(2, activation="softmax", name="head")(h), name="text_model")


@pytest.mark.parametrize("length", [None, 6])
def test_a_text_model_explains_raw_strings(length: int | None, tmp_path: Path) -> None:
    model = _text_model(length)
    model.save(tmp_path / "text.keras")
    explainer = Explainer.from_keras(tmp_path / "text.keras", dtype="float64")  # checked against Keras on texts
    sentences = ["The cat sat on the mat!", "zebra dogs", "birds"]
    explanation = explainer.explain(sentences, bias_factor=1.0, eps=1e-9)
    first = ("the", "cat", "sat", "on", "the", "mat")[: length or 6]
    assert explanation.tokens == (first, ("zebra", "dogs"), ("birds",))
    relevance = explanation.token_relevance
    for row, tokens in enumerate(explanation.tokens):
        assert np.all(relevance[row, len(tokens) :] == 0.0)  # padding gets exactly zero
    np.testing.assert_allclose(explanation.conservation_error, 0.0, atol=1e-9)
    ids = explainer.layout.inputs[0].text.encode(sentences).ids  # type: ignore[union-attr]
    np.testing.assert_array_equal(explainer.explain(ids).relevance, explainer.explain(sentences).relevance)
    assert "zebra" in explanation._repr_html_()
    explainer.save(tmp_path / "saved")
    loaded = Explainer.load(tmp_path / "saved")
    assert loaded.explain(["zebra dogs"]).tokens == (("zebra", "dogs"),)


def test_text_vectorization_options_tf_lrp_cannot_reproduce_are_refused() -> None:
    texts = keras.Input(shape=(1,), dtype="string")
    layer = L.TextVectorization(max_tokens=20, ngrams=2, name="bigrams")
    layer.adapt(CORPUS)
    h = L.LSTM(2)(L.Embedding(20, 3)(layer(texts)))
    with pytest.raises(ConversionError, match=r"'bigrams' \(TextVectorization\): ngrams=2 is not supported"):
        Explainer.from_keras(keras.Model(texts, L.Dense(2)(h)))
