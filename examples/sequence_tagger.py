"""A Keras sequence tagger (one prediction per word), explained one output step at a time.

The task: tag every word that follows a title ("mr", "dr", "ms") as a name. The model is
``Embedding(mask_zero) → LSTM(return_sequences) → TimeDistributed(Dense)``, so its scores are
(B, T, 2) and ``explain(x, step=t, target=1)`` explains the "name" score of word ``t``. A correct
explanation of a tagged word points at the title just before it (the word itself is an arbitrary
name); the script prints how often the title is the most relevant token and writes a heatmap.

    python examples/sequence_tagger.py            # writes examples_out/tagger_heatmap.html
    python examples/sequence_tagger.py OUT_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import keras
import numpy as np

from tf_lrp import Explainer, viz

TITLES = ["mr", "dr", "ms"]
WORDS = [
    "smith", "jones", "met", "with", "the", "team", "today", "and", "called", "brown", "later", "said", "that",
    "green", "it", "was", "fine",
]  # fmt: skip
VOCABULARY = ["<pad>", *TITLES, *WORDS]
ID = {word: i for i, word in enumerate(VOCABULARY)}
MAX_LEN = 12


def sentences(count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Token ids (count, MAX_LEN), post-padded with 0, and tags (1: the word follows a title)."""
    x = np.zeros((count, MAX_LEN), dtype=np.int32)
    tags = np.zeros((count, MAX_LEN), dtype=np.int32)
    for i in range(count):
        length = int(rng.integers(6, MAX_LEN + 1))
        words = list(rng.choice(WORDS, size=length))
        for at in rng.choice(length - 1, size=int(rng.integers(1, 3)), replace=False):
            words[at] = str(rng.choice(TITLES))
        x[i, :length] = [ID[w] for w in words]
        for t in range(1, length):
            tags[i, t] = int(words[t - 1] in TITLES and words[t] not in TITLES)
    return x, tags


def main(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    keras.utils.set_random_seed(0)
    x, tags = sentences(3000, rng)
    model = keras.Sequential(
        [
            keras.Input((None,), dtype="int32"),
            keras.layers.Embedding(len(VOCABULARY), 16, mask_zero=True),
            keras.layers.LSTM(24, return_sequences=True),
            keras.layers.TimeDistributed(keras.layers.Dense(2)),  # per-step logits
        ]
    )
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, tags, epochs=5, batch_size=64, verbose=0)

    explainer = Explainer.from_keras(model)
    test_x, test_tags = sentences(200, rng)
    predicted = explainer.score(test_x).argmax(axis=-1)
    valid = test_x != 0
    print(f"tagging accuracy on real words {float((predicted == test_tags)[valid].mean()):.1%}")

    rows, steps = np.nonzero(test_tags)  # every tagged word, explained on its own
    result = explainer.explain(test_x[rows], step=steps, target=1)
    found = float((result.token_relevance.argmax(axis=1) == steps - 1).mean())
    print(f"for a tagged word, the title before it is the most relevant token in {found:.1%} of {len(rows)} cases")

    shown = list(range(8))
    lengths = valid[rows].sum(axis=1)
    page = out_dir / "tagger_heatmap.html"
    viz.html_heatmap(
        [[VOCABULARY[t] for t in test_x[rows[i], : lengths[i]]] for i in shown],
        result.token_relevance[shown],
        page,
        title="LRP relevance of the 'name' score of one word (red: for it, blue: against it)",
        labels=[f"word {steps[i]} ({VOCABULARY[test_x[rows[i], steps[i]]]!r}) tagged as a name" for i in shown],
    )
    print(f"wrote {page}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("examples_out"))
