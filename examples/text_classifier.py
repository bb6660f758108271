"""Train a small Keras text classifier, explain it with LRP, and write an HTML heatmap.

The task: short "reviews" made of neutral words and exactly one sentiment word; the label is
that word's polarity. A correct explanation puts the largest relevance on the sentiment word,
so the script prints how often it does.

    python examples/text_classifier.py            # writes examples_out/text_heatmap.html
    python examples/text_classifier.py OUT_DIR

Runs in about 15 s on a laptop CPU (TensorFlow start-up included).
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
POSITIVE = ["great", "wonderful", "superb", "moving", "brilliant"]
NEGATIVE = ["awful", "boring", "dull", "terrible", "clumsy"]
VOCABULARY = ["<pad>", *NEUTRAL, *POSITIVE, *NEGATIVE]  # id 0 is padding (mask_zero)
ID = {word: i for i, word in enumerate(VOCABULARY)}
MAX_LEN = 12


def reviews(count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Token ids (count, MAX_LEN) post-padded with 0, labels (1 = positive), the sentiment word's position."""
    x = np.zeros((count, MAX_LEN), dtype=np.int32)
    labels = rng.integers(0, 2, size=count)
    positions = np.zeros(count, dtype=np.int64)
    for i in range(count):
        length = int(rng.integers(5, MAX_LEN + 1))
        words = list(rng.choice(NEUTRAL, size=length))
        positions[i] = rng.integers(0, length)
        words[positions[i]] = rng.choice(POSITIVE if labels[i] else NEGATIVE)
        x[i, :length] = [ID[w] for w in words]
    return x, labels, positions


def main(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    x, labels, _ = reviews(3000, rng)

    model = keras.Sequential(
        [
            keras.Input((None,), dtype="int32"),
            keras.layers.Embedding(len(VOCABULARY), 16, mask_zero=True),
            keras.layers.Bidirectional(keras.layers.LSTM(16)),
            keras.layers.Dense(2),  # logits: tf_lrp explains the pre-softmax score
        ]
    )
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(x, labels, epochs=4, batch_size=64, verbose=0)

    explainer = Explainer.from_keras(model)  # converts and checks that it reproduces the model's logits
    test_x, test_labels, sentiment_at = reviews(200, rng)
    result = explainer.explain(test_x, method="lrp", eps=1e-3, bias_factor=0.0)  # target: the predicted class
    accuracy = float((result.target == test_labels).mean())
    found = float((result.token_relevance.argmax(axis=1) == sentiment_at).mean())
    print(f"test accuracy {accuracy:.1%}; the sentiment word is the most relevant token in {found:.1%} of reviews")

    shown = range(10)
    lengths = (test_x != 0).sum(axis=1)
    page = out_dir / "text_heatmap.html"
    viz.html_heatmap(
        [[VOCABULARY[t] for t in test_x[i, : lengths[i]]] for i in shown],
        result.token_relevance[list(shown)],
        page,
        title="LRP relevance of the predicted class (red: for it, blue: against it)",
        labels=[
            f"review {i}: predicted {'positive' if result.target[i] else 'negative'} "
            f"(score {result.scores[i, result.target[i]]:.2f})"
            for i in shown
        ],
    )
    print(f"wrote {page}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("examples_out"))
