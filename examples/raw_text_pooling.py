"""A Keras text model that reads raw strings, with a pooling head, explained from the strings.

The model starts with ``TextVectorization`` (its vocabulary travels with the explainer), then a
trained ``Embedding(mask_zero) → Bidirectional(LSTM, return_sequences) → GlobalMaxPooling1D →
Dense`` model used as a layer.
The task: short "reviews" of neutral words and one sentiment word; the label is its polarity. The
script explains raw sentences, prints how often the sentiment word gets the largest relevance,
and writes an HTML heatmap whose words come from ``Explanation.tokens`` (no vocabulary file).

    python examples/raw_text_pooling.py            # writes examples_out/raw_text_heatmap.html
    python examples/raw_text_pooling.py OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import keras
import numpy as np

from tf_lrp import Explainer, viz

NEUTRAL = [
    "the", "a", "movie", "film", "plot", "actors", "story", "was", "is", "and", "it", "this", "very", "quite",
    "really", "so", "of", "scenes", "ending",
]  # fmt: skip
POSITIVE = ["Great", "wonderful", "superb", "moving", "brilliant"]
NEGATIVE = ["awful", "Boring", "dull", "terrible", "clumsy"]


def reviews(count: int, rng: np.random.Generator) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Sentences, labels (1 = positive) and the sentiment word's position."""
    texts, labels, positions = [], rng.integers(0, 2, size=count), np.zeros(count, dtype=np.int64)
    for i in range(count):
        words = list(rng.choice(NEUTRAL, size=int(rng.integers(5, 12))))
        positions[i] = rng.integers(0, len(words))
        words[positions[i]] = str(rng.choice(POSITIVE if labels[i] else NEGATIVE))
        texts.append(" ".join(words) + rng.choice([".", "!", ""]))
    return texts, labels, positions


def main(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    texts, labels, _ = reviews(3000, rng)

    vectorize = keras.layers.TextVectorization(max_tokens=64)
    vectorize.adapt(texts)
    core = keras.Sequential(  # trained on ids (Keras's recommended way), then given the tokenizer
        [
            keras.Input((None,), dtype="int64"),
            keras.layers.Embedding(64, 16, mask_zero=True),
            keras.layers.Bidirectional(keras.layers.LSTM(16, return_sequences=True)),
            keras.layers.GlobalMaxPooling1D(),
            keras.layers.Dense(2),
        ]
    )
    core.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    core.fit(vectorize(texts), labels, epochs=4, batch_size=64, verbose=0)
    strings = keras.Input(shape=(1,), dtype="string")
    model = keras.Model(strings, core(vectorize(strings)))  # end to end: raw strings in

    explainer = Explainer.from_keras(model)  # checked against the model on generated sentences
    test_texts, test_labels, sentiment_at = reviews(200, rng)
    result = explainer.explain(test_texts)  # raw strings in; result.tokens are the words
    accuracy = float((result.target == test_labels).mean())
    found = float(np.mean([row.argmax() == at for row, at in zip(result.token_relevance, sentiment_at, strict=True)]))
    print(f"test accuracy {accuracy:.1%}; the sentiment word is the most relevant token in {found:.1%} of reviews")

    shown = list(range(10))
    page = out_dir / "raw_text_heatmap.html"
    viz.html_heatmap(
        [list(result.tokens[i]) for i in shown],
        result.token_relevance[shown],
        page,
        title="LRP relevance of the predicted class, from raw strings (red: for it, blue: against it)",
        labels=[f"review {i}: {test_texts[i]!r}" for i in shown],
    )
    print(f"wrote {page}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("examples_out"))
